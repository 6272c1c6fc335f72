"""Bad-input catalogue, part 3 (issue 27 items 3 and 5): each input is refused with exit 2 and one line naming the
field and the fix, before anything is written (`--out` untouched). Parts 1 and 2: tests/test_bad_inputs.py,
tests/test_bad_inputs_cli.py, tests/test_bad_inputs_factory.py. This part: the remaining [run] / [estimators.*] /
[protocols.*] / [data] / [model] keys, data files (truncated images, object / NaN / empty / truncated arrays, one
class subfolder), hub ids without network or offline, `--out` as a dangling link (run, leaderboard), baselines with
repeated keys or negative tolerances, plug-in files, $UQBENCH_EXTRA_PRESETS and every subcommand's arguments. All
run in-process (`benchmark.cli.main`) and fail at parse or preflight time.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from tests.bad_input_cases import Argv, Case, assert_refused, variant_presets  # noqa: F401 (the autouse fixture)
from tests.test_bad_inputs import BASE, changed, raw, to_toml
from tests.test_bad_inputs_cli import write_baseline, write_run
from tests.test_bad_inputs_factory import BASE as FACTORY_BASE
from tests.test_bad_inputs_factory import NET, prepare_folder, with_model

def run(config: dict | str, prepare: Callable[[Path, pytest.MonkeyPatch], Any] | None = None, out: str = "out") -> Argv:
    """`run --config bad.toml --out <tmp>/<out>` on a config of the toy preset (tests/test_bad_inputs.BASE)."""
    def argv(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
        (tmp / "bad.toml").write_text(config if isinstance(config, str) else to_toml(config))
        if prepare is not None:
            prepare(tmp, mp)
        return ["run", "--config", str(tmp / "bad.toml"), "--out", str(tmp / out), "--quiet"]
    return argv


def factory_run(config: dict, *steps: Callable[[Path], Any]) -> Argv:
    """`run` on a config of a plain PyTorch network with [data] (tests/test_bad_inputs_factory.BASE)."""
    def argv(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
        path = prepare_folder(tmp, config, list(steps))
        return ["run", "--config", str(path), "--out", str(tmp / "out"), "--quiet"]
    return argv


def cli(*args: str | Callable[[Path], Any]) -> Argv:
    return lambda tmp, mp: [str(a(tmp)) if callable(a) else a for a in args]


def with_data(model: dict | None = None, **data: Any) -> dict:
    """The factory config reading `[data]` before any work: the sparsification protocol loads the test images."""
    return {**FACTORY_BASE, "data": data, "protocols": {"sparsification": {"num_images": 2}},
            "model": {**FACTORY_BASE["model"], **(model or {})}}


def pngs(*classes: str, n: int = 4, damage: Callable[[Path], None] | None = None, size: int = 8):
    """PNG files <tmp>/imgs/<class>/<i>.png (classes "" = directly in imgs/); `damage` is applied to 1.png."""
    def make(tmp: Path) -> None:
        from PIL import Image
        rng = np.random.default_rng(0)
        for c in classes or ("",):
            folder = tmp / "imgs" / c
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8)).save(folder / f"{i}.png")
        if damage is not None:
            damage(sorted((tmp / "imgs").rglob("1.png"))[0])
    return make


truncated = lambda path: path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])  # noqa: E731
npz = lambda **arrays: lambda tmp: np.savez(tmp / "d.npz", **arrays)  # noqa: E731 (the data file d.npz)
dangling = lambda name: lambda tmp, mp: os.symlink(tmp / "nowhere", tmp / name)  # noqa: E731 (a link to nothing)


def file(name: str, data: bytes = b"") -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        (tmp / name).write_bytes(data)
        return tmp / name
    return make


def edited(make: Callable[[Path], Path], edit: Callable[[list[str]], list[str]]) -> Callable[[Path], Path]:
    def build(tmp: Path) -> Path:
        made = make(tmp)
        csv = made / "metrics.csv" if made.is_dir() else made
        csv.write_text("\n".join(edit(csv.read_text().splitlines())) + "\n")
        return made
    return build


def baseline_lines(edit: Callable[[list[str]], list[str]]) -> Argv:
    return regress(edited(lambda t: write_baseline(t / "b.csv"), edit))


def regress(baseline: Callable[[Path], Path] = lambda t: write_baseline(t / "baseline.csv"),
            run_dir: Callable[[Path], Path] = lambda t: write_run(t / "run"), *extra: str) -> Argv:
    return cli("regress", "--baseline", baseline, "--run", run_dir, *extra)


def plugin_run(source: str, name: str = "plug.py") -> Argv:
    return run(changed("run", "plugins", [name]), lambda tmp, mp: (tmp / name).write_text(source))


def env(name: str, value: str) -> Argv:
    return run(BASE, lambda tmp, mp: mp.setenv(name, value))


def no_network(tmp: Path, mp: pytest.MonkeyPatch) -> None:
    mp.delenv("HF_HUB_OFFLINE", raising=False)
    mp.setattr("benchmark.models.loading.hub_reachable", lambda *a, **k: False)


def hub_run(prepare: Callable[[Path, pytest.MonkeyPatch], None]) -> Argv:
    config = {**{s: t for s, t in FACTORY_BASE.items() if s != "data"}, "model": {"path": "uqbench-tests/no-such-model"}}
    return lambda tmp, mp: (prepare(tmp, mp), factory_run(config)(tmp, mp))[1]


C = changed
ESTIMATOR = {"m": 2, "window": [25, 50]}
CONDITIONAL = NET + "\n_f = Net.forward\nNet.forward = lambda self, x, t, y: _f(self, x, t)\n"
KIND_PLUGIN = ("import estimators\nfrom estimators.base import UncertaintyEstimator\n\n\n@estimators.register('mine')\n"
               "class Mine(UncertaintyEstimator):\n    kind = 'magic'\n\n    def observe(self, step):\n        pass\n\n"
               "    def result(self):\n        pass\n")

CASES = [
    # ---- issue 27's open rows: the run folder and the leaderboard's folder
    Case("run --out a dangling symlink", run(BASE, dangling("out")), "--out", "remove the link"),
    Case("run --out below a dangling symlink", run(BASE, dangling("link"), out="link/run"), "--out", "remove the link"),
    Case("leaderboard --out an existing file", cli("leaderboard", "results/reference/demo/seed_0", "--out", file("board")),
         "--out", "choose another --out or remove the file"),
    Case("leaderboard --out a dangling symlink", lambda tmp, mp: (dangling("board")(tmp, mp), cli(
        "leaderboard", "results/reference/demo/seed_0", "--out", str(tmp / "board"))(tmp, mp))[1], "--out", "remove the link"),
    Case("leaderboard --out below a file", cli("leaderboard", "results/reference/demo/seed_0", "--out",
                                               lambda t: file("f")(t) / "board"), "--out", "choose another --out"),
    # ---- issue 27's open rows: data files
    Case("a truncated PNG in the data folder", factory_run(with_data(path="imgs"), pngs(damage=truncated)), "1.png",
         "remove or re-save"),
    Case("a text file named .png in the data folder",
         factory_run(with_data(path="imgs"), pngs(damage=lambda p: p.write_text("not an image"))), "1.png",
         "remove or re-save"),
    Case("an object-dtype .npz", factory_run(with_data(path="d.npz"), npz(x=np.array([{"a": 1}] * 4, dtype=object))),
         "data.path (x)", "save the images as numbers"),
    Case("an object-dtype .npy", factory_run(with_data(path="d.npy"), lambda t: np.save(
        t / "d.npy", np.array([{"a": 1}] * 4, dtype=object), allow_pickle=True)), "data.path", "save the images as numbers"),
    Case("NaN in an .npz", factory_run(with_data(path="d.npz"), npz(x=np.full((4, 1, 8, 8), np.nan, np.float32))),
         "data.path (x)", "repair or drop those images"),
    Case("inf in an .npz with a declared range", factory_run(with_data(path="d.npz", range="-1,1"), npz(
        x=np.full((4, 1, 8, 8), np.inf, np.float32))), "data.path (x)", "repair or drop those images"),
    Case("an empty .npz file", factory_run(with_data(path="d.npz"), file("d.npz")), "data.path",
         "re-save d.npz with np.save / np.savez"),
    Case("a truncated .npz file", factory_run(with_data(path="d.npz"), npz(x=np.zeros((4, 1, 8, 8), np.uint8)),
                                                lambda t: truncated(t / "d.npz")), "data.path", "re-save d.npz"),
    Case("an .npz of strings", factory_run(with_data(path="d.npz"), npz(x=np.array([["a"] * 4] * 4))), "data.path",
         "save the images as one 4-d array"),
    Case("an .npz of 5 channels", factory_run(with_data(path="d.npz"), npz(x=np.zeros((4, 5, 8, 8), np.uint8))),
         "data.path", "save grey (1 channel) or RGB (3 channels)"),
    Case("an .npz of three image arrays", factory_run(with_data(path="d.npz"), npz(
        a=np.zeros((4, 1, 8, 8), np.uint8), b=np.zeros((4, 1, 8, 8), np.uint8))), "data.path",
         "np.savez(path, train=..., test=...)"),
    Case("float labels in an .npz", factory_run(with_data(path="d.npz"), npz(
        x=np.zeros((4, 1, 8, 8), np.uint8), labels=np.zeros(4, np.float32))), "data.path (labels)", "dtype=np.int64"),
    Case("fewer labels than images", factory_run(with_data(path="d.npz"), npz(
        x=np.zeros((4, 1, 8, 8), np.uint8), labels=np.zeros(3, np.int64))), "data.path (labels)", "dtype=np.int64"),
    Case("floats in [0, 1] without a range", factory_run(with_data(path="d.npz"), npz(
        x=np.full((4, 1, 8, 8), 0.5, np.float32))), "data.range", 'range = "0,1"'),
    Case("floats outside the declared range", factory_run(with_data(path="d.npz", range="0,1"), npz(
        x=np.full((4, 1, 8, 8), 3.0, np.float32))), "data.range = '0,1'", "declare the range the array uses"),
    Case("images of two sizes", factory_run(with_data(path="imgs"), pngs(), lambda t: pngs(n=1, size=6)(t / "more"),
                                            lambda t: (t / "more" / "imgs" / "0.png").rename(t / "imgs" / "9.png")),
         "data.path", "resize or convert the images"),
    Case("an empty image folder", factory_run(with_data(path="imgs"), lambda t: (t / "imgs").mkdir()), "data.path",
         "put the images there"),
    Case("images of the wrong shape for the model", factory_run(with_data(path="imgs"), pngs(size=6)), "data",
         "resize/convert the images"),
    Case("a single class subfolder for a conditional model", factory_run(
        with_data(path="imgs", model={"num_classes": 2}), pngs("cats"), lambda t: (t / "net.py").write_text(CONDITIONAL)),
        "one class subfolder (cats/)", "put each class's images in a subfolder"),
    Case("data path a text file", factory_run(with_data(path="notes.txt"), file("notes.txt", b"x")), "data.path",
         "convert the data"),
    Case("data path missing", factory_run(with_data(path="nowhere")), "data.path", "give a path relative"),
    Case("data path not a string", factory_run(with_data(path=5)), "data.path", "give a path as a string"),
    Case("reference_stats missing", factory_run(with_data(path="data.npz", reference_stats="stats.npz")),
         "data.reference_stats", "give a path relative"),
    Case("reference_stats without sigma", factory_run(with_data(path="data.npz", reference_stats="stats.npz"),
                                                      lambda t: np.savez(t / "stats.npz", mu=np.zeros(3))),
         "data.reference_stats", "np.savez(path, mu=mu, sigma=sigma)"),
    Case("reference_stats of mismatched shapes", factory_run(with_data(path="data.npz", reference_stats="stats.npz"),
        lambda t: np.savez(t / "stats.npz", mu=np.zeros(3), sigma=np.zeros((2, 2)))), "data.reference_stats", "np.cov"),
    Case("data range with a built-in dataset", run({**BASE, "data": {"name": "digits", "range": "0,1"}}), "data.range",
         "remove data.range"),
    Case("data name and path", run({**BASE, "data": {"name": "digits", "path": "x"}}), "data", 'path = "my_images"'),
    Case("data name unknown", run({**BASE, "data": {"name": "cifar"}}), "data.name", "give data.path"),
    Case("data range unknown", run({**BASE, "data": {"name": "digits", "range": "0,2"}}), "data.range",
         'range = "0,1"'),
    Case("data key misspelt", run({**BASE, "data": {"pth": "x"}}), "data.pth", "correct the spelling"),
    # ---- issue 27's open rows: sizes that exhaust the machine, refused at parse time with a stated bound
    Case("num_samples = 2**63-1", run(C("run", "num_samples", 2**63 - 1)), "run.num_samples", "at most 1000000"),
    Case("threads = 100000", run(C("run", "threads", 100000)), "run.threads", "at most 1024"),
    # ---- issue 27's open rows: hub ids that cannot be downloaded (never downloads: the probe is replaced)
    Case("hub id without network", hub_run(no_network), "model.path = 'uqbench-tests/no-such-model'",
         "allow downloads"),
    Case("hub id with HF_HUB_OFFLINE", hub_run(lambda tmp, mp: mp.setenv("HF_HUB_OFFLINE", "1")), "model.path",
         "unset HF_HUB_OFFLINE"),
    # ---- issue 27's open rows: estimator parameters refused with a fix
    Case("estimator window (-5, 10)", run(C("estimators", "sensitivity", {"m": 2, "window": [-5, 10]})),
         "estimators.sensitivity.window", "start below stop"),
    Case("estimator window (49, 45)", run(C("estimators", "sensitivity", {"m": 2, "window": [49, 45]})),
         "estimators.sensitivity.window", "window = [45, 49]"),
    Case("flip window (49, 45)", run(C("estimators", "flip", {"window": [49, 45]})), "estimators.flip.window",
         "window = [45, 49]"),
    Case("noise_perturbation sigma < 0", run(C("estimators", "noise_perturbation", {"sigma": -1.0, "window": [25, 50]})),
         "estimators.noise_perturbation.sigma", "set sigma = 0.1"),
    Case("noise_perturbation sigma = 0", run(C("estimators", "noise_perturbation", {"sigma": 0, "window": [25, 50]})),
         "estimators.noise_perturbation.sigma", "set sigma = 0.1"),
    Case("bayesdiff mc_samples = 0", run(C("estimators", "bayesdiff", {"mc_samples": 0})),
         "estimators.bayesdiff.mc_samples", "mc_samples = 5"),
    Case("mc_dropout m = 1", run(C("estimators", "mc_dropout", {"m": 1, "window": [25, 50]})),
         "estimators.mc_dropout.m", "m = 5"),
    Case("bayesdiff skip = 0", run(C("estimators", "bayesdiff", {"skip": 0})), "estimators.bayesdiff.skip",
         "set skip = 5"),
    Case("bayesdiff eps_variance unknown", run(C("estimators", "bayesdiff", {"eps_variance": "both"})),
         "estimators.bayesdiff.eps_variance", 'eps_variance = "total"'),
    Case("bayesdiff skip_rule unknown", run(C("estimators", "bayesdiff", {"skip_rule": "every"})),
         "estimators.bayesdiff.skip_rule", 'skip_rule = "contraction"'),
    Case("bayesdiff mc_estimator unknown", run(C("estimators", "bayesdiff", {"mc_estimator": "mean"})),
         "estimators.bayesdiff.mc_estimator", 'mc_estimator = "regression"'),
    Case("bayesdiff regression with 2 draws", run(C("estimators", "bayesdiff", {"mc_samples": 2})),
         "estimators.bayesdiff.mc_samples = 2", "mc_estimator='plain'"),
    Case("negate as a string", run(C("estimators", "sensitivity", {**ESTIMATOR, "negate": "yes"})),
         "estimators.sensitivity.negate = 'yes'", "set negate = true"),
    Case("window of one item", run(C("estimators", "sensitivity", {"m": 2, "window": [25]})),
         "estimators.sensitivity.window", "set window = [45, 49]"),
    Case("estimator type unknown", run(C("estimators", "sens2", {"type": "sensitivty"})), "estimators.sens2.type",
         'set type = "<estimator>"'),
    Case("flip axis unknown", run(C("estimators", "flip", {"axis": "diagonal", "window": [25, 50]})),
         "estimators.flip.axis", "dims=[2] is 'vertical'"),
    Case("noise_perturbation sigma inf", run(raw(rest="[estimators.noise_perturbation]\nsigma = inf\nwindow = [25, 50]\n[protocols.cost]\n")),
         "estimators.noise_perturbation.sigma = inf", "set sigma = 0.1"),
    # ---- [run] keys
    Case("keep = 0", run(C("run", "keep", 0)), "run.keep = 0", "set keep = 500"),
    Case("keep_fraction = 0", run(C("run", "keep_fraction", 0.0, drop="keep")), "run.keep_fraction", "0.833"),
    Case("guidance_scale as a string", run(C("run", "guidance_scale", "3")), "run.guidance_scale", "guidance_scale = 3"),
    Case("prompts empty", run(C("run", "prompts", [])), "run.prompts = []", 'run.prompts = ["a photo of a cat"]'),
    Case("prompts_file missing", run(C("run", "prompts_file", "nope.txt")), "run.prompts_file", "check the path"),
    Case("pixel_maps unknown", run(C("run", "pixel_maps", "bilinear")), "run.pixel_maps", 'pixel_maps = "upsample"'),
    Case("decoder_mc_samples = 1", run(C("run", "decoder_mc_samples", 1)), "run.decoder_mc_samples",
         "decoder_mc_samples = 8"),
    Case("name empty", run(C("run", "name", "")), "run.name = ''", "use a plain folder name"),
    Case("plugins as a string", run(C("run", "plugins", "my_plugin")), "run.plugins", 'plugins = ["my_package'),
    Case("plug-in .py file missing", run(C("run", "plugins", ["nope_plugin.py"])), "run.plugins",
         "give a path relative to the config file"),
    Case("steps negative", run(C("run", "steps", -3)), "run.steps = -3", "set steps = 50"),
    Case("threads as a string", run(C("run", "threads", "4")), "run.threads = '4'", "set threads = 1"),
    Case("num_samples of 1", run(C("run", "num_samples", 1)), "run.num_samples = 1", "set num_samples = 600"),
    Case("sampler as a number", run(C("run", "sampler", 3)), "run.sampler", "set sampler"),
    Case("multiplicity as a bool", run(C("run", "multiplicity", False)), "run.multiplicity", 'run.multiplicity = "holm"'),
    Case("device empty", run(C("run", "device", "")), "run.device = ''", 'run.device = "cpu"'),
    Case("run table as a value", run("run = 5\n"), "run = 5", "[run] table"),
    Case("duplicate key", run('[run]\npreset = "toy"\npreset = "toy"\n'), "--config", "fix the syntax"),
    Case("empty config file", run(""), "run.preset", "set run.preset"),
    # ---- [protocols.*] keys
    Case("noise_fraction = 1", run(C("protocols", "sparsification", {"noise_fraction": 1.0})),
         "protocols.sparsification.noise_fraction", "noise_fraction = 0.5"),
    Case("sparsification num_images = 0", run(C("protocols", "sparsification", {"num_images": 0})),
         "protocols.sparsification.num_images = 0", "set num_images"),
    Case("curve_fractions empty", run(C("protocols", "filtered_fid", {"curve_fractions": []})),
         "protocols.filtered_fid.curve_fractions = []", "set curve_fractions"),
    Case("curve fraction above 1", run(C("protocols", "filtered_fid", {"curve_fractions": [0.5, 1.5]})),
         "protocols.filtered_fid.curve_fractions", "set curve_fractions"),
    Case("fid_infinity_points = 1", run(C("protocols", "filtered_fid", {"fid_infinity_points": 1})),
         "protocols.filtered_fid.fid_infinity_points", "fid_infinity_points = 5"),
    Case("guidance center unknown", run(C("protocols", "guidance", {"center": "median"})), "protocols.guidance.center",
         'set center = "mean"'),
    Case("guidance thresholds unknown", run(C("protocols", "guidance", {"thresholds": "global"})),
         "protocols.guidance.thresholds", 'set thresholds = "per_image"'),
    Case("augmentation cut_step = 50", run(C("protocols", "augmentation", {"cut_step": 50})),
         "protocols.augmentation.cut_step = 50", "40 = the default"),
    Case("augmentation variants = 1", run(C("protocols", "augmentation", {"variants": 1})),
         "protocols.augmentation.variants = 1", "set variants = 6"),
    Case("rectification tries = 0", run(C("protocols", "rectification", {"tries": 0})),
         "protocols.rectification.tries = 0", "set tries = 4"),
    Case("rectification renoise_step = 0", run(C("protocols", "rectification", {"renoise_step": 0})),
         "protocols.rectification.renoise_step = 0", "re-noising step"),
    Case("rectification percentile = 100", run(C("protocols", "rectification", {"percentile": 100})),
         "protocols.rectification.percentile", "set percentile = 90.0"),
    Case("ground_truth target_samples = 1", run(C("protocols", "ground_truth", {"target_samples": 1})),
         "protocols.ground_truth.target_samples = 1", "set target_samples"),
    Case("cost key unknown", run(C("protocols", "cost", {"speed": 1})), "protocols.cost.speed", "correct the spelling"),
    Case("protocol table as a value", run(raw(rest="[protocols]\ncost = 1\n")), "protocols.cost = 1",
         "[protocols.cost] table"),
    # ---- [model] keys (a diffusers folder or hub id) and the factory's files
    Case("model num_classes = 0", run({**BASE, "model": {"path": "x", "num_classes": 0}}), "model.num_classes",
         "remove the key"),
    Case("model last_layer empty", run({**BASE, "model": {"path": "x", "last_layer": ""}}), "model.last_layer",
         'last_layer = "conv_out"'),
    Case("model path empty", run({**BASE, "model": {"path": ""}}), "model.path", 'path = "my_model"'),
    Case("model key misspelt", run({**BASE, "model": {"path": "x", "classes": 3}}), "model.classes",
         "correct the spelling"),
    Case("model folder without a known layout", factory_run(
        {**{s: t for s, t in FACTORY_BASE.items()}, "model": {"path": "empty_model"}},
        lambda t: (t / "empty_model").mkdir()), "empty_model", "point model.path to a diffusers pipeline folder"),
    Case("factory weights truncated", factory_run(FACTORY_BASE, lambda t: truncated(t / "net.pth")), "model.weights",
         ".pt"),
    Case("factory schedule file missing", factory_run(with_model(alphas_cumprod="ab.npy")), "model.alphas_cumprod",
         "ab.npy"),
    Case("factory num_train_timesteps = 0", factory_run(with_model(num_train_timesteps=0)),
         "model.num_train_timesteps", "num_train_timesteps"),
    # ---- plug-in files
    Case("plug-in with a syntax error", plugin_run("def (:\n"), "run.plugins", "fix the plug-in"),
    Case("plug-in that raises on import", plugin_run("raise RuntimeError('boom')\n"), "RuntimeError: boom",
         "fix the plug-in"),
    Case("plug-in estimator of an unknown kind", plugin_run(KIND_PLUGIN), "kind = 'magic'", "fix the plug-in"),
    Case("plug-in re-registering a built-in name", plugin_run(KIND_PLUGIN.replace("'mine'", "'sensitivity'").replace(
        "    kind = 'magic'\n", "")), "already registered", "fix the plug-in"),
    Case("plug-in a .txt file", plugin_run("x = 1\n", "plug.txt"), "run.plugins", "give the path of a .py file"),
    # ---- environment variables
    Case("UQBENCH_EXTRA_PRESETS module missing", env("UQBENCH_EXTRA_PRESETS", "no_such_module:X"),
         "UQBENCH_EXTRA_PRESETS", "unset the variable"),
    Case("UQBENCH_EXTRA_PRESETS attribute missing", env("UQBENCH_EXTRA_PRESETS", "tests.toy_preset:Nope"),
         "UQBENCH_EXTRA_PRESETS", "unset the variable"),
    Case("UQBENCH_EXTRA_PRESETS without a colon", env("UQBENCH_EXTRA_PRESETS", "tests.toy_preset"),
         "UQBENCH_EXTRA_PRESETS", "UQBENCH_EXTRA_PRESETS=mypackage.presets:MyPreset"),
    Case("UQBENCH_EXTRA_PRESETS not a preset", env("UQBENCH_EXTRA_PRESETS", "tests.toy_preset:torch"),
         "UQBENCH_EXTRA_PRESETS", "benchmark.presets.Preset object"),
    # ---- issue 27's open rows: baselines of regress (exit 2, never 1)
    Case("baseline with a repeated key", baseline_lines(lambda lines: lines + [lines[1]]), "--baseline",
         "remove the repeated line"),
    Case("baseline with a negative abs_tol", baseline_lines(lambda ls: [ls[0], ls[1].replace(",0.01,", ",-0.01,"),
                                                                        *ls[2:]]), "--baseline", "set abs_tol >= 0"),
    Case("baseline with a negative rel_tol", baseline_lines(lambda ls: [ls[0], ls[1][: ls[1].rindex(",")] + ",-0.5",
                                                                        *ls[2:]]), "--baseline", "set rel_tol >= 0"),
    Case("baseline with a NaN tolerance", baseline_lines(lambda ls: [ls[0], ls[1].replace(",0.01,", ",nan,"), *ls[2:]]),
         "--baseline", "regress --write-baseline"),
    Case("run metrics with a repeated key", regress(run_dir=edited(lambda t: write_run(t / "run"),
                                                                   lambda lines: lines + [lines[1]])),
         "metrics.csv", "give a finished run folder"),
    Case("baseline a folder", regress(baseline=lambda t: t), "--baseline", "regress --write-baseline"),
    Case("regress --run a file", regress(run_dir=lambda t: write_baseline(t / "b.csv")), "--run", "run the config first"),
    Case("write a baseline onto a folder", cli("regress", "--baseline", lambda t: t, "--run", lambda t: write_run(
        t / "run"), "--write-baseline"), "--baseline", "give a file name"),
    Case("write a baseline below a file", cli("regress", "--baseline", lambda t: file("f")(t) / "b.csv", "--run",
                                              lambda t: write_run(t / "run"), "--write-baseline"), "--baseline",
         "give a file name"),
    # ---- arguments of every subcommand
    Case("run --preset unknown", lambda tmp, mp: [*run(BASE)(tmp, mp), "--preset", "nope"], "run.preset",
         "python -m benchmark list"),
    Case("run --out without a value", lambda tmp, mp: [*run(BASE)(tmp, mp)[:3], "--out"], "expected one argument",
         "--help"),
    Case("validate without a folder", cli("validate"), "required: run", "uqbench validate --help"),
    Case("validate with an unknown option", cli("validate", "x", "--fast"), "unrecognized arguments: --fast", "--help"),
    Case("regress without --run", cli("regress", "--baseline", "b.csv"), "required: --run", "uqbench regress --help"),
    Case("regress tolerance inf", lambda tmp, mp: [*regress()(tmp, mp), "--abs-tol", "inf"], "--abs-tol = inf",
         "e.g. --abs-tol 0.05"),
    Case("list with an unknown option", cli("list", "--all"), "unrecognized arguments: --all", "--help"),
    Case("list --plugins module missing", cli("list", "--plugins", "no_such_mod"), "--plugins", "fix the name"),
    Case("list --plugins file broken", cli("list", "--plugins", file("p.py", b"def (:\n")), "--plugins",
         "fix the plug-in"),
    Case("leaderboard with an unknown option", cli("leaderboard", "x", "--sort"), "unrecognized arguments: --sort",
         "--help"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_exits_with_one_line_and_writes_nothing(case: Case, tmp_path, monkeypatch, capsys):
    assert_refused(case, tmp_path, monkeypatch, capsys)


def test_the_catalogue_has_at_least_150_cases():
    from tests import test_bad_inputs, test_bad_inputs_cli, test_bad_inputs_factory, test_bad_inputs_sizes_and_files

    counts = [len(m.CASES) for m in (test_bad_inputs, test_bad_inputs_factory, test_bad_inputs_sizes_and_files)] + [
        len(test_bad_inputs_cli.CLI_CASES)]
    assert sum(counts) + len(CASES) >= 150, counts  # issue 27 item 5
    assert len(test_bad_inputs_sizes_and_files.CASES) >= 40  # issue 36: sizes, ranges, files, messages
    assert len({c.name for c in CASES}) == len(CASES)  # each case a distinct input
