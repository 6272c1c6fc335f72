"""docs/your_model_and_data.md's "Your own model: a plain PyTorch network" example, run as written through the CLI: its glue file and
config are written to a temporary folder beside a small random UNet-like network (`mnist_unet.UNet`, standing in
for a repository's network class), its state dict as `ddpm_mnist.pth` and a small `mnist.npz`; the run goes
through `python -m benchmark run` in a fresh process, with random, sensitivity and bayesdiff on sparsification
and cost."""
from __future__ import annotations

import os
import shlex
import subprocess
import sys

import numpy as np
import pandas as pd
import torch

from tests.docs_pages import DOCS, code_blocks, named_files, section

PAGE, SECTION = DOCS / "your_model_and_data.md", "## Your own model: a plain PyTorch network"

#: the network the glue imports: a time-embedded conv net (no dropout, like the issue's MNIST DDPM), output conv_out
STAND_IN = '''
import math

import torch
from torch import nn


class UNet(nn.Module):
    def __init__(self, in_channels=1, base_channels=32):
        super().__init__()
        self.base_channels = base_channels
        self.time_mlp = nn.Sequential(nn.Linear(base_channels, base_channels), nn.SiLU())
        self.conv_in = nn.Conv2d(in_channels, base_channels, 3, padding=1)
        self.down = nn.Conv2d(base_channels, base_channels, 3, stride=2, padding=1)
        self.up = nn.ConvTranspose2d(base_channels, base_channels, 4, stride=2, padding=1)
        self.norm = nn.GroupNorm(4, base_channels)
        self.conv_out = nn.Conv2d(base_channels, in_channels, 3, padding=1)

    def forward(self, x, t):
        half = self.base_channels // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, device=x.device) / half)
        angles = t.float()[:, None] * freqs[None]
        emb = self.time_mlp(torch.cat([angles.sin(), angles.cos()], dim=1))[:, :, None, None]
        h = torch.relu(self.conv_in(x)) + emb
        h = h + self.up(torch.relu(self.down(h)))
        return self.conv_out(torch.nn.functional.silu(self.norm(h)))
'''


def test_the_plain_pytorch_example_runs_as_written(tmp_path):
    blocks = code_blocks(section(PAGE, SECTION))
    files = named_files(blocks)
    assert set(files) == {"glue.py", "ddpm_mnist.toml"}
    glue_lines = [line for line in files["glue.py"].splitlines() if line.strip()]
    assert len(glue_lines) <= 20  # the bar: at most 20 lines of glue
    for name, body in files.items():
        (tmp_path / name).write_text(body)
    (tmp_path / "mnist_unet.py").write_text(STAND_IN)

    sys.path.insert(0, str(tmp_path))  # the weights a user would have: the state dict of the network the glue builds
    try:
        torch.manual_seed(0)
        import glue  # noqa: PLC0415

        torch.save(glue.make_unet().state_dict(), tmp_path / "ddpm_mnist.pth")
    finally:
        sys.path.remove(str(tmp_path))
        for module in ("glue", "mnist_unet"):
            sys.modules.pop(module, None)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "mnist.npz", train=rng.integers(0, 256, (256, 1, 28, 28), dtype=np.uint8),
             test=rng.integers(0, 256, (16, 1, 28, 28), dtype=np.uint8))

    [shell] = [body for lang, body in blocks if lang == "bash"]
    [argv] = [shlex.split(line, comments=True) for line in shell.splitlines() if line.strip()]
    assert argv[:3] == ["python", "-m", "benchmark"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "UQBENCH_CACHE": str(tmp_path / "cache")}
    env.pop("UQBENCH_EXTRA_PRESETS", None)
    done = subprocess.run([sys.executable, *argv[1:]], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]

    run = tmp_path / "runs" / "ddpm_mnist"
    metrics = pd.read_csv(run / "metrics.csv")
    assert {"random", "sensitivity", "bayesdiff"} <= set(metrics.estimator)
    assert {"sparsification", "cost"} <= set(metrics.protocol)
    ause = metrics[(metrics.protocol == "sparsification") & (metrics.metric == "ause")].set_index("estimator").value
    assert np.isfinite(ause[["random", "sensitivity", "bayesdiff"]]).all()
    assert (run / "laplace_last_layer.pt").is_file()  # the posterior is fitted into the run folder
    assert not (tmp_path / "laplace_last_layer.pt").exists()
    config = (run / "config.json").read_text()
    assert str(tmp_path / "glue.py") + ":make_unet" in config  # the factory, resolved against the config's folder
