"""docs/adding_an_estimator.md, executed as written: its estimator file and config are written to a
temporary folder beside a random-init unconditional v-prediction UNet folder and a folder of PNGs, and its
commands run through `python -m benchmark` in fresh processes."""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from tests.docs_pages import DOCS, code_blocks, named_files

PAGE = DOCS / "adding_an_estimator.md"


def make_model_folder(folder: Path) -> None:
    """A random-init unconditional UNet2DModel (3x16x16) with a v-prediction DDIM scheduler config."""
    import torch
    from diffusers import DDIMScheduler, UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=16, in_channels=3, out_channels=3, block_out_channels=(8, 16),
                       layers_per_block=1, norm_num_groups=4, down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D"))
    unet.save_pretrained(folder / "unet")
    DDIMScheduler(prediction_type="v_prediction").save_pretrained(folder / "scheduler")
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "DDIMPipeline"}))


def make_png_folder(folder: Path, n: int = 16) -> None:
    from PIL import Image

    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")


def test_the_adding_an_estimator_page_runs_as_written(tmp_path):
    blocks = code_blocks(PAGE.read_text())
    files = named_files(blocks)
    assert set(files) == {"my_estimator.py", "my_config.toml"}
    for name, body in files.items():
        (tmp_path / name).write_text(body)
    make_model_folder(tmp_path / "my_model")
    make_png_folder(tmp_path / "my_images")
    model_files = {p: p.read_bytes() for p in (tmp_path / "my_model").rglob("*") if p.is_file()}

    [shell] = [body for lang, body in blocks if lang == "bash"]
    commands = [shlex.split(line, comments=True) for line in shell.splitlines() if line.strip()]
    assert [c[:3] for c in commands] == [["python", "-m", "benchmark"]] * 3
    env = {**os.environ, "OMP_NUM_THREADS": "1", "UQBENCH_CACHE": str(tmp_path / "cache")}
    outputs = []
    for argv in commands:
        done = subprocess.run([sys.executable, *argv[1:]], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, (argv, done.stderr[-3000:])
        outputs.append(done.stdout)

    listed = outputs[0].split("[estimators.eps_jitter]", 1)[1].split("\n\n", 1)[0]  # its TOML table
    assert f"[plug-in {tmp_path / 'my_estimator.py'}]" in listed and "\nm = 3" in listed

    run = tmp_path / "runs" / "mine"
    metrics = pd.read_csv(run / "metrics.csv")
    assert {"eps_jitter", "eps_jitter_m5", "random"} <= set(metrics.estimator)
    extra = metrics[metrics.metric == "extra_nfe_per_sample"].set_index("estimator").value
    assert extra["eps_jitter"] == 3 * 2 and extra["eps_jitter_m5"] == 5 * 2  # m draws on each of the last 2 steps
    assert {"fid_kept[inception]", "ause"} <= set(metrics[metrics.estimator == "eps_jitter_m5"].metric)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["estimators"]["eps_jitter_m5"]["type"] == "eps_jitter"
    assert manifest["estimators"]["eps_jitter_m5"]["params"] == {"m": 5}
    report = (run / "report.md").read_text()
    board = (tmp_path / "board" / "leaderboard.md").read_text()
    for name in ("eps_jitter", "eps_jitter_m5"):
        assert re.search(rf"\b{name}\b", report) and re.search(rf"\b{name}\b", board), name
    # the real images' Inception features were computed once and cached by content hash, outside the run
    assert len(list((tmp_path / "cache" / "reference_features").glob("inception-*.npy"))) == 1
    assert {p: p.read_bytes() for p in (tmp_path / "my_model").rglob("*") if p.is_file()} == model_files
