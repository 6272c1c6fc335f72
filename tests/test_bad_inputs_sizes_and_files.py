"""Bad-input catalogue, part 4 (issue 36): sizes above what exists (refused, never clamped) in every protocol and
option that counts samples or images; value ranges where they cannot apply or are ambiguous; reference statistics
a run would ignore or could not use; damaged or sparse domain classifiers; messages that lacked their fix (top-level
TOML keys, estimator parameters, NaN weights, an unfinished run on a leaderboard). Every case exits 2 with one line
naming the field and the fix, before anything is written (`assert_refused`, the contract of part 3:
tests/test_bad_inputs_catalogue.py, whose helpers build the cases).
"""
from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import torch

from tests.bad_input_cases import Case, assert_refused, variant_presets  # noqa: F401 (the autouse fixture)
from tests.test_bad_inputs import BASE, changed, raw, to_toml
from tests.test_bad_inputs_catalogue import cli, factory_run, npz, pngs, run, truncated, with_data
from tests.test_bad_inputs_factory import BASE as FACTORY_BASE
from tests.test_bad_inputs_factory import NET, good_state, weights

C = changed
SMALL_STATS = lambda tmp: np.savez(tmp / "stats.npz", mu=np.zeros(3), sigma=np.eye(3))  # noqa: E731 (3-d, not 2048)
MASK = (np.random.default_rng(0).random((4, 1, 8, 8)) > 0.5).astype(np.uint8)  # uint8 holding only 0 and 1


def factory(**sections: Any) -> dict:
    """The factory config (a plain PyTorch network with [data]) with whole sections replaced or added."""
    return {**{s: dict(t) for s, t in FACTORY_BASE.items()}, **sections}


def fid_run(**data: Any) -> dict:
    """A factory run that reads the real Inception statistics: filtered FID in the Inception space (N = 20)."""
    run_section = {**FACTORY_BASE["run"], "num_samples": 20, "keep": 16, "batch_size": 20, "features": ["inception"]}
    return factory(run=run_section, data={"path": "data.npz", **data},
                   protocols={"filtered_fid": {"curve_fractions": [0.5, 1.0]}})


def with_features(*features: str, **data: Any) -> dict:
    return factory(run={**FACTORY_BASE["run"], "features": list(features)}, data={"path": "data.npz", **data},
                   protocols={"sparsification": {"num_images": 2}})


def classifier_beside(name: str, content: Callable[[Path], None]) -> Callable[[Path], None]:
    """Write `name` (a domain classifier file beside the data) with `content`."""
    return lambda tmp: content(tmp / name)


def train_folder(counts: dict[str, int], size: int = 8) -> Callable[[Path], Path]:
    """A labelled image folder <tmp>/labelled/<class>/<i>.png with counts[class] images each."""
    def make(tmp: Path) -> Path:
        from PIL import Image
        rng = np.random.default_rng(0)
        for name, count in counts.items():
            (tmp / "labelled" / name).mkdir(parents=True)
            for i in range(count):
                Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8)).save(tmp / "labelled" / name / f"{i}.png")
        return tmp / "labelled"
    return make


def train_npz(labels: list[int]) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        rng = np.random.default_rng(0)
        np.savez(tmp / "labelled.npz", images=rng.integers(0, 256, (len(labels), 1, 8, 8), dtype=np.uint8),
                 labels=np.asarray(labels, np.int64))
        return tmp / "labelled.npz"
    return make


def train(data: Callable[[Path], Path], *more: str):
    return cli("train", "--what", "classifier", "--data", data, "--epochs", "1", "--width", "4", "--no-progress", *more)


def nan_state(value: float = math.nan) -> Callable[[Path], None]:
    return weights(lambda: {k: torch.full_like(v, value) if k.startswith("conv_out") else v
                            for k, v in good_state().items()})


def unfinished_demo(tmp: Path) -> Path:
    run_dir = tmp / "unfinished"
    shutil.copytree(Path(__file__).resolve().parents[1] / "results" / "reference" / "demo" / "seed_0", run_dir)
    (run_dir / "manifest.json").unlink()
    return run_dir


def top_level(line: str) -> str:
    return line + "\n" + to_toml(BASE)


CASES = [
    # ---- sizes above what exists: refused, never clamped (augmentation was clamped to N)
    Case("augmentation num_samples above N", run(C("protocols", "augmentation", {"num_samples": 10})),
         "protocols.augmentation.num_samples = 10", "set protocols.augmentation.num_samples <= 4"),
    Case("augmentation num_samples = N + 1", run(C("protocols", "augmentation", {"num_samples": 5})),
         "protocols.augmentation.num_samples = 5", "<= 4 or raise run.num_samples"),
    Case("ground_truth target_samples above N", run(C("protocols", "ground_truth", {"target_samples": 64})),
         "protocols.ground_truth.target_samples = 64", "set protocols.ground_truth.target_samples <= 4"),
    Case("ground_truth target_samples = N + 1", run(C("protocols", "ground_truth", {"target_samples": 5})),
         "protocols.ground_truth.target_samples = 5", "raise run.num_samples"),
    Case("guidance num_samples = N + 1", run(C("protocols", "guidance", {"num_samples": 5, "window": [25, 50]})),
         "protocols.guidance.num_samples = 5", "<= 4 or raise run.num_samples"),
    Case("augmentation num_samples above N of a factory run", factory_run(factory(
        protocols={"augmentation": {"num_samples": 100}}, estimators={"mc_dropout": {"window": [25, 50]}})),
        "protocols.augmentation.num_samples = 100", "set protocols.augmentation.num_samples <= 4"),
    Case("bayesdiff fit_images above the training images", run(C("estimators", "bayesdiff", {"fit_images": 1000})),
         "estimators.bayesdiff.fit_images = 1000", "set fit_images <= 64"),
    Case("bayesdiff fit_images above the factory's training images", factory_run(factory(
        estimators={"bayesdiff": {"fit_images": 9}})), "estimators.bayesdiff.fit_images = 9", "set fit_images <= 8"),
    Case("generative_uncertainty fit_images above the training images", run(C(
        "estimators", "generative_uncertainty", {"fit_images": 65})), "estimators.generative_uncertainty.fit_images",
        "set fit_images <= 64"),
    Case("fid_infinity_points above the kept subset sizes", run({**C("run", "num_samples", 40), "run": {
        **BASE["run"], "num_samples": 40, "keep": 12}, "protocols": {"filtered_fid": {
            "curve_fractions": [0.5, 1.0], "fid_infinity_points": 10}}}),
         "protocols.filtered_fid.fid_infinity_points = 10", "set fid_infinity_points <= 9 or raise run.keep"),
    Case("fid_infinity_points far above K", run({**C("run", "num_samples", 40), "run": {
        **BASE["run"], "num_samples": 40, "keep": 30}, "protocols": {"filtered_fid": {
            "curve_fractions": [0.5, 1.0], "fid_infinity_points": 100}}}),
         "protocols.filtered_fid.fid_infinity_points = 100", "fid_infinity_points <= 22"),
    Case("sparsification num_images above the factory's test images", factory_run(with_data(path="data.npz") | {
        "protocols": {"sparsification": {"num_images": 5}}}), "protocols.sparsification.num_images = 5",
        "num_images <= 4"),
    # ---- value ranges: [data] range where it cannot apply, uint8 masks read as 0..255
    Case("range 0,1 on a PNG folder", factory_run(with_data(path="imgs", range="0,1"), pngs()), "data.range = '0,1'",
         "remove data.range"),
    Case("range -1,1 on a PNG folder", factory_run(with_data(path="imgs", range="-1,1"), pngs()),
         "data.range = '-1,1'", "remove data.range"),
    Case("range 0,255 on a PNG folder", factory_run(with_data(path="imgs", range="0,255"), pngs()),
         "data.range = '0,255'", "remove data.range"),
    Case("range on a folder of class subfolders", factory_run(with_data(path="imgs", range="0,1"), pngs("a", "b")),
         "data.range", "remove data.range"),
    Case("range on a folder with train/ and test/", factory_run(with_data(path="imgs", range="0,1"),
                                                                 lambda t: pngs()(t / "x"),
                                                                 lambda t: (t / "imgs").mkdir(),
                                                                 lambda t: shutil.copytree(t / "x" / "imgs", t / "imgs" / "train"),
                                                                 lambda t: shutil.copytree(t / "x" / "imgs", t / "imgs" / "test")),
         "data.range", "remove data.range"),
    Case("uint8 0/1 mask in an .npz", factory_run(with_data(path="d.npz"), npz(x=MASK)), "data.range",
         'declare range = "0,1"'),
    Case("uint8 0/1 mask in an .npy", factory_run(with_data(path="d.npy"), lambda t: np.save(t / "d.npy", MASK)),
         "data.range", 'declare range = "0,1"'),
    Case("uint8 0/1 masks as train/test arrays", factory_run(with_data(path="d.npz"), npz(train=MASK, test=MASK)),
         "data.range", "save the images as 0..255"),
    Case("uint8 0..255 declared 0,1", factory_run(with_data(path="d.npz", range="0,1"), npz(
        x=np.full((4, 1, 8, 8), 200, np.uint8))), "data.range = '0,1'", "declare the range the array uses"),
    Case("uint8 declared -1,1", factory_run(with_data(path="d.npz", range="-1,1"), npz(
        x=np.full((4, 1, 8, 8), 7, np.uint8))), "data.range = '-1,1'", "declare the range the array uses"),
    Case("train --range on an image folder", train(train_folder({"a": 6, "b": 6}), "--range", "0,1"), "--range",
         "remove --range"),
    # ---- reference statistics a run would ignore, or could not use (a matmul error after all the sampling)
    Case("reference_stats in a classifier-space run", factory_run(
        with_features("classifier", reference_stats="stats.npz"), SMALL_STATS,
        lambda t: shutil.copy(t / "net.pth", t / "unused.pth")), "data.reference_stats", 'add "inception"'),
    Case("reference_stats in a run without features", factory_run(with_features(reference_stats="stats.npz"),
                                                                   SMALL_STATS), "data.reference_stats",
         "or remove data.reference_stats"),
    Case("reference_stats in Inception space that no protocol reads", factory_run(
        with_features("inception", reference_stats="stats.npz") | {"protocols": {"cost": {}}}, SMALL_STATS),
        "data.reference_stats", "with protocols.filtered_fid"),
    Case("reference_stats of 3 dimensions in Inception space", factory_run(fid_run(reference_stats="stats.npz"),
                                                                          SMALL_STATS),
         "data.reference_stats", "compute them from Inception pool3 features"),
    Case("reference_stats of 64 dimensions in Inception space", factory_run(
        fid_run(reference_stats="stats.npz"), lambda t: np.savez(t / "stats.npz", mu=np.zeros(64), sigma=np.eye(64))),
        "data.reference_stats", "remove data.reference_stats and the run computes them"),
    # ---- the data's domain classifier: damaged files are named (exit 2, not 3 with torch's internals)
    Case("truncated domain_classifier.pt beside an image folder", factory_run(
        with_features("classifier") | {"data": {"path": "imgs"}}, pngs(),
        lambda t: torch.save({"config": {}, "state_dict": {}}, t / "imgs" / "domain_classifier.pt"),
        lambda t: truncated(t / "imgs" / "domain_classifier.pt")), "data.classifier", "retrain it on this data"),
    Case("text file as the classifier beside an .npz", factory_run(with_features("classifier"), classifier_beside(
        "data.domain_classifier.pt", lambda p: p.write_text("not a model"))), "data.classifier",
         "train --what classifier --data"),
    Case("empty classifier file beside an .npz", factory_run(with_features("classifier"), classifier_beside(
        "data.domain_classifier.pt", lambda p: p.write_bytes(b""))), "data.classifier", "or delete it"),
    Case("a torch file of another layout as the classifier", factory_run(with_features("classifier"),
                                                                       classifier_beside("data.domain_classifier.pt",
                                                                                         lambda p: torch.save({"x": 1}, p))),
         "data.domain_classifier.pt", "retrain it on this data"),
    Case("damaged [data] classifier file", factory_run(with_features("classifier", classifier="clf.pt"),
                                                       lambda t: (t / "clf.pt").write_bytes(b"\x00" * 64)),
         "data.classifier", "retrain it on this data"),
    Case("damaged classifier picked by a [model] run's default features", factory_run(
        {s: t for s, t in with_features("classifier").items()} | {"run": {
            k: v for k, v in FACTORY_BASE["run"].items() if k != "features"}}, classifier_beside(
            "data.domain_classifier.pt", lambda p: p.write_text("broken"))), "data.classifier", "or delete it"),
    # ---- train --what classifier: every class needs images to train on and to hold out
    Case("train on one image per class", train(train_folder({c: 1 for c in "abcdefghij"})), "--data",
         "add images to the sparse classes"),
    Case("train with one sparse class", train(train_folder({"a": 8, "b": 8, "c": 4})), "class 2 has 4",
         "add images to the sparse classes"),
    Case("train on an .npz of one image per class", train(train_npz(list(range(10)))), "--data",
         ">= 5 each"),
    Case("train on an .npz with a label never used", train(train_npz([0] * 6 + [2] * 6)), "class 1 has 0",
         "or drop those classes"),
    # ---- messages that lacked their fix, or blamed the wrong field
    Case("a top-level key above [run]", run(top_level("steps = 2")), "steps = 2", "move steps = ... below [run]"),
    Case("a top-level string key", run(top_level('name = "x"')), "name = 'x'", "below [run]"),
    Case("a misspelt table [estimator.sensitivity]", run(raw(rest="[estimator.sensitivity]\nm = 2\n")),
         "[estimator]", "rename the table"),
    Case("realism_oracle k = 0", run(C("estimators", "realism_oracle", {"k": 0})), "estimators.realism_oracle.k = 0",
         "set k = 3"),
    Case("realism_oracle k = -1", run(C("estimators", "realism_oracle", {"k": -1})), "realism_oracle.k", "set k = 3"),
    Case("x0_trajectory last_steps = 1", run(C("estimators", "x0_trajectory", {"last_steps": 1})),
         "estimators.x0_trajectory.last_steps = 1", "set last_steps = 3"),
    Case("x0_trajectory last_steps = 51", run(C("estimators", "x0_trajectory", {"last_steps": 51})),
         "x0_trajectory.last_steps = 51", "set last_steps = 3"),
    Case("NaN weights of a factory network", factory_run(FACTORY_BASE, nan_state()), "model.weights",
         "check the weights"),
    Case("Inf weights of a factory network", factory_run(FACTORY_BASE, nan_state(math.inf)), "model.weights",
         "check the weights"),
    Case("NaN from a factory network without weights", factory_run(factory(model={
        k: v for k, v in FACTORY_BASE["model"].items() if k != "weights"}), lambda t: (t / "net.py").write_text(
        NET.replace("return Net()", "net = Net()\n    torch.nn.init.constant_(net.conv_out.bias, float('nan'))\n"
                                    "    return net"))), "model.factory", "check the weights"),
    Case("leaderboard on an unfinished run", cli("leaderboard", unfinished_demo, "--out", lambda t: t / "board"),
         "no manifest.json", "finish it"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_refused_with_its_fix(case: Case, tmp_path, monkeypatch, capsys):
    assert_refused(case, tmp_path, monkeypatch, capsys)


def test_the_cases_are_distinct():
    assert len({c.name for c in CASES}) == len(CASES) >= 40
