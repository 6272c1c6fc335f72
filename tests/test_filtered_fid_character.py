"""filtered_fid's fidelity/diversity rows (benchmark/protocols/fidelity_diversity.py) and its stratified row, on
synthetic features: each value recomputed here by brute force over the same R random K-subsets (FID terms with
scipy's sqrtm, KID by its formula, density/coverage by the prdc definition), the p-value by scipy's t law."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy import stats

from benchmark.protocols import filtered_fid
from benchmark.protocols.base import ProtocolInputs
from benchmark.protocols.table import NOT_RUN
from metrics import feature_statistics, fid_from_stats
from metrics.class_balance import class_matched_subsets, keep_lowest_stratified
from metrics.filtered import keep_lowest, random_subsets
from metrics.kid import kid
from tests.test_density_coverage import prdc_density_coverage
from tests.test_fid_decomposition import brute_terms

DIM, POOL, KEEP, REAL, R, SEED = 5, 120, 100, 300, 100, 7
SPACE = "synthetic"
PARAMS = {"curve_fractions": [1.0], "fid_infinity_points": 0, "random_subsets": R}


def setup(with_real: bool = True):
    rng = np.random.default_rng(SEED)
    real = rng.normal(size=(REAL, DIM))
    pool = rng.normal(size=(POOL, DIM))
    far = np.zeros(POOL, dtype=bool)
    far[rng.choice(POOL, POOL - KEEP, replace=False)] = True
    pool[far] += 2.5  # 20 samples far from the real data
    labels = rng.integers(0, 3, POOL)
    scores = {"oracle": far + 0.1 * rng.uniform(size=POOL), "random": rng.uniform(size=POOL)}
    generation = SimpleNamespace(size=POOL, scores={k: torch.from_numpy(v) for k, v in scores.items()},
                                 y=torch.from_numpy(labels))
    inputs = ProtocolInputs(config=SimpleNamespace(keep=KEEP, bootstrap=100, seed=SEED), run_dir=None, model=None,
                            preset=None, generation=generation, fake_features={SPACE: pool},
                            real_features={SPACE: real} if with_real else {},
                            reference_stats={SPACE: feature_statistics(real)}, extract=None, make_estimators=list,
                            progress=False)
    rows = {(row.estimator, row.metric): row for row in filtered_fid.run(inputs, PARAMS)}
    return rows, pool, real, labels, scores


def linear_p(value: float, null: np.ndarray) -> float:
    t = (value - null.mean()) / (null.std(ddof=1) * np.sqrt(1 + 1 / null.size))
    return float(2 * stats.t.sf(abs(t), null.size - 1))


def test_fidelity_and_diversity_rows_are_brute_force_over_the_same_random_subsets():
    rows, pool, real, _, scores = setup()
    masks = random_subsets(POOL, KEEP, SEED, R)
    for name in scores:
        kept = keep_lowest(scores[name], KEEP)
        row = lambda metric: rows[(name, f"{metric}[{SPACE}]")]  # noqa: E731
        terms = [row(f"fid_{t}_term_delta_vs_random").value for t in ("mean", "trace", "cross")]
        assert sum(terms) == pytest.approx(row("delta_vs_random").value, rel=1e-9, abs=1e-9)
        null_terms = [brute_terms(pool[m], real) for m in masks]
        for term, value in zip(("mean", "trace", "cross"), terms):
            want = brute_terms(pool[kept], real)[term] - np.mean([n[term] for n in null_terms])
            assert value == pytest.approx(want, rel=1e-7, abs=1e-7)
        null_kid = np.array([kid(pool[m], real) for m in masks])
        kept_kid = kid(pool[kept], real)
        assert row("kid_delta_vs_random").value == pytest.approx(kept_kid - null_kid.mean(), rel=1e-9, abs=1e-12)
        assert row("kid_delta_vs_random").p_value == pytest.approx(linear_p(kept_kid, null_kid), rel=1e-6)
        null_dc = np.array([prdc_density_coverage(real, pool[m], 5) for m in masks])
        kept_dc = prdc_density_coverage(real, pool[kept], 5)
        for i, metric in enumerate(("density_delta_vs_random", "coverage_delta_vs_random")):
            assert row(metric).value == pytest.approx(kept_dc[i] - null_dc[:, i].mean(), abs=1e-12)
            assert row(metric).p_value == pytest.approx(linear_p(kept_dc[i], null_dc[:, i]), rel=1e-6)
            assert row(metric).ci_low <= row(metric).value <= row(metric).ci_high and row(metric).n == KEEP
    # the oracle drops the far samples: closer centre, lower KID, denser kept set, each significant
    oracle = lambda metric: rows[("oracle", f"{metric}[{SPACE}]")]  # noqa: E731
    assert oracle("fid_mean_term_delta_vs_random").ci_high < 0
    assert oracle("kid_delta_vs_random").ci_high < 0 and oracle("density_delta_vs_random").ci_low > 0


def test_the_stratified_filter_is_compared_with_class_matched_random_subsets():
    rows, pool, real, labels, scores = setup()
    reference = feature_statistics(real)
    for name in scores:
        mask = keep_lowest_stratified(scores[name], labels, KEEP)
        null = [fid_from_stats(reference, feature_statistics(pool[m]))
                for m in class_matched_subsets(labels, mask, SEED, R)]
        want = fid_from_stats(reference, feature_statistics(pool[mask])) - np.mean(null)
        assert rows[(name, f"delta_vs_random_stratified[{SPACE}]")].value == pytest.approx(want, rel=1e-9, abs=1e-9)


def test_a_space_without_real_features_says_so_and_keeps_the_fid_terms():
    rows, *_ = setup(with_real=False)
    assert (NOT_RUN, f"no_real_features_kid_coverage[{SPACE}]") in rows
    assert not any(metric.startswith(("kid", "density", "coverage")) for _, metric in rows)
    assert ("oracle", f"fid_trace_term_delta_vs_random[{SPACE}]") in rows
