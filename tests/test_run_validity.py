"""One rule for a valid run (issue 25, items 4 and 8): `validate` and `leaderboard` apply the same check
(benchmark.publish.validity.check_run) to every kind of run, and the Python API finds every preset `list` shows.

Each kind of run is made by the CLI once per module (N = 4, 2 steps, the cost protocol) and read back in a fresh
process from another folder: a built-in preset; a `[model] path` to a tiny diffusers UNet folder (its saved config
has `preset = ""`); a `[model] factory` in a glue file beside the config; a plug-in estimator file given relative to
the config's folder; an extra preset named by $UQBENCH_EXTRA_PRESETS. A changed run is refused by both commands
with the same reason.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from benchmark import presets
from benchmark.cli import main
from benchmark.errors import ConfigError
from benchmark.publish.leaderboard import load_runs
from benchmark.publish.validate import RunValidationError
from benchmark.publish.validity import check_run
from tests.helpers import tiny_unet
from tests.toy_preset import ToyPreset, perturb_toy_weights

REPO = Path(__file__).resolve().parents[1]
TOY = "tests.toy_preset:ToyPreset"
RUN = {"steps": 2, "num_samples": 4, "keep": 3, "batch_size": 4, "bootstrap": 10}
KINDS = ("preset", "model_path", "factory", "plugin", "extra_preset")
PLUGIN = textwrap.dedent('''
    from estimators import EstimatorResult, UncertaintyEstimator, register

    @register("spread_rv")
    class Spread(UncertaintyEstimator):
        """Per-pixel |eps| at the last step; score = sum of the map."""

        kind = "heuristic"

        def observe(self, step):
            if step.index == step.num_steps - 1:
                self.map = step.eps.abs()

        def result(self):
            return EstimatorResult(pixel=self.map, score=self.map.flatten(1).sum(1))
''')
GLUE = textwrap.dedent('''
    import torch
    from torch import nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.time = nn.Embedding(1000, 4)
            self.conv_in = nn.Conv2d(1, 4, 3, padding=1)
            self.conv_out = nn.Conv2d(4, 1, 3, padding=1)

        def forward(self, x, t):
            return self.conv_out(torch.relu(self.conv_in(x) + self.time(t)[:, :, None, None]))


    def make_net():
        torch.manual_seed(0)
        return Net()
''')


def toml(config: dict) -> str:
    lines = []
    for section, table in config.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in table.items()]
    return "\n".join(lines) + "\n"


def fresh_env(extra_presets: bool = True) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    env.pop("UQBENCH_EXTRA_PRESETS", None)
    return {**env, "UQBENCH_EXTRA_PRESETS": TOY} if extra_presets else env


def cli(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`python -m benchmark ARGS` in a fresh process, from `cwd`."""
    return subprocess.run([sys.executable, "-m", "benchmark", *args], cwd=cwd, env=env or fresh_env(),
                          capture_output=True, text=True, timeout=300)


def write_inputs(folder: Path) -> None:
    """A tiny UNet folder, 8x8 grey images, a factory glue file with its weights, a plug-in estimator file."""
    tiny_unet(dropout=0.1).save_pretrained(folder / "unet")
    rng = np.random.default_rng(0)
    np.savez(folder / "data.npz", train=rng.integers(0, 256, (16, 1, 8, 8), dtype=np.uint8),
             test=rng.integers(0, 256, (8, 1, 8, 8), dtype=np.uint8))
    (folder / "glue.py").write_text(GLUE)
    sys.path.insert(0, str(folder))
    try:
        import glue  # noqa: PLC0415

        torch.save(glue.make_net().state_dict(), folder / "w.pth")
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("glue", None)
    (folder / "plug").mkdir()
    (folder / "plug" / "spread_rv.py").write_text(PLUGIN)


CONFIGS = {
    "preset": {"run": {"name": "preset", "preset": "digits", **RUN}, "protocols.cost": {}},
    "model_path": {"run": {"name": "model_path", **RUN}, "model": {"path": "unet"}, "data": {"path": "data.npz"},
                   "protocols.cost": {}},
    "factory": {"run": {"name": "factory", **RUN}, "model": {"factory": "glue.py:make_net", "weights": "w.pth"},
                "data": {"path": "data.npz"}, "protocols.cost": {}},
    "plugin": {"run": {"name": "plugin", "preset": "toy", "plugins": ["plug/spread_rv.py"], **RUN},
               "estimators.spread_rv": {}, "protocols.cost": {}},
    "extra_preset": {"run": {"name": "extra_preset", "preset": "toy", **RUN}, "protocols.cost": {}},
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """kind -> the folder of a finished run of that kind. The plug-in run goes through a fresh process (its
    estimator stays out of this process's registry); the others through the CLI's `main` in this process."""
    root = tmp_path_factory.mktemp("kinds")
    configs = root / "configs"
    configs.mkdir()
    write_inputs(configs)
    saved = os.environ.get("UQBENCH_EXTRA_PRESETS")
    os.environ["UQBENCH_EXTRA_PRESETS"] = TOY
    try:
        out = {}
        for kind, config in CONFIGS.items():
            path = configs / f"{kind}.toml"
            path.write_text(toml(config))
            out[kind] = root / "runs" / kind
            args = ["run", "--config", str(path), "--out", str(out[kind]), "--quiet"]
            if kind == "plugin":
                done = cli(args, cwd=configs)
                assert done.returncode == 0, done.stderr
            else:
                assert main(args) == 0
    finally:
        os.environ.pop("UQBENCH_EXTRA_PRESETS") if saved is None else os.environ.update(UQBENCH_EXTRA_PRESETS=saved)
    return out


@pytest.fixture(scope="module")
def elsewhere(tmp_path_factory) -> Path:
    """A working directory that is neither the repository nor the configs' folder."""
    return tmp_path_factory.mktemp("elsewhere")


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_of_run_is_valid_for_validate_and_leaderboard(kind, runs, elsewhere, monkeypatch, capsys):
    """`validate` from another working directory: the plug-in run in a fresh process (its estimator is not in this
    process's registry), the others in this process (faster; the same code path)."""
    run = runs[kind]
    saved = json.loads((run / "config.json").read_text())
    if kind == "plugin":
        done = cli(["validate", str(run)], cwd=elsewhere)
        code, stdout, stderr = done.returncode, done.stdout, done.stderr
    else:
        monkeypatch.chdir(elsewhere)
        monkeypatch.setenv("UQBENCH_EXTRA_PRESETS", TOY)
        code = main(["validate", str(run)])
        stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    assert "valid" in stdout and "model weights match" in stdout
    if kind == "plugin":  # recorded resolved against the config's folder, not the working directory
        [plugin] = saved["run"]["plugins"]
        assert Path(plugin).is_absolute() and plugin == str(run.parents[1] / "configs" / "plug" / "spread_rv.py")
    if kind == "model_path":
        assert saved["run"]["preset"] == "" and Path(saved["model"]["path"]).is_absolute()


def test_the_leaderboard_command_accepts_every_kind(runs, elsewhere):
    site = elsewhere / "site"
    done = cli(["leaderboard", *(str(runs[k]) for k in KINDS), "--out", str(site)], cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    text = (site / "leaderboard.md").read_text()
    assert all(f"| {kind} " in text for kind in KINDS) and "spread_rv" in text


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "plugin"])
def test_load_runs_and_check_run_agree_in_this_process(kind, runs, monkeypatch):
    monkeypatch.setenv("UQBENCH_EXTRA_PRESETS", TOY)
    check = check_run(runs[kind])
    assert check.ok and check.weights_checked, check.problems
    [info] = load_runs([runs[kind]])
    assert info.frame.equals(check.frame) and info.manifest == check.manifest


def _edit_metrics(run: Path) -> None:
    frame = pd.read_csv(run / "metrics.csv")
    frame.loc[0, "value"] += 1
    frame.to_csv(run / "metrics.csv", index=False)


def _edit_config(run: Path) -> None:
    saved = json.loads((run / "config.json").read_text())
    saved["run"]["seed"] = 7
    (run / "config.json").write_text(json.dumps(saved))


def _truncate_metrics(run: Path) -> None:
    text = (run / "metrics.csv").read_text()
    (run / "metrics.csv").write_text(text[: len(text) // 2])


@pytest.mark.parametrize("damage, reason", [
    (_edit_metrics, "metrics.csv was changed after the run"),
    (_edit_config, "config.json was changed after the run"),
    (_truncate_metrics, "metrics.csv was changed after the run"),
    (lambda run: (run / "manifest.json").unlink(), "unfinished: no manifest.json"),
], ids=["metrics edited", "config edited", "metrics truncated", "no manifest"])
def test_a_changed_run_is_refused_by_both_with_the_same_reason(damage, reason, runs, tmp_path, capsys):
    run = Path(shutil.copytree(runs["model_path"], tmp_path / "run"))
    assert check_run(run).ok
    damage(run)
    problems = check_run(run).problems
    assert problems and reason in problems[0]
    assert main(["validate", str(run)]) == 2
    assert problems[0] in capsys.readouterr().err
    assert main(["leaderboard", str(run), "--out", str(tmp_path / "site")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"cannot be put on a leaderboard: {problems[0]}" in err
    assert not (tmp_path / "site").exists()


def test_other_weights_are_refused_by_the_leaderboard_too(runs, tmp_path, monkeypatch, capsys):
    """The bug: leaderboard skipped the weights check, so it accepted a run `validate` refused."""
    monkeypatch.setenv("UQBENCH_EXTRA_PRESETS", TOY)
    run = Path(shutil.copytree(runs["extra_preset"], tmp_path / "run"))
    perturb_toy_weights(monkeypatch)
    assert main(["validate", str(run)]) == 2
    assert "model weights: preset 'toy' now loads weights whose sha256 differs" in capsys.readouterr().err
    with pytest.raises(RunValidationError, match="model weights: preset 'toy' now loads weights"):
        load_runs([run])
    # the one relaxation, the same for both: --skip-weights
    assert main(["validate", str(run), "--skip-weights"]) == 0
    assert main(["leaderboard", str(run), "--out", str(tmp_path / "site"), "--skip-weights"]) == 0


def test_a_changed_plugin_file_is_refused_by_both(runs, elsewhere):
    run = runs["plugin"]
    plugin = run.parents[1] / "configs" / "plug" / "spread_rv.py"
    plugin.write_text(PLUGIN + "\n# edited after the run\n")
    try:
        done = cli(["validate", str(run)], cwd=elsewhere)
        board = cli(["leaderboard", str(run), "--out", str(elsewhere / "refused")], cwd=elsewhere)
    finally:
        plugin.write_text(PLUGIN)
    reason = f"inputs: plug-in {plugin} ({plugin}) changed after the run"
    assert done.returncode == 2 and reason in done.stderr, done.stderr
    assert board.returncode == 2 and reason in board.stderr and board.stderr.count("\n") == 1, board.stderr
    assert not (elsewhere / "refused").exists()


def test_an_extra_preset_run_without_the_variable_names_it(runs, monkeypatch, capsys):
    monkeypatch.delenv("UQBENCH_EXTRA_PRESETS", raising=False)
    assert main(["validate", str(runs["extra_preset"])]) == 2
    err = capsys.readouterr().err
    assert "run.preset = 'toy' is invalid" in err and "UQBENCH_EXTRA_PRESETS" in err
    with pytest.raises(RunValidationError, match="UQBENCH_EXTRA_PRESETS"):
        load_runs([runs["extra_preset"]])


# ------------------------------------------------------------------ item 8: the Python API sees every preset
def digits_again():
    """A preset that takes a built-in's name (refused)."""
    from dataclasses import replace

    return replace(presets.get("digits"))


def test_presets_get_and_load_model_find_extra_presets(monkeypatch):
    from benchmark.models import DiffusersUNet, load_model
    from benchmark.presets.loading import load_preset

    monkeypatch.setenv("UQBENCH_EXTRA_PRESETS", TOY)
    assert isinstance(presets.get("toy"), ToyPreset) and isinstance(load_preset("toy"), ToyPreset)
    assert presets.origin("toy") == "$UQBENCH_EXTRA_PRESETS"
    model = load_model("toy")
    assert isinstance(model, DiffusersUNet) and model.sample_shape == (1, 8, 8)
    listing = subprocess.run([sys.executable, "-m", "benchmark", "list"], cwd=REPO, env=fresh_env(),
                             capture_output=True, text=True, timeout=120)
    assert listing.returncode == 0 and "  toy  " in listing.stdout  # what `list` shows, the API finds


def test_unknown_presets_name_the_variable_that_adds_one(monkeypatch):
    from benchmark.presets.loading import load_preset

    monkeypatch.delenv("UQBENCH_EXTRA_PRESETS", raising=False)
    for find, field in ((presets.get, "preset"), (load_preset, "run.preset")):
        with pytest.raises(ConfigError, match=f"^{field} = 'nope' is invalid: one of digits, .*UQBENCH_EXTRA_PRESETS"):
            find("nope")
    with pytest.raises(ConfigError, match="UQBENCH_EXTRA_PRESETS=module:attribute"):
        presets.get("toy")


def test_an_extra_preset_cannot_take_a_built_in_name(monkeypatch):
    monkeypatch.setenv("UQBENCH_EXTRA_PRESETS", f"{__name__}:digits_again")
    with pytest.raises(ConfigError, match="'digits' is taken \\(built-in\\)"):
        presets.extra_presets()
