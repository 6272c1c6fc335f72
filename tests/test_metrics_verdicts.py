"""Verdicts of the filtered-FID and precision/recall protocols on synthetic features (no model, no sampling).

A filter that carries no information (the `random` estimator's scores) must not look significant: over 40
seeds, at least 95% of the seeds have no comparison row (`*delta*`) whose interval excludes 0. A filter
that does carry information (it drops the samples drawn from a shifted Gaussian) must look significant.
(Precision/recall report kept K and random K side by side, without difference rows: see that protocol.)
Every comparison is between sets of equal size, and the values are recomputed here by brute force.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from benchmark.runner.protocols import filtered_fid, precision_recall
from benchmark.runner.protocols.base import ProtocolInputs
from benchmark.runner.protocols.fid_utils import random_subset
from metrics import feature_statistics, fid_from_stats, precision_recall as brute_precision_recall

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
    rows = filtered_fid.run(inputs, {"curve_fractions": [0.5, 1.0], "fid_infinity_points": 4})
    return rows + (precision_recall.run(inputs, {"k": 3}) if with_precision_recall else [])


def test_random_filter_is_not_significant_in_95_percent_of_40_seeds():
    real = gaussian(np.random.default_rng(999), REAL)
    seeds_with_a_verdict = []
    for seed in range(40):
        rng = np.random.default_rng(seed)
        pool = gaussian(rng, POOL, shift=0.2)
        # precision_recall reports no difference rows (see its module doc): only filtered_fid's comparisons here
        rows = run_protocols(seed, {"random": rng.uniform(size=POOL)}, pool, real, with_precision_recall=False)
        compared = comparison_rows(rows, "random")
        assert {row.metric for row in compared} >= {f"delta_vs_random[{SPACE}]",
                                                     f"delta_vs_random_at_keep_0.50[{SPACE}]"}
        if any(significant(row) for row in compared):
            seeds_with_a_verdict.append(seed)
    assert len(seeds_with_a_verdict) <= 2, seeds_with_a_verdict


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
    # brute force: the delta is FID(kept K) - FID(the protocol's random K) against the real statistics
    reference = feature_statistics(real)
    random_mask = random_subset(POOL, KEEP, 7)
    expected = (fid_from_stats(reference, feature_statistics(pool[~bad]))
                - fid_from_stats(reference, feature_statistics(pool[random_mask])))
    assert delta.value == pytest.approx(expected, rel=1e-9)
    pr_kept = brute_precision_recall(real, pool[~bad], k=3)
    pr_random = brute_precision_recall(real, pool[random_mask], k=3)
    assert by_metric[("oracle_filter", f"precision[{SPACE}]")].value == pytest.approx(pr_kept.precision, abs=1e-9)
    assert by_metric[("(random K)", f"recall[{SPACE}]")].value == pytest.approx(pr_random.recall, abs=1e-9)
    assert by_metric[("(random K)", f"recall[{SPACE}]")].n == KEEP
    # no comparison of sets of different sizes is reported; N-sample rows are reference rows only
    assert not any("delta_vs_all" in row.metric for row in rows)
    for row in rows:
        if "delta" in row.metric or row.metric.startswith(("fid_kept", "fid_random")):
            assert row.n < POOL
        if row.n == POOL:
            assert row.estimator == "(all)"
    fid_infinity_all = by_metric[("(all)", f"fid_infinity_all[{SPACE}]")]
    assert fid_infinity_all.ci_low < fid_infinity_all.value < fid_infinity_all.ci_high


def test_random_subset_is_seeded_sized_and_independent_of_the_filters():
    first = random_subset(50, 20, seed=3)
    assert first.sum() == 20 and np.array_equal(first, random_subset(50, 20, seed=3))
    assert not np.array_equal(first, random_subset(50, 20, seed=4))


def test_shared_random_baseline_gives_the_paired_bootstrap_interval():
    """The protocol computes the random side once per size (RandomBaseline); its interval must be exactly
    metrics.paired_fid_difference's for the same pool, subsets, replicates and seed."""
    from benchmark.runner.protocols.fid_utils import RandomBaseline
    from metrics import paired_fid_difference

    rng = np.random.default_rng(3)
    pool, real = gaussian(rng, POOL, shift=0.2), gaussian(rng, REAL)
    reference = feature_statistics(real)
    baseline = RandomBaseline(pool, reference, seed=5)
    for keep in (60, KEEP, 60):  # the second request of a size reuses the cached random side
        mask = np.zeros(POOL, dtype=bool)
        mask[rng.choice(POOL, keep, replace=False)] = True
        shared = baseline.delta_ci(mask, 50)
        direct = paired_fid_difference(None, pool, mask, random_subset(POOL, keep, 5), n_boot=50, seed=5,
                                       real_stats=reference)
        assert (shared.value, shared.low, shared.high) == pytest.approx((direct.value, direct.low, direct.high),
                                                                        rel=1e-12, abs=1e-12)
