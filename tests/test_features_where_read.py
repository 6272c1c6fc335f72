"""Features only where read (issue 25, item 6): a run computes only the (space, split) pairs that a configured
protocol (its module's `features_read`) or a feature-scoring estimator reads, and its manifest lists them.

The extractor built by `metrics.build_feature_extractor` is wrapped to count the rows it featurises per space, so
the runs below prove that nothing else was featurised; `$UQBENCH_ALL_FEATURES=1` computes the set of before
(every pair of the run's spaces) and changes no number of a protocol that reads all of it.
"""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest

import metrics
from benchmark.config import parse_config
from benchmark.execution.features import GENERATED, REAL_TEST, plan_features
from benchmark.protocols.catalog import PROTOCOL_MODULES
from benchmark.runner import phases, setup
from benchmark.runner.run import run_benchmark
from tests.toy_preset import ToyPreset

N, TEST_IMAGES = 24, 64  # the toy preset's test set has 64 images
RUN = {"name": "reads", "preset": "toy", "steps": 4, "num_samples": N, "keep": 20, "batch_size": 12, "bootstrap": 20}


class Counting:
    """Wraps an extractor: rows featurised per space (its `name`), everything else forwarded."""

    def __init__(self, inner, rows: Counter):
        self.inner, self.rows = inner, rows

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __call__(self, images):
        self.rows[self.inner.name] += int(images.shape[0])
        return self.inner(images)


@pytest.fixture()
def rows(monkeypatch) -> Counter:
    """Rows featurised per space during the test (every extractor the run builds is counted)."""
    counted: Counter = Counter()
    real_build = metrics.build_feature_extractor
    monkeypatch.setattr(metrics, "build_feature_extractor",
                        lambda name, **kwargs: Counting(real_build(name, **kwargs), counted))
    monkeypatch.setattr(setup, "load_preset", lambda name: ToyPreset())
    monkeypatch.delenv(phases.ALL_FEATURES_ENV, raising=False)
    return counted


def _run(tmp_path, protocols: dict, estimators: dict | None = None, name: str = "run"):
    config = parse_config({"run": RUN, "estimators": estimators or {"random": {}}, "protocols": protocols})
    out = tmp_path / name
    run_benchmark(config, out, progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    return out, manifest["features"]


def _pairs(record: dict, key: str = "computed") -> dict[tuple[str, str], list[str]]:
    return {(row["space"], row["split"]): row["read_by"] for row in record[key]}


def test_a_cost_only_run_computes_no_features(tmp_path, rows):
    out, record = _run(tmp_path, {"cost": {}})
    assert record == {"computed": [], "committed_reference_stats": []}
    assert sum(rows.values()) == 0  # no extractor call at all
    assert not (out / "features").exists()
    assert (pd.read_csv(out / "metrics.csv").protocol == "cost").all()


def test_a_filtered_fid_run_computes_only_what_filtered_fid_reads(tmp_path, rows):
    out, record = _run(tmp_path, {"filtered_fid": {"curve_fractions": [0.5, 1.0]}, "cost": {}})
    assert _pairs(record) == {("classifier", GENERATED): ["filtered_fid"], ("classifier", REAL_TEST): ["filtered_fid"]}
    assert rows == Counter({"classifier": N + TEST_IMAGES})  # each generated and each test image once
    assert "fid_all[classifier]" in set(pd.read_csv(out / "metrics.csv").metric)


def test_everything_switch_computes_the_old_set_and_changes_no_number(tmp_path, rows, monkeypatch):
    protocols = {"filtered_fid": {"curve_fractions": [0.5, 1.0]}}
    out, record = _run(tmp_path, protocols, name="selected")
    monkeypatch.setenv(phases.ALL_FEATURES_ENV, "1")
    old_out, old_record = _run(tmp_path, protocols, name="everything")
    assert set(_pairs(old_record)) == set(_pairs(record))  # filtered_fid reads all the old set
    assert phases.EVERYTHING in _pairs(old_record)[("classifier", GENERATED)]
    pd.testing.assert_frame_equal(pd.read_csv(out / "metrics.csv"), pd.read_csv(old_out / "metrics.csv"))

    _, cost_record = _run(tmp_path, {"cost": {}}, name="cost_everything")  # the old set, read by none
    assert set(_pairs(cost_record)) == {("classifier", GENERATED), ("classifier", REAL_TEST)}


def test_a_feature_scoring_estimator_gets_its_features_and_protocols_see_none(tmp_path, rows):
    out, record = _run(tmp_path, {"cost": {}}, {"realism_oracle": {"features": "classifier"}, "random": {}})
    reader = ["estimator:realism_oracle"]
    assert _pairs(record) == {("classifier", GENERATED): reader, ("classifier", REAL_TEST): reader}
    assert rows == Counter({"classifier": N + TEST_IMAGES})
    scores = pd.read_csv(out / "metrics.csv")
    assert "realism_oracle" in set(scores.estimator)


class _Committed(ToyPreset):
    """The toy preset with committed Inception reference statistics."""

    def reference_stats(self, feature: str):
        return metrics.FeatureStats(mu=np.zeros(4), sigma=np.eye(4), n=10) if feature == "inception" else None


def test_the_plan_is_the_union_of_the_declarations_and_committed_statistics_are_not_computed():
    config = parse_config({"run": {**RUN, "features": ["classifier", "inception"]}, "estimators": {"random": {}},
                           "protocols": {"filtered_fid": {"curve_fractions": [0.5, 1.0]}, "cost": {},
                                         "precision_recall": {}}})
    reads = phases.protocol_reads(config)
    assert reads["cost"] == set()
    assert reads["filtered_fid"] == {(space, split) for space in ("classifier", "inception")
                                     for split in (GENERATED, REAL_TEST)}
    plan = plan_features(config, _Committed(), reads, {"oracle": {("inception", GENERATED), ("inception", REAL_TEST)}})
    assert plan.read_by == {("classifier", GENERATED): ("filtered_fid", "precision_recall"),
                            ("classifier", REAL_TEST): ("filtered_fid", "precision_recall"),
                            ("inception", GENERATED): ("filtered_fid", "precision_recall", "estimator:oracle"),
                            ("inception", REAL_TEST): ("estimator:oracle",)}  # the scorer needs the rows
    assert plan.committed == {("inception", REAL_TEST): ("filtered_fid", "precision_recall")}
    assert plan.whole_real == ("classifier",)
    assert plan.spaces(REAL_TEST, protocols_only=True) == ["classifier"]  # protocols never see the scorer's
    assert plan.spaces(GENERATED) == ["classifier", "inception"]
    assert plan_features(config, _Committed(), {"cost": set()}).read_by == {}


def test_every_protocol_declares_what_it_reads():
    config = parse_config({"run": RUN, "estimators": {"random": {}}, "protocols": {"cost": {}}})
    for name, module in PROTOCOL_MODULES.items():
        declared = module.features_read({}, config)
        assert {split for _, split in declared} <= {GENERATED, REAL_TEST}, name
    assert {name for name, module in PROTOCOL_MODULES.items() if not module.features_read({}, config)} == {
        "cost", "ground_truth", "sparsification", "hallucination", "ensemble_agreement"}
