"""FID∞ (Chong & Forsyth 2020) on Gaussian features, where the Fréchet distance is known in closed form:
the reference statistics are the exact parameters of N(mu_r, S_r) and the generated rows are drawn from
N(mu_g, S_g), so the truth is frechet_distance(mu_r, S_r, mu_g, S_g) of the exact parameters."""
from __future__ import annotations

import numpy as np
import pytest

from benchmark.errors import ConfigError
from metrics import FeatureStats, feature_statistics, fid_from_stats, frechet_distance
from metrics.fid_infinity import (
    extrapolate,
    fid_infinity,
    fid_infinity_bootstrap,
    fid_infinity_difference_bootstrap,
    subset_sizes,
)

DIM = 48


@pytest.fixture(scope="module")
def gaussians():
    rng = np.random.default_rng(0)
    mixing_r = rng.normal(size=(DIM, DIM)) / np.sqrt(DIM)
    mixing_g = mixing_r + 0.3 * rng.normal(size=(DIM, DIM)) / np.sqrt(DIM)
    mu_r, sigma_r = np.zeros(DIM), mixing_r @ mixing_r.T
    mu_g, sigma_g = np.full(DIM, 0.1), mixing_g @ mixing_g.T
    truth = frechet_distance(mu_r, sigma_r, mu_g, sigma_g)
    return FeatureStats(mu=mu_r, sigma=sigma_r, n=10**9), mu_g, sigma_g, truth


def draw(mu, sigma, rows, seed):
    return np.random.default_rng(seed).multivariate_normal(mu, sigma, size=rows)


def test_fid_infinity_is_much_closer_to_the_closed_form_than_fid_n(gaussians):
    reference, mu_g, sigma_g, truth = gaussians
    errors_n, errors_inf = [], []
    for seed in range(8):
        features = draw(mu_g, sigma_g, 1000, seed + 1)
        errors_n.append(fid_from_stats(reference, feature_statistics(features)) - truth)
        errors_inf.append(fid_infinity(features, reference, seed=seed).value - truth)
    errors_n, errors_inf = np.array(errors_n), np.array(errors_inf)
    assert errors_n.mean() > 0.1 * truth  # FID_N is biased upwards by a visible amount here
    assert abs(errors_inf.mean()) < 0.3 * errors_n.mean()  # measured: 0.10 against 0.47
    assert np.sqrt(np.mean(errors_inf ** 2)) < 0.6 * np.sqrt(np.mean(errors_n ** 2))


def test_extrapolation_recovers_an_exact_line_and_the_paper_sizes():
    sizes = np.array([100, 200, 400, 800])
    intercept, slope = extrapolate(sizes, 3.0 + 50.0 / sizes)
    assert intercept == pytest.approx(3.0, rel=1e-12) and slope == pytest.approx(50.0, rel=1e-12)
    np.testing.assert_array_equal(subset_sizes(50_000, 15, 0.1), np.linspace(5000, 50_000, 15).astype(int))
    with pytest.raises(ConfigError, match="fid_infinity_points"):
        subset_sizes(100, 1)


def test_fit_points_are_fids_of_subsets_drawn_without_replacement(gaussians):
    reference, mu_g, sigma_g, _ = gaussians
    features = draw(mu_g, sigma_g, 300, 11)
    result = fid_infinity(features, reference, points=5, seed=3)
    rng = np.random.default_rng(3)  # the documented draws: one permutation of the rows per size
    for size, fid in zip(result.sizes, result.fids):
        rows = rng.permutation(300)[:size]
        assert fid == pytest.approx(fid_from_stats(reference, feature_statistics(features[rows])), rel=1e-9)
    assert result.sizes[-1] == 300 and result.value == pytest.approx(extrapolate(result.sizes, result.fids)[0])


def test_interval_covers_the_closed_form(gaussians):
    reference, mu_g, sigma_g, truth = gaussians
    covered = 0
    for seed in range(6):
        ci = fid_infinity_bootstrap(draw(mu_g, sigma_g, 600, 100 + seed), reference, n_boot=60, seed=seed, points=6)
        assert ci.method == "shifted" and ci.low < ci.value < ci.high
        covered += ci.contains(truth)
    assert covered >= 5


def test_paired_difference_of_a_set_with_itself_is_zero_and_of_a_worse_set_is_positive(gaussians):
    reference, mu_g, sigma_g, _ = gaussians
    good = draw(mu_g, sigma_g, 300, 21)
    bad = draw(mu_g + 0.4, sigma_g, 200, 22)
    pool = np.concatenate([good, bad])
    first = np.zeros(500, dtype=bool)
    first[:300] = True
    same = fid_infinity_difference_bootstrap(pool, first, reference, n_boot=20, seed=1, index_a=first, points=4)
    assert same.value == 0.0 and same.low == 0.0 and same.high == 0.0
    worse = fid_infinity_difference_bootstrap(pool, first, reference, n_boot=40, seed=1, points=4)  # all minus good
    assert worse.low > 0
