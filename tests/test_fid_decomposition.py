"""metrics.fid_decomposition and FixedReferenceFID.terms: FID's mean, trace and cross terms against a brute-force
computation with scipy.linalg.sqrtm, and RandomBaseline.terms_cis against the same R random subsets recomputed here
(the three term deltas sum to delta_vs_random)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import sqrtm

from benchmark.protocols.fid_utils import RandomBaseline
from metrics import feature_statistics
from metrics.bootstrap import FixedReferenceFID
from metrics.fid_decomposition import DELTA_TERMS, fid_terms, terms_delta

DIM = 6


def brute_terms(features: np.ndarray, real: np.ndarray) -> dict[str, float]:
    """The terms from np.mean / np.cov and scipy's matrix square root (no code of the module under test)."""
    mu_k, mu_r = features.mean(axis=0), real.mean(axis=0)
    s_k, s_r = np.cov(features, rowvar=False), np.cov(real, rowvar=False)
    return {"mean": float(np.sum((mu_k - mu_r) ** 2)), "trace": float(np.trace(s_k)),
            "reference_trace": float(np.trace(s_r)), "cross": float(-2.0 * np.trace(sqrtm(s_k @ s_r)).real)}


def data(seed: int, rows: int, dim: int = DIM):
    rng = np.random.default_rng(seed)
    mixing = np.eye(dim) + 0.4 * rng.normal(size=(dim, dim))
    real = rng.normal(size=(400, dim)) @ mixing
    pool = rng.normal(size=(rows, dim)) @ (0.8 * mixing) + 0.3
    return pool, real


def test_fid_terms_match_scipy_sqrtm_and_sum_to_the_fid():
    pool, real = data(0, 200)
    got = fid_terms(feature_statistics(pool), feature_statistics(real))
    want = brute_terms(pool, real)
    for name, value in want.items():
        assert getattr(got, name) == pytest.approx(value, rel=1e-9, abs=1e-9)
    assert got.total == pytest.approx(sum(want.values()), rel=1e-9)


@pytest.mark.parametrize("rows, dim", [(90, DIM), (12, 20)], ids=["projected rows", "gram of fewer rows than dims"])
def test_fixed_reference_terms_of_a_subset_match_brute_force(rows, dim):
    pool, real = data(1, rows, dim)
    evaluator = FixedReferenceFID(feature_statistics(real), pool)
    mask = np.zeros(rows, dtype=bool)
    mask[np.random.default_rng(2).choice(rows, rows * 2 // 3, replace=False)] = True
    got = evaluator.terms(mask.astype(np.int64))
    want = brute_terms(pool[mask], real)
    for name, value in want.items():
        assert getattr(got, name) == pytest.approx(value, rel=1e-7, abs=1e-7)
    assert evaluator(mask.astype(np.int64)) == got.total  # the FID is the sum of its terms, bit for bit


def test_term_deltas_against_random_subsets_are_brute_force_and_sum_to_delta_vs_random():
    pool, real = data(3, 60)
    pool[:10] += 2.0  # ten far samples: dropping them moves the mean and shrinks the spread
    baseline = RandomBaseline(pool, feature_statistics(real), seed=4, count=100)
    kept = np.ones(60, dtype=bool)
    kept[:10] = False
    cis = baseline.terms_cis(kept)
    assert tuple(cis) == DELTA_TERMS
    null = [brute_terms(pool[m], real) for m in baseline.null_masks(kept)]
    kept_terms = brute_terms(pool[kept], real)
    for name in DELTA_TERMS:
        want = kept_terms[name] - np.mean([n[name] for n in null])
        assert cis[name].value == pytest.approx(want, rel=1e-7, abs=1e-7)
        assert cis[name].low <= cis[name].value <= cis[name].high
    assert sum(ci.value for ci in cis.values()) == pytest.approx(baseline.delta_ci(kept).value, rel=1e-9, abs=1e-9)
    # the far samples are gone: the kept set is closer to the real centre and narrower than a random 50
    assert cis["mean"].value < 0 and cis["trace"].value < 0


def test_terms_delta_is_kept_minus_the_mean_and_sums_to_the_fid_difference():
    pool, real = data(5, 80)
    reference = feature_statistics(real)
    kept = fid_terms(feature_statistics(pool[:50]), reference)
    null = [fid_terms(feature_statistics(pool[s:s + 50]), reference) for s in (5, 10, 20, 30)]
    delta = terms_delta(kept, null)
    assert sum(delta.values()) == pytest.approx(kept.total - np.mean([n.total for n in null]), rel=1e-9, abs=1e-9)
    assert delta["trace"] == pytest.approx(kept.trace - np.mean([n.trace for n in null]), rel=1e-12)
