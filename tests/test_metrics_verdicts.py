"""Verdicts of the filtered-FID and precision/recall protocols on synthetic features (no model, no sampling).

A filter that carries no information (the `random` estimator's scores) must look significant at the nominal rate
only: over 40 seeds, the share of its tests (`*delta*` rows) with p <= 5 % stays within a binomial bound. A filter
that does carry information (it drops the samples drawn from a shifted Gaussian) must look significant.
Every comparison is between sets of equal size, and the values are recomputed here by brute force (the floor:
the average FID over the same R random K-subsets; the precision floor: the pool's share inside the manifold).
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from benchmark.protocols import filtered_fid, precision_recall
from benchmark.protocols.base import ProtocolInputs
from benchmark.protocols.fid_utils import random_subset
from metrics import feature_statistics, fid_from_stats
from metrics import precision_recall as brute_precision_recall

DIM, POOL, KEEP, REAL = 6, 120, 100, 300
SPACE = "synthetic"
MIXING = np.eye(DIM) + 0.3 * np.random.default_rng(1234).normal(size=(DIM, DIM))


def inputs_for(seed: int, scores: dict[str, np.ndarray], pool: np.ndarray, real: np.ndarray) -> ProtocolInputs:
    config = SimpleNamespace(keep=KEEP, bootstrap=100, seed=seed)
    generation = SimpleNamespace(size=pool.shape[0], scores={name: torch.from_numpy(s) for name, s in scores.items()})
    return ProtocolInputs(config=config, run_dir=None, model=None, preset=None, generation=generation,
                          fake_features={SPACE: pool}, real_features={SPACE: real},
                          reference_stats={SPACE: feature_statistics(real)}, extract=None, make_estimators=list,
                          progress=False)


def gaussian(rng, rows, shift=0.0):
    return rng.normal(size=(rows, DIM)) @ MIXING + shift


def comparison_rows(rows, estimator: str):
    return [row for row in rows if row.estimator == estimator and "delta" in row.metric]


def significant(row) -> bool:
    return row.ci_low > 0 or row.ci_high < 0


def run_protocols(seed, scores, pool, real, with_precision_recall=True):
    inputs = inputs_for(seed, scores, pool, real)
    rows = filtered_fid.run(inputs, {"curve_fractions": [0.5, 1.0], "fid_infinity_points": 4, "random_subsets": 100})
    return rows + (precision_recall.run(inputs, {"k": 3}) if with_precision_recall else [])


def test_random_filter_is_significant_at_the_nominal_rate_over_40_seeds():
    from scipy.stats import binom

    real = gaussian(np.random.default_rng(999), REAL)
    p_values = []
    for seed in range(40):
        rng = np.random.default_rng(seed)
        pool = gaussian(rng, POOL, shift=0.2)
        rows = run_protocols(seed, {"random": rng.uniform(size=POOL)}, pool, real)
        compared = comparison_rows(rows, "random")
        assert {row.metric for row in compared} >= {f"delta_vs_random[{SPACE}]", f"delta_vs_random_at_keep_0.50[{SPACE}]",
                                                     f"precision_delta_vs_random[{SPACE}]"}
        p_values += [row.p_value for row in compared]
        for row in compared:  # the p-value and the interval tell the same story
            assert (row.p_value <= 0.05) == significant(row) or abs(row.p_value - 0.05) < 0.01
    hits = sum(p <= 0.05 for p in p_values)
    assert hits <= binom.ppf(0.999, len(p_values), 0.05), (hits, len(p_values))
    assert np.mean(p_values) == pytest.approx(0.5, abs=0.12)  # roughly uniform under the null


def test_informative_filter_is_significant_and_rows_are_equal_size_comparisons():
    real = gaussian(np.random.default_rng(999), REAL)
    rng = np.random.default_rng(7)
    bad = np.zeros(POOL, dtype=bool)
    bad[rng.choice(POOL, POOL - KEEP, replace=False)] = True
    pool = gaussian(rng, POOL)
    pool[bad] += 2.5  # 20 samples far from the reference
    scores = {"oracle_filter": bad + 0.1 * rng.uniform(size=POOL), "random": rng.uniform(size=POOL)}
    rows = run_protocols(7, scores, pool, real)
    by_metric = {(row.estimator, row.metric): row for row in rows}
    delta = by_metric[("oracle_filter", f"delta_vs_random[{SPACE}]")]
    assert delta.ci_high < 0  # dropping the far samples lowers FID, with significance
    assert delta.p_value < 1e-6
    # brute force: the delta is FID(kept K) - the mean FID of 100 random K-subsets against the real statistics
    reference = feature_statistics(real)
    random_mask = random_subset(POOL, KEEP, 7)
    gen = np.random.default_rng([7, 0x52414E44, KEEP])
    chance = []
    for _ in range(100):
        mask = np.zeros(POOL, dtype=bool)
        mask[gen.choice(POOL, KEEP, replace=False)] = True
        chance.append(fid_from_stats(reference, feature_statistics(pool[mask])))
    expected = fid_from_stats(reference, feature_statistics(pool[~bad])) - np.mean(chance)
    assert delta.value == pytest.approx(expected, rel=1e-9)
    random_mean = by_metric[("(random K)", f"fid_random_mean[{SPACE}]")]
    assert random_mean.value == pytest.approx(np.mean(chance), rel=1e-9)
    # the precision floor is the pool's share inside the real manifold (every random K-subset's expectation)
    pr_all = brute_precision_recall(real, pool, k=3)
    precision_delta = by_metric[("oracle_filter", f"precision_delta_vs_random[{SPACE}]")]
    assert precision_delta.value == pytest.approx(brute_precision_recall(real, pool[~bad], k=3).precision
                                                  - pr_all.precision, abs=1e-9)
    pr_kept = brute_precision_recall(real, pool[~bad], k=3)
    pr_random = brute_precision_recall(real, pool[random_mask], k=3)
    assert by_metric[("oracle_filter", f"precision[{SPACE}]")].value == pytest.approx(pr_kept.precision, abs=1e-9)
    assert by_metric[("(random K)", f"recall[{SPACE}]")].value == pytest.approx(pr_random.recall, abs=1e-9)
    assert by_metric[("(random K)", f"recall[{SPACE}]")].n == KEEP
    # no comparison of sets of different sizes is reported; N-sample rows are reference rows only
    assert not any("delta_vs_all" in row.metric for row in rows)
    for row in rows:
        if "delta" in row.metric or row.metric.startswith(("fid_kept", "fid_random_mean")):
            assert row.n < POOL
        if row.n == POOL:
            assert row.estimator == "(all)"
    # FID∞ needs >= 10 rows per dimension in its smallest fit subset (0.3 K = 30 < 60 here): "(not run)", no value
    assert ("(not run)", f"fid_infinity_unsound[{SPACE}]") in by_metric
    assert not any(row.metric.startswith("fid_infinity") for row in rows if row.estimator != "(not run)")


def test_random_subset_is_seeded_sized_and_independent_of_the_filters():
    first = random_subset(50, 20, seed=3)
    assert first.sum() == 20 and np.array_equal(first, random_subset(50, 20, seed=3))
    assert not np.array_equal(first, random_subset(50, 20, seed=4))


def test_shared_random_baseline_is_the_brute_force_average_and_t_test():
    """RandomBaseline: the mean over R random K-subsets (each FID recomputed here from its rows), and the p-value of
    the prediction test (value - mean) / (sd sqrt(1 + 1/R)) ~ t_{R-1} recomputed with scipy."""
    from scipy import stats

    from benchmark.protocols.fid_utils import RandomBaseline
    from metrics.filtered import random_subsets

    rng = np.random.default_rng(3)
    pool, real = gaussian(rng, POOL, shift=0.2), gaussian(rng, REAL)
    reference = feature_statistics(real)
    baseline = RandomBaseline(pool, reference, seed=5, count=100)
    for keep in (60, KEEP, 60):  # the second request of a size reuses the cached random side
        mask = np.zeros(POOL, dtype=bool)
        mask[rng.choice(POOL, keep, replace=False)] = True
        got = baseline.delta_ci(mask)
        null = np.array([fid_from_stats(reference, feature_statistics(pool[m])) for m in random_subsets(POOL, keep, 5, 100)])
        value = fid_from_stats(reference, feature_statistics(pool[mask]))
        assert got.value == pytest.approx(value - null.mean(), rel=1e-9, abs=1e-9)
        logs = np.log(null)  # FID is tested on the log scale (its law over random subsets is right-skewed)
        t = (np.log(value) - logs.mean()) / (logs.std(ddof=1) * np.sqrt(1 + 1 / 100))
        assert got.p_value == pytest.approx(2 * stats.t.sf(abs(t), 99), rel=1e-6)
        assert got.low < got.value < got.high


def test_the_floors_null_check_leaves_out_its_comparisons_with_trivial_baselines():
    """`random` loses to the informative trivial baselines by design: those tests are no draws from its null."""
    import pandas as pd

    from benchmark.report import verdicts

    frame = pd.DataFrame([
        ("filtered_fid", "random", "delta_vs_random[classifier]", 0.3, -1.0, 1.6, 0.6),
        ("sparsification", "random", "partial_spearman_given_trivial", 0.01, -0.01, 0.03, 0.4),
        ("sparsification", "random", "ause_delta_vs_trivial", 0.2, 0.18, 0.22, 1e-30),
        ("failure_labels", "random", "auroc_off_manifold_delta_vs_trivial[classifier]", -0.3, -0.4, -0.2, 1e-6),
    ], columns=["protocol", "estimator", "metric", "value", "ci_low", "ci_high", "p_value"])
    fam = verdicts.family(frame, lambda name: name == "random")
    assert [v.metric for v in fam.floor_checks] == ["delta_vs_random[classifier]", "partial_spearman_given_trivial"]
