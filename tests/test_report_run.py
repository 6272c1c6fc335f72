"""A finished toy run: its report, manifest checksums, file modes, and `validate` on intact and changed folders."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat

import pandas as pd
import pytest
import torch

from benchmark.cli import main
from benchmark.validate import validate_run
from tests.report_runs import copy_run, toy_run, use_toy_preset
from tests.toy_preset import ToyPreset


@pytest.fixture(autouse=True)
def toy_preset_visible(monkeypatch):
    use_toy_preset()


def test_report_lists_every_estimator_first_and_the_stepwise_plot_has_them_all():
    run = toy_run("base")
    text = (run / "report.md").read_text()
    head = text.split("## Headline\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1].strip() for line in head.splitlines() if line.startswith("| ")][1:]
    assert rows == ["`sensitivity`", "`mc_dropout`", "*random*"]
    manifest = json.loads((run / "manifest.json").read_text())
    assert {"report.figures", "report.figures.stepwise_pass"} <= set(manifest["timings_seconds"])
    assert "## Time by stage" in text and "↳ generation." in text
    for name in ("sensitivity", "mc_dropout", "random"):
        assert f"![extremes_{name}](plots/extremes_{name}.png)" in text and (run / f"plots/extremes_{name}.png").is_file()
    assert (run / "plots" / "stepwise_uncertainty.png").is_file()


def test_stepwise_pass_keeps_per_step_maps_of_every_estimator_that_can(unet_model):
    from benchmark.runner.report import _stepwise_estimators
    from benchmark.runner.setup import EstimatorFactory
    from benchmark.sampling import initial_noise, sample

    factory = EstimatorFactory({"sensitivity": {"m": 2, "window": (40, 49)}, "mc_dropout": {"m": 2}, "random": {}},
                               types={})
    chosen = _stepwise_estimators(factory)
    assert [e.name for e in chosen] == ["sensitivity", "mc_dropout"]  # random keeps no per-step maps
    x_T = initial_noise(0, torch.arange(2), unet_model.sample_shape)
    with torch.no_grad():
        out = sample(unet_model, x_T, sampler="ddim", steps=10, estimators=chosen, seed=0, indices=torch.arange(2))
    for name in ("sensitivity", "mc_dropout"):
        assert len(out.uncertainty[name].per_step) >= 9  # every step of the 10 (the final one where the window asks)


def test_manifest_records_checksums_versions_and_estimators():
    run = toy_run("base")
    manifest = json.loads((run / "manifest.json").read_text())
    for name in ("metrics.csv", "config.json", "report.md", "plots/sparsification.png"):
        assert manifest["sha256"][name] == hashlib.sha256((run / name).read_bytes()).hexdigest()
    assert manifest["estimators"]["random"]["reference_row"] is True
    assert manifest["estimators"]["sensitivity"] == {"type": "sensitivity", "kind": "aleatoric",
                                                     "reference_row": False, "params": {"m": 2, "window": [40, 49]}}
    assert set(manifest["protocol_versions"]) == set(pd.read_csv(run / "metrics.csv").protocol)
    assert manifest["track"]["run"]["num_samples"] == 24 and "seed" not in manifest["track"]["run"]
    assert len(manifest["model_sha256"]) == 64 and manifest["status"] == "finished"


def test_result_files_are_readable_by_others():
    run = toy_run("base")
    umask = os.umask(0o022)
    os.umask(umask)
    for path in [run / n for n in ("metrics.csv", "manifest.json", "config.json", "report.md")] + list(
            (run / "plots").iterdir()):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path
    assert stat.S_IMODE((run / "plots").stat().st_mode) == 0o777 & ~umask


def test_validate_accepts_an_intact_run(capsys):
    assert main(["validate", str(toy_run("base"))]) == 0
    assert "valid" in capsys.readouterr().out


@pytest.mark.parametrize("change, message", [
    (lambda d: (d / "metrics.csv").write_text((d / "metrics.csv").read_text().replace("sensitivity", "sensitivitx", 1)),
     "metrics.csv was changed after the run"),
    (lambda d: (d / "manifest.json").unlink(), "unfinished: no manifest.json"),
    (lambda d: (d / "plots" / "sparsification.png").unlink(), "plots/sparsification.png is missing"),
    (lambda d: (d / "config.json").write_text("{}"), "config.json differs from the config recorded"),
])
def test_validate_names_what_is_wrong(tmp_path, capsys, change, message):
    run = copy_run("base", tmp_path / "run")
    change(run)
    assert main(["validate", str(run), "--skip-weights"]) == 2
    assert message in capsys.readouterr().err


def test_validate_notices_other_model_weights(tmp_path, monkeypatch):
    run = copy_run("base", tmp_path / "run")
    assert validate_run(run).ok
    original = ToyPreset.load_model

    def changed(self):
        model = original(self)
        with torch.no_grad():
            next(model.parameters()).add_(1e-3)
        return model

    monkeypatch.setattr(ToyPreset, "load_model", changed)
    problems = validate_run(run).problems
    assert len(problems) == 1 and "model weights" in problems[0] and "differs" in problems[0]
    shutil.rmtree(run)
