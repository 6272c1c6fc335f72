"""Catalogue of bad inputs through the CLI: each exits with code 2 and one paragraph that names the field and
the fix, before anything is written (the --out folder is not even created).

Each case changes one thing in a config that is known to be good (`test_the_base_config_is_good`): a
config value, or the preset (a variant of the toy preset reached through $UQBENCH_EXTRA_PRESETS: a model
without dropout, without a last layer, with NaN weights, with missing or corrupt weights on disk, data that
is not installed). Runs go through `benchmark.cli.main`, the function behind `python -m benchmark`;
`test_exit_code_of_the_real_command` checks one case in a fresh process.

Categories (issue 17): config fields (types, ranges, cross-field constraints such as k < K, windows that hold a
step, FID subset sizes; protocols the preset cannot run, issue 11 item 5), the config file itself (TOML syntax,
UTF-16, binary), the run folder (--out a file, below a file, read-only, locked by a live run, finished, another
config, foreign files), model folders and preset capabilities, data assets, plug-ins (PLUGIN_CASES). "Nothing
written" is checked as: every file and folder under the case's tmp folder is unchanged. Command-line arguments
and the files given to `regress` / `leaderboard` are catalogued in tests/test_bad_inputs_cli.py.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
import torch

from benchmark.cli import main
from benchmark.models import DiffusersUNet
from tests.bad_input_presets import VARIANTS, FolderPreset
from tests.helpers import tiny_unet
from tests.toy_preset import ToyPreset

RESULT_FILES = ("metrics.csv", "report.md", "manifest.json")


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
    for section in (s for s in config if s not in ("run", "estimators", "protocols")):  # [model], [data]
        lines += ["", f"[{section}]", *(f"{k} = {value(v)}" for k, v in config[section].items())]
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
    config: dict | str | bytes  # a config dict, raw TOML text, or the file's raw bytes
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
    monkeypatch.setattr("benchmark.data.datasets.FASHION_SYSTEM_DIR", empty)
    monkeypatch.setenv("UQBENCH_DATA_DIR", str(empty))


def out_is_a_file(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp / "out").write_text("not a folder")


def out_below_a_file(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp / "file").write_text("not a folder")
    monkeypatch.setattr(sys.modules[__name__], "OUT_NAME", "file/run")


def out_on_a_read_only_file_system(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "OUT_NAME", "/sys/uqbench-test-run")  # sysfs: no new entries


def run_folder(config_json: str, *, finished: bool = False, lock_pid: int | None = None):
    """An existing --out: a run folder with this config.json (finished or not, locked by a live pid or not)."""
    def prepare(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        out = tmp / "out"
        (out / "shards").mkdir(parents=True)
        (out / "config.json").write_text(config_json)
        (out / "shards" / "gen_0000000_0000004.pt").write_bytes(b"a shard")
        if finished:
            (out / "manifest.json").write_text("{}")
        if lock_pid is not None:
            import socket

            (out / ".lock").write_text(json.dumps({"pid": lock_pid, "host": socket.gethostname(),
                                                    "command": "uqbench run --config other.toml", "since": "now"}))
    return prepare


def foreign_folder(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp / "out").mkdir()
    (tmp / "out" / "holiday.jpg").write_text("keep me")


def base_config_json() -> str:
    from benchmark.config import parse_config

    return json.dumps(parse_config(BASE).to_dict())


def raw(run: str = "", rest: str = "") -> str:
    """TOML text: BASE's [run] table plus `run` lines, then `rest` (other tables)."""
    return to_toml({"run": BASE["run"], "estimators": {}, "protocols": {}}) + run + "\n" + rest


OUT_NAME = "out"  # the --out of a case, relative to its tmp folder (a prepare step may change it)


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
    # ---- issue 17: type confusion, ranges, cross-field constraints (all refused in validation, milliseconds)
    Case("window of floats", changed("protocols", "guidance", {"window": [45.9, 49]}), "protocols.guidance.window",
         "0 <= start < stop <= 50"),
    Case("window of mixed types", changed("protocols", "guidance", {"window": [45.9, "49"]}),
         "protocols.guidance.window", "0 <= start < stop <= 50"),
    Case("window of three items", changed("protocols", "guidance", {"window": [40, 45, 49]}),
         "protocols.guidance.window", "exactly 2 items"),
    Case("noise fraction as a word", changed("protocols", "sparsification", {"noise_fraction": "half"}),
         "protocols.sparsification.noise_fraction = 'half'", "set noise_fraction = 0.5"),
    Case("enabled as a string", changed("protocols", "cost", {"enabled": "false"}), "protocols.cost.enabled",
         "true or false"),
    Case("k not below K", changed("protocols", "precision_recall", {"k": 3}), "protocols.precision_recall.k = 3",
         "k < K = 3"),
    Case("zero sparsification fractions", changed("protocols", "sparsification", {"fractions": 0}),
         "protocols.sparsification.fractions", "set fractions = 50"),
    Case("curve subset of two samples", {**changed("run", "num_samples", 40), "protocols":
                                         {"filtered_fid": {"curve_fractions": [0.05, 1.0]}}},
         "protocols.filtered_fid.curve_fractions", "raise the smallest fraction to >= 0.25"),
    Case("one step for the guidance window", {**changed("run", "steps", 1), "estimators": {},
                                              "protocols": {"guidance": {}}},
         "protocols.guidance.window = [45, 49]", "raise run.steps"),
    Case("default estimator window with 2 steps", changed("estimators", "sensitivity", {"m": 2}),
         "estimators.sensitivity.window = [45, 49]", "raise run.steps"),
    Case("name escaping results/", changed("run", "name", "../../x"), "run.name = '../../x'", 'no "/" or ".."'),
    Case("steps as a float", changed("run", "steps", 50.0), "run.steps = 50.0", "set steps = 50"),
    Case("num_samples as a string", changed("run", "num_samples", "600"), "run.num_samples = '600'",
         "set num_samples = 600"),
    Case("seed as a bool", changed("run", "seed", True), "run.seed = True", "set seed = 0"),
    Case("too few bootstrap replicates", changed("run", "bootstrap", 5), "run.bootstrap = 5", "set bootstrap = 200"),
    Case("device name unknown", changed("run", "device", "gpu"), "run.device = 'gpu'", 'run.device = "cpu"'),
    Case("cuda index without a GPU", changed("run", "device", "cuda:7"), "run.device = 'cuda:7'", 'run.device = "cpu"'),
    Case("features not a list", changed("run", "features", "classifier"), "run.features = 'classifier'",
         'run.features = ["classifier"]'),
    Case("keep and keep_fraction", changed("run", "keep_fraction", 0.5), "run.keep", "remove one of run.keep"),
    Case("keep fraction above 1", changed("run", "keep_fraction", 1.5, drop="keep"), "run.keep_fraction = 1.5",
         "keep_fraction = 0.833"),
    Case("zero threads", changed("run", "threads", 0), "run.threads = 0", "set threads = 1"),
    Case("estimator M as a float", changed("estimators", "sensitivity", {"m": 2.5, "window": [25, 50]}),
         "estimators.sensitivity.m = 2.5", "set m = 5"),
    Case("estimator window of floats", changed("estimators", "sensitivity", {"m": 2, "window": [25.5, 50]}),
         "estimators.sensitivity.window = [25.5, 50]", "set window = [45, 49]"),
    Case("estimator option as a string", changed("estimators", "mc_dropout", {"window": [25, 50], "keep_steps": "yes"}),
         "estimators.mc_dropout.keep_steps = 'yes'", "set keep_steps = false"),
    Case("fit_images as a word", changed("estimators", "bayesdiff", {"fit_images": "all"}),
         "estimators.bayesdiff.fit_images = 'all'", "set fit_images = 500"),
    Case("percentile as a string", changed("protocols", "guidance", {"percentile": "95"}),
         "protocols.guidance.percentile = '95'", "set percentile = 95.0"),
    Case("guidance strength NaN", raw(rest="[protocols.guidance]\nstrength = nan\n"), "protocols.guidance.strength = nan",
         "set strength = 1.0"),
    Case("guidance on one sample", changed("protocols", "guidance", {"num_samples": 1}),
         "protocols.guidance.num_samples = 1", "set num_samples = 60"),
    Case("lowest-density fraction of 1", changed("protocols", "ground_truth", {"lowest_density_fraction": 1.0}),
         "protocols.ground_truth.lowest_density_fraction", "set lowest_density_fraction = 0.1"),
    Case("estimator table as a value", raw(rest="[estimators]\nsensitivity = 5\n"), "estimators.sensitivity = 5",
         "[estimators.sensitivity] table"),
    Case("misspelt section", raw(rest="[protocol.cost]\n"), "protocol", "sections are [run]"),
    Case("no preset", "[run]\nsteps = 2\n", "run.preset", "set run.preset"),
    # ---- issue 11 item 5: a protocol that cannot run is a config error, not a silent skip
    Case("ground truth without an oracle", {**changed("run", "preset", "toy-no-oracle"),
                                            "protocols": {"ground_truth": {}}},
         "protocols.ground_truth", 'run.preset = "gmm"'),
    Case("filtered FID without a feature space", {**changed("run", "features", []), "protocols": {"filtered_fid": {}}},
         "run.features = []", 'set run.features = ["classifier"]'),
    Case("keep == num_samples", {**changed("run", "keep", 4), "protocols": {"precision_recall": {"k": 2}}},
         "run.keep = 4", "lower run.keep"),
    # ---- the config file itself
    Case("config saved as UTF-16", to_toml(BASE).encode("utf-16"), "--config", "save the file as UTF-8"),
    Case("binary config", bytes(range(256)) * 4, "--config", "save the file as UTF-8"),
    # ---- the run folder (--out)
    Case("output folder below a file", BASE, "file/run", "choose another --out", out_below_a_file),
    Case("output on a read-only file system", BASE, "/sys/uqbench-test-run", "choose a writable --out",
         out_on_a_read_only_file_system),
    Case("output folder locked by a live run", BASE, "locked by pid", "wait for that run to end",
         lambda tmp, mp: run_folder(base_config_json(), lock_pid=os.getppid())(tmp, mp)),
    Case("output folder holds a finished run", BASE, "holds a finished run", "pass --overwrite",
         lambda tmp, mp: run_folder(base_config_json(), finished=True)(tmp, mp)),
    Case("unfinished run of another config", changed("run", "seed", 3), "run.seed: 0 -> 3", "pass --overwrite",
         lambda tmp, mp: run_folder(base_config_json())(tmp, mp)),
    Case("output folder of other files", BASE, "holds other files", "choose a new --out", foreign_folder),
    # ---- model folders given in [model]
    Case("model folder that does not exist", {**{k: v for k, v in BASE.items() if k != "run"},
                                              "run": {k: v for k, v in BASE["run"].items() if k != "preset"},
                                              "model": {"path": "/nonexistent/uqbench-model"}},
         "/nonexistent/uqbench-model", "give an existing folder"),
]
# Plug-in cases (bad `run.plugins` entries, estimator classes that break the interface) are added by the
# plug-in work (issue 12) to PLUGIN_CASES; they run through the same test as CASES.
PLUGIN_CASES: list[Case] = [
    Case("plug-in module that does not exist", changed("run", "plugins", ["no_such_plugin_module"]), "run.plugins",
         "fix the name"),
]
CASES += PLUGIN_CASES
#: issue 27: ranges that depend on the model or data, and cross-field values that were silently wrong
RANGE_CASES: list[Case] = [
    Case("steps above the training timesteps", changed("run", "steps", 1001), "run.steps", "set run.steps <= 1000"),
    Case("every protocol disabled", changed("protocols", "cost", {"enabled": False}), "protocols", "enable one"),
    Case("sparsification images above the test set", changed("protocols", "sparsification", {"num_images": 1000}),
         "protocols.sparsification.num_images", "num_images <= 64"),
    Case("guided samples above N", changed("protocols", "guidance", {"num_samples": 10, "window": [25, 50]}),
         "protocols.guidance.num_samples", "num_samples <= 4"),
    Case("repeated curve fraction", changed("protocols", "filtered_fid", {"curve_fractions": [0.9, 0.9]}),
         "protocols.filtered_fid.curve_fractions", "curve_fractions = [0.9]"),
    Case("repeated feature space", changed("run", "features", ["classifier", "classifier"]), "run.features",
         "run.features = ['classifier']"),
    Case("unknown multiplicity method", changed("run", "multiplicity", "bonferroni"), "run.multiplicity",
         'run.multiplicity = "holm"'),
    Case("fewer than 100 random subsets", changed("protocols", "filtered_fid", {"random_subsets": 20}),
         "protocols.filtered_fid.random_subsets", "random_subsets = 100"),
]
CASES += RANGE_CASES


@pytest.fixture(autouse=True)
def variant_presets(monkeypatch):
    monkeypatch.setenv("UQBENCH_EXTRA_PRESETS", VARIANTS)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_refused_before_any_work(case: Case, tmp_path, monkeypatch, capsys):
    config = tmp_path / "bad.toml"
    if isinstance(case.config, bytes):
        config.write_bytes(case.config)
    else:
        config.write_text(case.config if isinstance(case.config, str) else to_toml(case.config))
    if case.prepare is not None:
        case.prepare(tmp_path, monkeypatch)
    out = tmp_path / OUT_NAME
    before = snapshot(tmp_path)

    assert main(["run", "--config", str(config), "--out", str(out), "--quiet"]) == 2

    captured = capsys.readouterr()
    message = captured.err.strip()
    assert message.startswith("error: ") and "\n" not in message, message  # one line, no traceback
    assert "Traceback" not in captured.err
    assert case.field in message and case.fix in message, message
    assert captured.out == ""
    assert snapshot(tmp_path) == before  # nothing written, created or changed (an existing --out untouched)
    assert not out.exists() or out.is_file() or (tmp_path / "out").is_dir()
    assert not any((tmp_path / name).exists() for name in RESULT_FILES)


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file below `folder` and the names of its folders, by relative path. (A folder's own
    mtime is left out: the writability probe of --out creates and removes a hidden folder in it.)"""
    return {p.relative_to(folder).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else "dir"
            for p in folder.rglob("*")}


def test_the_base_config_is_good(tmp_path):
    """The config the cases change passes validation and the pre-flight checks on the toy preset, and the
    saved model folder of the weight cases loads when it is intact."""
    from benchmark.config import parse_config
    from benchmark.runner.resources import estimator_factory
    from benchmark.runner.setup import preflight

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
