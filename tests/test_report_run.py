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
from benchmark.publish.validate import validate_run
from tests.report_runs import copy_run, toy_run, use_toy_preset
from tests.toy_preset import perturb_toy_weights


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
    assert "report.figures" in manifest["timings_seconds"]
    assert not any("stepwise" in key for key in manifest["timings_seconds"])  # no second sampling pass
    assert "## Time by stage" in text and "↳ generation." in text
    for name in ("sensitivity", "mc_dropout", "random"):
        assert f"![extremes_{name}](plots/extremes_{name}.png)" in text and (run / f"plots/extremes_{name}.png").is_file()
    assert (run / "plots" / "stepwise_uncertainty.png").is_file()


@pytest.mark.parametrize("batch_size", [3, 1])  # the leading samples in one shard, or one shard each
def test_generation_keeps_the_per_step_maps_a_separate_keep_steps_pass_gives(tmp_path, unet_model, batch_size):
    """The per-step maps the generation pass keeps for its first samples (and reloads on resume) equal those of
    a separate pass on just those samples with keep_steps on; the scores are those of a pass without it."""
    import estimators
    from benchmark.execution.generation import PER_STEP_SAMPLES, generate, load_generation
    from benchmark.report.document import stepwise_uncertainty
    from benchmark.runner.resources import EstimatorFactory
    from benchmark.sampling import initial_noise, sample

    params = {"sensitivity": {"m": 2, "window": (40, 49)}, "mc_dropout": {"m": 2, "window": (40, 50)}, "random": {}}
    factory = EstimatorFactory(params)
    common = dict(run_dir=tmp_path, num_samples=4, batch_size=batch_size, seed=3, sampler="ddim", steps=10,
                  make_estimators=factory, progress=False)
    with torch.no_grad():
        generate(unet_model, **common)
        generate(unet_model, **common)  # resume: every shard is on disk, nothing is regenerated
    gen = load_generation(tmp_path, 4, batch_size)
    idx = torch.arange(PER_STEP_SAMPLES)
    separate = [estimators.create(n, **p, keep_steps=True) for n, p in params.items() if n != "random"]
    for estimator, name in zip(separate, ("sensitivity", "mc_dropout")):
        estimator.name = name
    with torch.no_grad():
        x_T = initial_noise(3, idx, unet_model.sample_shape)
        alone = sample(unet_model, x_T, sampler="ddim", steps=10, estimators=separate, seed=3, indices=idx)
        plain = sample(unet_model, x_T, sampler="ddim", steps=10, estimators=factory(), seed=3, indices=idx)
    assert set(gen.per_step) == {"sensitivity", "mc_dropout"}  # random keeps no per-step maps
    for name in ("sensitivity", "mc_dropout"):
        expected = alone.uncertainty[name].per_step
        assert sorted(gen.per_step[name]) == sorted(expected) and len(expected) == {"sensitivity": 1,
                                                                                     "mc_dropout": 2}[name]
        for t, m in expected.items():
            assert gen.per_step[name][t].shape == (PER_STEP_SAMPLES, *unet_model.sample_shape)
            torch.testing.assert_close(gen.per_step[name][t], m, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(gen.scores[name][idx], plain.uncertainty[name].score, rtol=1e-5, atol=1e-7)
        curve = stepwise_uncertainty(gen, ["sensitivity", "mc_dropout", "random"])[name]
        assert curve == pytest.approx({int(t): float(m.mean()) for t, m in expected.items()}, rel=1e-4)  # float32 rows


def test_manifest_records_checksums_versions_and_estimators():
    run = toy_run("base")
    manifest = json.loads((run / "manifest.json").read_text())
    for name in ("metrics.csv", "config.json", "report.md", "plots/sparsification.png"):
        assert manifest["sha256"][name] == hashlib.sha256((run / name).read_bytes()).hexdigest()
    assert manifest["estimators"]["random"]["reference_row"] is True
    assert manifest["estimators"]["sensitivity"] == {"type": "sensitivity", "kind": "aleatoric",
                                                     "reference_row": False, "params": {"m": 2, "window": [40, 49]},
                                                     "explanation": "", "trivial_baseline": False}
    assert manifest["estimators"]["random"]["explanation"].startswith("the floor")
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
    perturb_toy_weights(monkeypatch)
    problems = validate_run(run).problems
    assert len(problems) == 1 and "model weights" in problems[0] and "differs" in problems[0]
    shutil.rmtree(run)
