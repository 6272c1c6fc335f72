"""Bootstrap intervals: against naive copy-the-rows bootstraps that follow the documented draws, determinism,
the paired difference of identical subsets, and the interval kinds."""
from __future__ import annotations

import numpy as np
import pytest

from benchmark.errors import ConfigError
from metrics import (
    bootstrap_ci,
    fid_bootstrap,
    fid_from_features,
    paired_fid_difference,
    paired_sets_fid_difference,
    precision_recall,
    precision_recall_bootstrap,
)
from metrics.bootstrap import CountWeightedStatistics
from metrics.frechet import feature_statistics


def percentile_bounds(replicates, alpha=0.05):
    return np.percentile(replicates, [100 * alpha / 2, 100 * (1 - alpha / 2)])


def features(seed, rows, dim=6, shift=0.0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(rows, dim)) @ (np.eye(dim) + 0.3 * rng.normal(size=(dim, dim))) + shift


def test_bootstrap_ci_matches_naive_loop_and_is_seeded():
    x, y = features(0, 80, 1).ravel(), features(1, 80, 1).ravel()

    def statistic(a, b):
        return float(np.mean(a - b))

    rng = np.random.default_rng(11)
    naive = []
    for _ in range(100):
        index = rng.integers(0, 80, 80)
        naive.append(statistic(x[index], y[index]))
    ci = bootstrap_ci(statistic, x, y, n_boot=100, seed=11)
    assert ci.value == statistic(x, y) and ci.method == "percentile"
    np.testing.assert_allclose([ci.low, ci.high], percentile_bounds(naive), rtol=1e-12)
    assert ci.contains(ci.value)
    assert bootstrap_ci(statistic, x, y, n_boot=100, seed=11) == ci
    assert bootstrap_ci(statistic, x, y, n_boot=100, seed=12) != ci


def test_count_weighted_statistics_equal_statistics_of_copied_rows():
    data = features(2, 50)
    counts = np.bincount(np.random.default_rng(3).integers(0, 50, 50), minlength=50)
    weighted = CountWeightedStatistics(data)(counts)
    copied = feature_statistics(np.repeat(data, counts, axis=0))
    np.testing.assert_allclose(weighted.mu, copied.mu, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(weighted.sigma, copied.sigma, rtol=1e-10, atol=1e-13)
    assert weighted.n == copied.n == 50


@pytest.mark.parametrize("resample_real", [False, True])
def test_fid_bootstrap_matches_naive_resampling(resample_real):
    real, fake = features(4, 120), features(5, 100, shift=0.4)
    rng = np.random.default_rng(7)
    naive = []
    for _ in range(30):
        fake_index = rng.integers(0, 100, 100)
        real_index = rng.integers(0, 120, 120) if resample_real else np.arange(120)
        naive.append(fid_from_features(real[real_index], fake[fake_index]))
    ci = fid_bootstrap(real, fake, n_boot=30, seed=7, resample_real=resample_real, interval="percentile")
    assert ci.value == pytest.approx(fid_from_features(real, fake), rel=1e-12)
    np.testing.assert_allclose([ci.low, ci.high], percentile_bounds(naive), rtol=1e-8)


def test_fid_bootstrap_with_fewer_rows_than_dimensions_matches_naive_resampling():
    """Fewer generated rows (40) than reference rank (64): replicates read Z Z^T from the cached Gram matrix."""
    real, fake = features(14, 400, dim=64), features(15, 40, dim=64, shift=0.3)
    rng = np.random.default_rng(5)
    naive = [fid_from_features(real, fake[rng.integers(0, 40, 40)]) for _ in range(25)]
    ci = fid_bootstrap(real, fake, n_boot=25, seed=5, interval="percentile")
    # the fake covariance is singular: its ~25 zero eigenvalues come out as round-off whose square roots
    # (~1e-8 each) differ between the two routes, hence rel=1e-7 (as in test_metrics_frechet)
    assert ci.value == pytest.approx(fid_from_features(real, fake), rel=1e-7)
    np.testing.assert_allclose([ci.low, ci.high], percentile_bounds(naive), rtol=1e-7)


def test_fid_bootstrap_default_interval_contains_value_and_is_deterministic():
    real, fake = features(6, 150), features(7, 150, shift=0.3)
    ci = fid_bootstrap(real, fake, n_boot=40, seed=1)
    assert ci.method == "shifted" and ci.low < ci.value < ci.high
    assert fid_bootstrap(real, fake, n_boot=40, seed=1) == ci
    percentile = fid_bootstrap(real, fake, n_boot=40, seed=1, interval="percentile")
    # resamples hold ~63% distinct rows, so their FID is biased upwards: the shift removes exactly that offset
    assert percentile.low > ci.low and percentile.high - percentile.low == pytest.approx(ci.high - ci.low)
    cached = fid_bootstrap(None, fake, n_boot=40, seed=1, real_stats=feature_statistics(real))
    assert cached.low == pytest.approx(ci.low, rel=1e-12) and cached.high == pytest.approx(ci.high, rel=1e-12)


def test_paired_difference_of_identical_subsets_is_exactly_zero():
    real, pool = features(8, 100), features(9, 90)
    subset = np.arange(10, 70)
    ci = paired_fid_difference(real, pool, subset, subset.copy(), n_boot=20, seed=0)
    assert (ci.value, ci.low, ci.high) == (0.0, 0.0, 0.0)
    mask = np.zeros(90, dtype=bool)
    mask[subset] = True
    assert paired_fid_difference(real, pool, mask, subset, n_boot=20, seed=0, resample_real=True).high == 0.0


def test_paired_difference_matches_naive_pool_resampling():
    real, pool = features(10, 100), features(11, 80, shift=0.2)
    idx_a, idx_b = np.arange(0, 50), np.arange(30, 80)  # overlapping subsets
    rng = np.random.default_rng(5)
    naive = []
    for _ in range(25):
        counts = np.bincount(rng.integers(0, 80, 80), minlength=80)
        subset_a = np.repeat(pool[idx_a], counts[idx_a], axis=0)
        subset_b = np.repeat(pool[idx_b], counts[idx_b], axis=0)
        naive.append(fid_from_features(real, subset_a) - fid_from_features(real, subset_b))
    ci = paired_fid_difference(real, pool, idx_a, idx_b, n_boot=25, seed=5, interval="percentile")
    assert ci.value == pytest.approx(fid_from_features(real, pool[idx_a]) - fid_from_features(real, pool[idx_b]))
    np.testing.assert_allclose([ci.low, ci.high], percentile_bounds(naive), rtol=1e-8)


def test_paired_difference_with_reference_stats_equals_the_one_from_real_features():
    real, pool = features(10, 100), features(11, 80, shift=0.2)
    idx_a, idx_b = np.arange(0, 50), np.arange(30, 80)
    from_features = paired_fid_difference(real, pool, idx_a, idx_b, n_boot=15, seed=2)
    from_stats = paired_fid_difference(None, pool, idx_a, idx_b, n_boot=15, seed=2,
                                       real_stats=feature_statistics(real))
    np.testing.assert_allclose([from_stats.value, from_stats.low, from_stats.high],
                               [from_features.value, from_features.low, from_features.high], rtol=1e-9)


def test_paired_sets_difference_matches_naive_row_paired_resampling():
    """Row i of both sets is the same sample: one draw of counts per replicate, applied to both sets."""
    real, set_a, set_b = features(16, 100), features(17, 60, shift=0.3), features(18, 60)
    reference = feature_statistics(real)
    rng = np.random.default_rng(4)
    naive = []
    for _ in range(20):
        counts = np.bincount(rng.integers(0, 60, 60), minlength=60)
        naive.append(fid_from_features(real, np.repeat(set_a, counts, axis=0))
                     - fid_from_features(real, np.repeat(set_b, counts, axis=0)))
    ci = paired_sets_fid_difference(set_a, set_b, reference, n_boot=20, seed=4, interval="percentile")
    assert ci.value == pytest.approx(fid_from_features(real, set_a) - fid_from_features(real, set_b))
    np.testing.assert_allclose([ci.low, ci.high], percentile_bounds(naive), rtol=1e-8)
    same = paired_sets_fid_difference(set_a, set_a.copy(), reference, n_boot=10, seed=0)
    assert (same.value, same.low, same.high) == (0.0, 0.0, 0.0)


def test_paired_difference_flags_a_real_difference():
    real = features(12, 200)
    pool = np.concatenate([features(12, 200)[:100] + 0.01, features(13, 100, shift=3.0)])
    ci = paired_fid_difference(real, pool, np.arange(100), np.arange(100, 200), n_boot=30, seed=0)
    assert ci.value < 0 and ci.excludes_zero


def naive_manifold_fraction(queries, query_counts, centres, k):
    """Count-weighted fraction of queries inside the union of k-NN balls of (distinct) centres."""
    distances = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    radii = np.sort(distances, axis=1)[:, k - 1]
    inside = (np.linalg.norm(queries[:, None] - centres[None], axis=-1) <= radii[None]).any(axis=1)
    return float(query_counts @ inside / query_counts.sum())


def test_precision_recall_bootstrap_matches_naive_resampling():
    real, fake = features(14, 70, dim=4), features(15, 60, dim=4, shift=0.5)
    rng = np.random.default_rng(9)
    naive = []
    for _ in range(15):
        counts = np.bincount(rng.integers(0, 60, 60), minlength=60)
        precision = naive_manifold_fraction(fake, counts, real, 3)
        recall = naive_manifold_fraction(real, np.ones(70), fake[counts > 0], 3)
        naive.append((precision, recall))
    ci = precision_recall_bootstrap(real, fake, n_boot=15, seed=9, interval="percentile", scheme="replacement")
    plain = precision_recall(real, fake)
    assert (ci.precision.value, ci.recall.value, ci.f1.value) == (plain.precision, plain.recall, plain.f1)
    naive = np.array(naive)
    np.testing.assert_allclose([ci.precision.low, ci.precision.high], percentile_bounds(naive[:, 0]), atol=1e-12)
    np.testing.assert_allclose([ci.recall.low, ci.recall.high], percentile_bounds(naive[:, 1]), atol=1e-12)
    shifted = precision_recall_bootstrap(real, fake, n_boot=15, seed=9, resample_real=True, scheme="replacement")
    assert shifted == precision_recall_bootstrap(real, fake, n_boot=15, seed=9, resample_real=True,
                                                 scheme="replacement")
    assert shifted.precision.method == "shifted"


def test_bad_arguments_are_named():
    data = features(16, 20)
    with pytest.raises(ConfigError, match="n_boot"):
        fid_bootstrap(data, data, n_boot=1)
    with pytest.raises(ConfigError, match="alpha"):
        bootstrap_ci(np.mean, data, alpha=1.5)
    with pytest.raises(ConfigError, match="interval"):
        fid_bootstrap(data, data, interval="bca")
    with pytest.raises(ConfigError, match="real_features"):
        fid_bootstrap(None, data, resample_real=True, real_stats=feature_statistics(data))
    with pytest.raises(ConfigError, match="idx_b"):
        paired_fid_difference(data, data, np.arange(5), np.array([0, 25]))


def test_subsampling_fid_interval_covers_the_expected_fid_on_gaussians():
    """Coverage of E[FID_N] (brute force: the mean FID of 400 fresh draws) by the protocols' subsampling interval,
    on Gaussians against exact reference statistics: 60 trials, 95 % nominal; a with-replacement bootstrap covers
    every time here (its interval is ~2x too wide), the subsampling interval must not (and must not fall apart)."""
    from metrics.bootstrap import FixedReferenceFID
    from metrics.frechet import FeatureStats

    rng = np.random.default_rng(11)
    dim, rows = 32, 160
    mixing = rng.normal(size=(dim, dim)) / np.sqrt(dim)
    factor = np.linalg.cholesky(mixing @ mixing.T * 0.5 + 0.7 * np.eye(dim))
    reference = FeatureStats(mu=np.zeros(dim), sigma=np.eye(dim), n=10**9)

    def draw():
        return 0.1 + rng.normal(size=(rows, dim)) @ factor.T

    truth = np.mean([FixedReferenceFID(reference, draw()).full() for _ in range(400)])
    hits, widths = 0, []
    for trial in range(60):
        ci = fid_bootstrap(None, draw(), n_boot=100, seed=trial, real_stats=reference, scheme="subsample")
        hits += ci.low <= truth <= ci.high
        widths.append(ci.high - ci.low)
    assert 50 <= hits <= 60  # binomial(60, 0.95): P(< 50) ~ 0.2 %
    wide = fid_bootstrap(None, draw(), n_boot=100, seed=0, real_stats=reference, scheme="replacement")
    assert np.mean(widths) < 0.8 * (wide.high - wide.low)
