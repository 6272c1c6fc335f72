"""Issue 25 item 5: every capability check runs before any posterior fit, feature extraction or sampling.

Each case is a config that the run must refuse (exit 2) and whose run would also fit a last-layer posterior (a
bayesdiff table), featurise images and sample. The costly entry points (the posterior fit, building a feature
extractor, any network evaluation) are replaced by recorders: a refusal with a recorder called means the check came
too late.
"""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from benchmark.cli import main
from tests.bad_input_presets import VARIANTS
from tests.test_bad_inputs import BASE, to_toml
from tests.toy_preset import ToyPreset


@dataclass
class NoClassifierPreset(ToyPreset):
    """The toy preset without a domain classifier."""

    name: str = "toy-no-classifier"

    def load_classifier(self):
        return None


PRESETS = f"{VARIANTS},{__name__}:NoClassifierPreset"

COSTLY = {  # what a recorder replaces: (module, attribute)
    "posterior fit": ("estimators.laplace", "LastLayerLaplace.fit"),
    "feature extraction": ("metrics", "build_feature_extractor"),
    "network evaluation": ("benchmark.models.base", "DiffusionModel._counted"),  # every eps / features call
}


def config(**changes) -> dict:
    """BASE plus a bayesdiff table (so the run would fit a posterior), with `changes` merged per section."""
    out = {section: dict(table) for section, table in BASE.items()}
    out["estimators"] = {**out["estimators"], "bayesdiff": {"fit_images": 8, "mc_samples": 3}}
    out["run"] = {**out["run"], "num_samples": 8, "keep": 6, "batch_size": 8}
    for section, table in changes.items():
        out[section] = {**out.get(section, {}), **table}
    return out


CASES = {
    "mc_dropout on a model without dropout": (
        config(run={"preset": "toy-no-dropout"}, estimators={"mc_dropout": {"m": 2, "window": [25, 50]}}),
        "dropout layers"),
    "sparsification asks for more test images than the data has": (
        config(protocols={"sparsification": {"num_images": 100000}}), "protocols.sparsification.num_images"),
    "the classifier feature space on data without a classifier": (
        config(run={"preset": "toy-no-classifier", "features": ["classifier"]},
               protocols={"precision_recall": {}}), "run.features"),
    "more sampler steps than training timesteps": (config(run={"steps": 100000}), "run.steps"),
    "ground truth on a preset without an oracle": (
        config(run={"preset": "toy-no-oracle"}, protocols={"ground_truth": {}}), "protocols.ground_truth"),
}


@pytest.fixture
def costly(monkeypatch):
    """Replace the costly entry points by recorders; returns the list of what was called."""
    import importlib

    called: list[str] = []
    for label, (module, attribute) in COSTLY.items():
        owner = importlib.import_module(module)
        *path, name = attribute.split(".")
        for part in path:
            owner = getattr(owner, part)
        original = getattr(owner, name)

        def record(*args, _label=label, _original=original, **kwargs):
            called.append(_label)
            return _original(*args, **kwargs)
        monkeypatch.setattr(owner, name, record)
    return called


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_refusal_comes_before_anything_costly(case, costly, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("UQBENCH_EXTRA_PRESETS", PRESETS)
    body, field = CASES[case]
    path = tmp_path / "bad.toml"
    path.write_text(to_toml(body))
    code = main(["run", "--config", str(path), "--out", str(tmp_path / "out"), "--quiet"])
    message = capsys.readouterr().err
    assert code == 2 and field in message, message
    assert costly == [], f"ran before the refusal: {costly}"
    assert not (tmp_path / "out").exists()


def test_the_recorders_see_a_good_run(costly, tmp_path, monkeypatch):
    """The same recorders do see the work of a run that passes (a recorder that never fires proves nothing)."""
    monkeypatch.setenv("UQBENCH_EXTRA_PRESETS", PRESETS)
    path = tmp_path / "good.toml"
    path.write_text(to_toml(config()))
    assert main(["run", "--config", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert {"posterior fit", "network evaluation"} <= set(costly)
