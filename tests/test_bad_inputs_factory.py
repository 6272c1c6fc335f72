"""Bad `[model] factory` input through the CLI (issue 25, item 1): each case exits with code 2 and one line that
names the field, before anything is written (the pattern of tests/test_bad_inputs.py).

Each case changes one thing of a config that is known to be good (`test_the_base_config_is_good`): the [model]
table, the factory file `net.py` beside the config, the weights file, or the estimators. Loading the factory
imports it, builds the network, loads the weights and probes one forward call; what an estimator needs that the
network lacks (dropout, a last layer) is refused in preflight, before any fit or sampling.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch

from benchmark.cli import main
from tests.test_bad_inputs import snapshot, to_toml

NET = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, out_channels=1, size=8):
        super().__init__()
        self.time = nn.Embedding(1000, 4)
        self.conv_in = nn.Conv2d(1, 4, 3, padding=1)
        self.body = nn.Sequential(nn.SiLU(), nn.Conv2d(4, 4, 3, padding=1))
        self.conv_out = nn.Conv2d(4, out_channels, 3, padding=1)
        self.size = size

    def forward(self, x, t):
        h = self.body(self.conv_in(x) + self.time(t)[:, :, None, None])
        return torch.nn.functional.interpolate(self.conv_out(h), size=self.size)


def make():
    torch.manual_seed(0)
    return Net()
'''

BASE: dict[str, dict[str, Any]] = {
    "run": {"steps": 2, "num_samples": 4, "keep": 3, "batch_size": 4, "bootstrap": 10, "features": []},
    "model": {"factory": "net.py:make", "weights": "net.pth", "last_layer": "conv_out", "sample_shape": [1, 8, 8]},
    "data": {"path": "data.npz"},
    "estimators": {"sensitivity": {"m": 2, "window": [25, 50]}},
    "protocols": {"cost": {}},
}


def with_model(**changes: Any) -> dict:
    """BASE with [model] keys changed (a value None removes the key)."""
    config = {s: dict(t) for s, t in BASE.items()}
    config["model"] = {k: v for k, v in {**BASE["model"], **changes}.items() if v is not None}
    return config


def with_estimator(name: str, params: dict) -> dict:
    config = {s: dict(t) for s, t in BASE.items()}
    config["estimators"] = {**BASE["estimators"], name: params}
    return config


def net_file(source: str) -> Callable[[Path], None]:
    return lambda folder: (folder / "net.py").write_text(source)


def weights(state: Callable[[], Any], name: str = "net.pth") -> Callable[[Path], None]:
    return lambda folder: torch.save(state(), folder / name)


def good_state() -> dict:
    torch.manual_seed(0)
    from torch import nn

    net = nn.Module()
    net.time, net.conv_in = nn.Embedding(1000, 4), nn.Conv2d(1, 4, 3, padding=1)
    net.body = nn.Sequential(nn.SiLU(), nn.Conv2d(4, 4, 3, padding=1))
    net.conv_out = nn.Conv2d(4, 1, 3, padding=1)
    return net.state_dict()


@dataclass
class Case:
    name: str
    config: dict
    field: str  # must appear in the message
    fix: str  # a piece of the fix (or of what is allowed) that must appear
    prepare: list[Callable[[Path], None]] = field(default_factory=list)


NET_BODY = NET.split("def make():")[0]
CASES = [
    Case("factory file missing", with_model(factory="nowhere.py:make"), "model.factory", "a .py file that exists"),
    Case("factory without a function", with_model(factory="net.py"), "model.factory", "file.py:function"),
    Case("factory does not import", BASE, "model.factory", "SyntaxError", [net_file(NET + "\ndef broken(:\n")]),
    Case("factory module not installed", with_model(factory="no_such_package.nets:make"), "model.factory",
         "ModuleNotFoundError"),
    Case("factory function misnamed", with_model(factory="net.py:make_net"), "model.factory",
         "it defines Net, make"),
    Case("factory needs arguments", BASE, "model.factory", "callable without arguments",
         [net_file(NET_BODY + "def make(width):\n    return Net()\n")]),
    Case("factory raises", BASE, "model.factory", "RuntimeError: no GPU here",
         [net_file(NET_BODY + "def make():\n    raise RuntimeError('no GPU here')\n")]),
    Case("factory returns no module", BASE, "model.factory", "returned an object of type OrderedDict",
         [net_file(NET_BODY + "def make():\n    return Net().state_dict()\n")]),
    Case("forward without t", BASE, "model.factory", "called as f(x, t)",
         [net_file(NET + "\nNet.forward = lambda self, x: x\n")]),
    Case("num_classes for an unconditional forward", with_model(num_classes=10), "model.factory",
         "remove model.num_classes"),
    Case("labels required but no num_classes", BASE, "model.factory", "set model.num_classes",
         [net_file(NET + "\n_f = Net.forward\nNet.forward = lambda self, x, t, y: _f(self, x, t)\n")]),
    Case("output of the wrong size", BASE, "model.factory", "but it is (1, 1, 4, 4)",
         [net_file(NET.replace("return Net()", "return Net(size=4)"))]),
    Case("output of the wrong channels", BASE, "model.factory", "[B, 1 (or 2), 8, 8]",
         [net_file(NET.replace("return Net()", "return Net(out_channels=3)")), weights(lambda: {
             **good_state(), "conv_out.weight": torch.zeros(3, 4, 3, 3), "conv_out.bias": torch.zeros(3)})]),
    Case("output not a tensor", BASE, "model.factory", "returned an object of type tuple",
         [net_file(NET + "\n_f = Net.forward\nNet.forward = lambda self, x, t: (_f(self, x, t),)\n")]),
    Case("forward crashes on the probe", with_model(sample_shape=[3, 8, 8]), "model.factory",
         "check model.sample_shape"),
    Case("weights missing", with_model(weights="gone.pth"), "model.weights", "a file that exists"),
    Case("weights of another suffix", with_model(weights="net.ckpt"), "model.weights", ".pt/.pth/.safetensors"),
    Case("weights with missing keys", BASE, "model.weights", "missing keys (e.g. conv_out.bias",
         [weights(lambda: {k: v for k, v in good_state().items() if not k.startswith("conv_out")})]),
    Case("weights with unexpected keys", BASE, "model.weights", "strip that prefix",
         [weights(lambda: {f"module.{k}": v for k, v in good_state().items()})]),
    Case("weights of other shapes", BASE, "model.weights", "time.weight (500, 4) vs (1000, 4)",
         [weights(lambda: {**good_state(), "time.weight": torch.zeros(500, 4)})]),
    Case("a training checkpoint, not a state dict", BASE, "model.weights", "checkpoint['model']",
         [weights(lambda: {"model": good_state(), "epoch": 3})]),
    Case("unknown beta schedule", with_model(beta_schedule="cosine"), "model.beta_schedule",
         "linear, scaled_linear, squaredcos_cap_v2"),
    Case("unknown prediction type", with_model(prediction_type="eps"), "model.prediction_type",
         "epsilon, v_prediction, sample"),
    Case("beta_end below beta_start", with_model(beta_start=0.02, beta_end=0.0001), "model.beta_end",
         "greater than beta_start"),
    Case("beta out of range", with_model(beta_end=2), "model.beta_end", "a number in (0, 1)"),
    Case("schedule file and beta keys", with_model(alphas_cumprod="ab.npy", beta_schedule="linear"),
         "model.beta_schedule", "remove model.beta_schedule or model.alphas_cumprod",
         [lambda folder: np.save(folder / "ab.npy", np.linspace(0.99, 0.01, 10))]),
    Case("schedule file increasing", with_model(alphas_cumprod="ab.npy"), "model.alphas_cumprod",
         "non-increasing", [lambda folder: np.save(folder / "ab.npy", np.linspace(0.01, 0.99, 10))]),
    Case("last layer not found", with_model(last_layer="conv_final"), "model.last_layer",
         "e.g. last_layer = 'conv_out'"),
    Case("last layer not Conv2d or Linear", with_model(last_layer="body"), "model.last_layer",
         "but it is a Sequential"),
    Case("last layer not the final layer", with_model(last_layer="conv_in"), "model.last_layer",
         "transforms its output afterwards"),
    Case("sample_shape not three integers", with_model(sample_shape=[8, 8]), "model.sample_shape", "[C, H, W]"),
    Case("path and factory", with_model(path="my_model"), "model.path", "give factory or path, not both"),
    Case("factory key with path", {**BASE, "model": {"path": "folder", "beta_schedule": "linear"}},
         "model.beta_schedule", 'factory = "file.py:function"'),
    Case("mc_dropout without dropout", with_estimator("mc_dropout", {"window": [25, 50]}), "mc_dropout",
         "dropout layers"),
    Case("bayesdiff without a last layer", {**with_estimator("bayesdiff", {"fit_images": 4}),
                                            "model": {k: v for k, v in BASE["model"].items() if k != "last_layer"}},
         "last_layer", "last-layer Laplace"),
]


def prepare_folder(folder: Path, config: dict, extra: list[Callable[[Path], None]]) -> Path:
    (folder / "net.py").write_text(NET)
    weights(good_state)(folder)
    rng = np.random.default_rng(0)
    np.savez(folder / "data.npz", train=rng.integers(0, 256, (8, 1, 8, 8), dtype=np.uint8),
             test=rng.integers(0, 256, (4, 1, 8, 8), dtype=np.uint8))
    for step in extra:
        step(folder)
    path = folder / "run.toml"
    path.write_text(to_toml(config))
    return path


def test_the_base_config_is_good(tmp_path, capsys):
    config = prepare_folder(tmp_path, BASE, [])
    assert main(["run", "--config", str(config), "--out", str(tmp_path / "out"), "--quiet"]) == 0, \
        capsys.readouterr().err
    assert (tmp_path / "out" / "metrics.csv").is_file()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_factory_input_is_refused_before_any_work(case: Case, tmp_path, capsys):
    config = prepare_folder(tmp_path, case.config, case.prepare)
    out = tmp_path / "out"
    before = snapshot(tmp_path)

    assert main(["run", "--config", str(config), "--out", str(out), "--quiet"]) == 2

    captured = capsys.readouterr()
    message = captured.err.strip()
    assert message.startswith("error: ") and "\n" not in message, message  # one line, no traceback
    assert case.field in message and case.fix in message, message
    assert captured.out == ""
    assert snapshot(tmp_path) == before and not out.exists()  # nothing written, created or changed
