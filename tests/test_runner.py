"""End to end: a run on the toy preset writes every table, plot and the manifest; resume and overwrite rules."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from benchmark.config import parse_config
from benchmark.errors import ConfigError
from benchmark.runner import setup
from benchmark.runner.run import run_benchmark
from tests.toy_preset import ToyPreset

CONFIG = {
    "run": {"name": "toy", "preset": "toy", "steps": 10, "num_samples": 24, "keep": 20, "batch_size": 12,
            "bootstrap": 20},
    "estimators": {"sensitivity": {"m": 3, "window": [40, 50]}, "mc_dropout": {"m": 3, "window": [40, 50]},
                   "bayesdiff": {"mc_samples": 4, "skip": 2,
                                                                                   "fit_images": 32}},
    "protocols": {"filtered_fid": {"curve_fractions": [0.5, 1.0]}, "precision_recall": {},
                  "sparsification": {"num_images": 8}, "guidance": {"num_samples": 8, "m": 3, "window": [40, 50]},
                  "cost": {},
                  "ground_truth": {}},
}


@pytest.fixture()
def toy(monkeypatch):
    monkeypatch.setattr(setup, "load_preset", lambda name: ToyPreset())
    return parse_config(CONFIG)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setattr(setup, "load_preset", lambda name: ToyPreset())
    out = tmp_path_factory.mktemp("run") / "toy"
    report = run_benchmark(parse_config(CONFIG), out, progress=False)
    mp.undo()
    return out, report


def test_run_writes_tables_plots_and_manifest(finished_run):
    out, report = finished_run
    frame = pd.read_csv(out / "metrics.csv")
    assert list(frame.columns) == ["protocol", "estimator", "metric", "value", "ci_low", "ci_high", "n", "seed", "p_value",
                                   "detectable_effect"]
    assert set(frame.protocol) == {"filtered_fid", "precision_recall", "sparsification", "guidance", "cost",
                                   "ground_truth"}
    for est in ("random", "sensitivity", "mc_dropout", "bayesdiff"):
        assert {"fid_kept[classifier]", "ause", "aurg", "nfe_ratio", "spearman_score_vs_neg_log_density"} <= set(
            frame[frame.estimator == est].metric), est
    cost = frame[(frame.protocol == "cost") & (frame.metric == "extra_nfe_per_sample")].set_index("estimator").value
    assert cost["random"] == 0 and cost["sensitivity"] == pytest.approx(6)  # m = 3 on window (40, 50) = steps 8, 9 of 10
    assert (out / "plots" / "sparsification.png").is_file() and (out / "plots" / "stepwise_uncertainty.png").is_file()
    assert (out / "plots" / "extremes_sensitivity.png").is_file()
    text = report.read_text()
    assert "## filtered_fid" in text and "## sparsification" in text
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["versions"]["torch"].startswith("2.13") and "generation" in manifest["timings_seconds"]
    from benchmark.report.tables import top_level

    stages = top_level(manifest["timings_seconds"])  # wall-clock stages: setup, generation, features, protocols, ...
    assert {"setup", "generation", "features", "protocols", "report"} <= set(stages)
    # this test's process started before the run, so its age at the manifest covers every stage of the run
    assert manifest["processes"] == 1 and manifest["process_seconds"] >= sum(stages.values())


def test_kept_subset_fid_matches_a_recomputation(finished_run):
    """fid_kept of the random estimator equals FID of its K lowest-score samples recomputed from the features."""
    import numpy as np
    import torch

    from benchmark.execution.generation import load_generation
    from metrics import fid_from_features

    out, _ = finished_run
    gen = load_generation(out, 24, 12)
    frame = pd.read_csv(out / "metrics.csv")
    row = frame[(frame.estimator == "sensitivity") & (frame.metric == "fid_kept[classifier]")].iloc[0]
    classifier = ToyPreset().load_classifier()
    with torch.no_grad():
        fake = classifier.features(gen.x0).double().numpy()
        real = classifier.features(ToyPreset().load_data("test").images).double().numpy()
    keep = np.argsort(gen.scores["sensitivity"].numpy(), kind="stable")[:20]
    assert row.value == pytest.approx(fid_from_features(real, fake[keep]), rel=1e-4)


def test_finished_run_is_not_overwritten(finished_run, toy):
    out, _ = finished_run
    with pytest.raises(ConfigError, match="--overwrite"):
        run_benchmark(toy, out, progress=False)


def test_out_dir_that_is_a_file_is_refused(tmp_path, toy):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(ConfigError, match="--out"):
        run_benchmark(toy, target, progress=False)
    assert target.read_text() == "x"
