"""Catalogue of bad inputs through the CLI: each exits with code 2 and one paragraph that names the field and
the fix, before anything is written (the --out folder is not even created).

Each case changes one thing in a config that is known to be good (`test_the_base_config_is_good`): a
config value, or the preset (a variant of the toy preset reached through $UQBENCH_EXTRA_PRESETS: a model
without dropout, without a last layer, with NaN weights, with missing or corrupt weights on disk, data that
is not installed). Runs go through `benchmark.cli.main`, the function behind `python -m benchmark`;
`test_exit_code_of_the_real_command` checks one case in a fresh process.
"""
from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

from benchmark.cli import main
from benchmark.models import DiffusersUNet, GaussianMixtureModel
from tests.helpers import tiny_gmm_means, tiny_unet
from tests.toy_preset import ToyPreset

HERE = "tests.test_bad_inputs"
RESULT_FILES = ("metrics.csv", "report.md", "manifest.json")


# ------------------------------------------------------------------------------------------ preset variants
@dataclass
class NoDropoutPreset(ToyPreset):
    name: str = "toy-no-dropout"

    def load_model(self):
        return DiffusersUNet(tiny_unet(dropout=0.0))


@dataclass
class NoLastLayerPreset(ToyPreset):
    """The analytic mixture as the model: exact eps, no network, so no last layer (and no dropout)."""

    name: str = "toy-no-last-layer"

    def load_model(self):
        return GaussianMixtureModel(tiny_gmm_means(3, (1, 8, 8)), std=0.2)


@dataclass
class NaNPreset(ToyPreset):
    name: str = "toy-nan"

    def load_model(self):
        unet = tiny_unet(dropout=0.1)
        with torch.no_grad():
            unet.conv_out.weight.fill_(math.nan)
        return DiffusersUNet(unet)


@dataclass
class FolderPreset(ToyPreset):
    """The toy UNet saved with save_pretrained() and loaded from that folder, as the real presets are."""

    name: str = "toy-folder"
    folder = None  # set by the test

    def load_model(self):
        return DiffusersUNet.from_pretrained(self.folder)


@dataclass
class FashionDataPreset(ToyPreset):
    """Reads its test images from the Fashion-MNIST files (looked up through benchmark.datasets)."""

    name: str = "toy-fashion-data"

    def load_data(self, split: str, n: int | None = None):
        from benchmark.datasets import load_dataset

        return load_dataset("fashion", split).subset(n)


VARIANTS = ",".join(f"{HERE}:{cls.__name__}" for cls in
                    (ToyPreset, NoDropoutPreset, NoLastLayerPreset, NaNPreset, FolderPreset, FashionDataPreset))

BASE: dict[str, dict[str, Any]] = {
    "run": {"preset": "toy", "steps": 2, "num_samples": 4, "keep": 3, "batch_size": 4, "bootstrap": 10},
    "estimators": {"sensitivity": {"m": 2, "window": [25, 50]}},
    "protocols": {"cost": {}},
}


def to_toml(config: dict[str, dict[str, Any]]) -> str:
    """[run], [estimators.<name>], [protocols.<name>] tables of str / int / float / bool / list values."""
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return str(v).lower()
        if isinstance(v, str):
            return f'"{v}"'
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return repr(v)

    lines = ["[run]", *(f"{k} = {value(v)}" for k, v in config["run"].items())]
    for section in ("estimators", "protocols"):
        for name, params in config.get(section, {}).items():
            lines += ["", f"[{section}.{name}]", *(f"{k} = {value(v)}" for k, v in params.items())]
    return "\n".join(lines) + "\n"


def changed(section: str, key: str, val: Any = None, *, drop: str | None = None) -> dict:
    """BASE with config[section][key] = val (a whole table when section is estimators/protocols)."""
    config = {s: {k: dict(v) if isinstance(v, dict) else v for k, v in t.items()} for s, t in BASE.items()}
    config[section][key] = val
    if drop:
        del config[section][drop]
    return config


# ------------------------------------------------------------------------------------------ the catalogue
@dataclass
class Case:
    name: str
    config: dict | str  # a config dict or raw TOML text
    field: str  # must appear in the message
    fix: str  # a phrase of the fix that must appear in the message
    prepare: Callable[[Path, pytest.MonkeyPatch], None] | None = None


def save_toy_model(folder: Path) -> None:
    DiffusersUNet(tiny_unet(dropout=0.1)).unet.save_pretrained(folder)


def folder_with(damage: Callable[[Path], None]) -> Callable[[Path, pytest.MonkeyPatch], None]:
    def prepare(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        folder = tmp / "model"
        save_toy_model(folder)
        for weights in folder.glob("diffusion_pytorch_model*"):
            damage(weights)
        monkeypatch.setattr(FolderPreset, "folder", folder)
    return prepare


def no_fashion_files(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp / "empty"
    empty.mkdir()
    monkeypatch.setattr("benchmark.datasets.FASHION_SYSTEM_DIR", empty)
    monkeypatch.setenv("UQBENCH_DATA_DIR", str(empty))


def out_is_a_file(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp / "out").write_text("not a folder")


CASES = [
    Case("malformed TOML", "[run]\npreset = \"toy\nsteps = 2\n", "--config", "fix the syntax"),
    Case("unknown preset", changed("run", "preset", "no-such-preset"), "run.preset", "python -m benchmark list"),
    Case("unknown estimator", changed("estimators", "deep_ensemble", {}), "estimators.deep_ensemble",
         "run.plugins"),
    Case("unknown estimator parameter", changed("estimators", "sensitivity", {"m": 2, "mm": 3}),
         "estimators.sensitivity.mm", "correct the spelling"),
    Case("M < 2", changed("estimators", "sensitivity", {"m": 1}), "estimators.sensitivity.m", "integer >= 2"),
    Case("guidance M < 2", changed("protocols", "guidance", {"m": 1}), "protocols.guidance.m", "integer >= 2"),
    Case("percentile of 100", changed("protocols", "guidance", {"percentile": 100.0}),
         "protocols.guidance.percentile", "a number in (0, 100)"),
    Case("percentile of 0", changed("protocols", "guidance", {"percentile": 0}),
         "protocols.guidance.percentile", "a number in (0, 100)"),
    Case("K > N", changed("run", "keep", 5), "run.keep", "lower run.keep or raise run.num_samples"),
    Case("estimator window past the steps", changed("estimators", "sensitivity", {"m": 2, "window": [45, 60]}),
         "estimators.sensitivity.window", "stop <= 50"),
    Case("guidance window past the steps", changed("protocols", "guidance", {"window": [48, 51]}),
         "protocols.guidance.window", "stop <= 50"),
    Case("unknown protocol", changed("protocols", "calibration", {}), "protocols.calibration",
         "rename or remove the table"),
    Case("zero steps", changed("run", "steps", 0), "run.steps", "set steps = 50"),
    Case("batch size 0", changed("run", "batch_size", 0), "run.batch_size", "set batch_size = 50"),
    Case("negative seed", changed("run", "seed", -1), "run.seed", "set seed = 0"),
    Case("misspelt run key", changed("run", "num_sample", 8), "run.num_sample", "correct the spelling"),
    Case("unknown sampler", changed("run", "sampler", "euler"), "run.sampler", "set run.sampler"),
    Case("unknown feature space", changed("run", "features", ["clip"]), "run.features",
         'run.features = ["classifier"]'),
    Case("no GPU for cuda", changed("run", "device", "cuda"), "run.device", 'run.device = "cpu"'),
    Case("bayesdiff fit_images 0", changed("estimators", "bayesdiff", {"fit_images": 0}),
         "estimators.bayesdiff.fit_images", "set fit_images = 500"),
    Case("missing dataset", changed("run", "preset", "toy-fashion-data"), "Fashion-MNIST test files",
         "apt-get install dataset-fashion-mnist", no_fashion_files),
    Case("missing weights", changed("run", "preset", "toy-folder"), "has no weights",
         "copy the weights there", folder_with(lambda path: path.unlink())),
    Case("corrupt weights", changed("run", "preset", "toy-folder"), "could not load the UNet weights",
         "re-download or re-train", folder_with(lambda path: path.write_bytes(path.read_bytes()[:500]))),
    Case("MC-Dropout without dropout", {**changed("run", "preset", "toy-no-dropout"), "estimators": {"mc_dropout": {"window": [25, 50]}}},
         "dropout layers", "use a model trained with dropout"),
    Case("BayesDiff without a last layer",
         {**changed("run", "preset", "toy-no-last-layer"), "estimators": {"bayesdiff": {"fit_images": 8}}},
         "last_layer", "use a DiffusersUNet"),
    Case("NaN from the network", changed("run", "preset", "toy-nan"), "returned NaN", "check the weights"),
    Case("output folder is a file", BASE, "--out", "choose another --out", out_is_a_file),
]


@pytest.fixture(autouse=True)
def variant_presets(monkeypatch):
    monkeypatch.setenv("UQBENCH_EXTRA_PRESETS", VARIANTS)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_refused_before_any_work(case: Case, tmp_path, monkeypatch, capsys):
    config, out = tmp_path / "bad.toml", tmp_path / "out"
    config.write_text(case.config if isinstance(case.config, str) else to_toml(case.config))
    if case.prepare is not None:
        case.prepare(tmp_path, monkeypatch)
    was_file = out.is_file()

    assert main(["run", "--config", str(config), "--out", str(out), "--quiet"]) == 2

    captured = capsys.readouterr()
    message = captured.err.strip()
    assert message.startswith("error: ") and "\n" not in message, message  # one paragraph, no traceback
    assert case.field in message and case.fix in message, message
    assert captured.out == ""
    if was_file:
        assert out.read_text() == "not a folder"
    else:
        assert not out.exists(), sorted(p.name for p in out.rglob("*"))  # nothing written at all
    assert not any((tmp_path / name).exists() for name in RESULT_FILES)


def test_the_base_config_is_good(tmp_path):
    """The config the cases change passes validation and the pre-flight checks on the toy preset, and the
    saved model folder of the weight cases loads when it is intact."""
    from benchmark.config import parse_config
    from benchmark.runner.setup import estimator_factory, preflight

    config = parse_config(BASE)
    preset = ToyPreset()
    model = preset.load_model()
    preflight(config, model, preset, estimator_factory(config, model, preset, progress=False))
    save_toy_model(tmp_path / "model")
    loaded = DiffusersUNet.from_pretrained(tmp_path / "model")
    x = torch.zeros(1, 1, 8, 8)
    assert torch.allclose(loaded.eps(x, 10), model.eps(x, 10), atol=1e-5)


def test_exit_code_of_the_real_command(tmp_path):
    """`python -m benchmark run` in a fresh process: exit status 2 and the one-paragraph message on stderr."""
    config = tmp_path / "bad.toml"
    config.write_text(to_toml(changed("run", "keep", 5)))
    done = subprocess.run([sys.executable, "-m", "benchmark", "run", "--config", str(config), "--out",
                           str(tmp_path / "out")], cwd=Path(__file__).resolve().parents[1], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("error: run.keep = 5 is invalid") and done.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()
