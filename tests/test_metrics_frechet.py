"""Fréchet distance / FID: the eigh route against scipy.linalg.sqrtm and against closed forms."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from benchmark.errors import ConfigError, MissingAssetError, NonFiniteError
from metrics import FeatureStats, feature_statistics, fid_from_features, fid_from_stats, frechet_distance


def sqrtm_frechet(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """The formula of clean-fid / pytorch-fid: tr(sqrtm(s1 s2)) with scipy, real part, eps offset if not finite."""
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    covmean = np.real(covmean)
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def correlated_features(rng, rows, dim, shift=0.0, scale=1.0):
    mixing = rng.normal(size=(dim, dim)) / np.sqrt(dim)
    return (rng.normal(size=(rows, dim)) @ mixing) * scale + shift


@pytest.mark.parametrize("rows_a, rows_b, dim", [(500, 450, 48), (30, 25, 64)], ids=["full-rank", "rank-deficient"])
def test_matches_scipy_sqrtm_formula(rows_a, rows_b, dim):
    rng = np.random.default_rng(0)
    a = correlated_features(rng, rows_a, dim)
    b = correlated_features(rng, rows_b, dim, shift=0.2, scale=1.3)
    stats_a, stats_b = feature_statistics(a), feature_statistics(b)
    reference = sqrtm_frechet(stats_a.mu, stats_a.sigma, stats_b.mu, stats_b.sigma)
    assert fid_from_features(a, b) == pytest.approx(reference, rel=1e-6)
    assert fid_from_stats(stats_a, stats_b) == pytest.approx(reference, rel=1e-6)


def test_closed_form_for_covariances_with_shared_eigenvectors():
    """With s1 = R diag(a) R^T and s2 = R diag(b) R^T: d^2 = |m1 - m2|^2 + sum (sqrt(a) - sqrt(b))^2."""
    rng = np.random.default_rng(3)
    dim = 20
    rotation, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    eig_a, eig_b = rng.uniform(0.1, 3.0, dim), rng.uniform(0.0, 2.0, dim)
    eig_b[:5] = 0.0  # singular second covariance
    mu1, mu2 = rng.normal(size=dim), rng.normal(size=dim)
    sigma1, sigma2 = (rotation * eig_a) @ rotation.T, (rotation * eig_b) @ rotation.T
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(eig_a) - np.sqrt(eig_b)) ** 2)
    # zero eigenvalues come out as +-1e-16 round-off, whose square roots are ~1e-8: hence rel=1e-8
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(mu2, sigma2, mu1, sigma1) == pytest.approx(expected, rel=1e-8)


def test_isotropic_gaussians():
    """N(0, I) vs N(m, 4 I) in d dims: |m|^2 + d (1 + 4 - 2 * 2) = |m|^2 + d."""
    dim = 7
    mean = np.arange(dim, dtype=float)
    value = frechet_distance(np.zeros(dim), np.eye(dim), mean, 4 * np.eye(dim))
    assert value == pytest.approx(mean @ mean + dim, rel=1e-12)


def test_identical_sets_give_zero_even_when_singular():
    rng = np.random.default_rng(1)
    features = correlated_features(rng, 20, 50)  # rank 19 covariance: 31 zero eigenvalues
    # each zero eigenvalue comes out as ~1e-16 round-off with a ~1e-8 square root (the scipy route is no better)
    assert abs(fid_from_features(features, features)) < 1e-7 * np.trace(np.cov(features, rowvar=False))


def test_stats_are_float64_unbiased_and_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    features = rng.normal(size=(40, 6)).astype(np.float32)
    stats = feature_statistics(features)
    assert stats.mu.dtype == np.float64 and stats.sigma.shape == (6, 6) and stats.n == 40
    centred = features.astype(np.float64) - features.astype(np.float64).mean(0)
    np.testing.assert_allclose(stats.sigma, centred.T @ centred / 39, rtol=1e-12)
    stats.save(tmp_path / "ref.npz")
    loaded = FeatureStats.load(tmp_path / "ref.npz")
    np.testing.assert_array_equal(loaded.mu, stats.mu)
    np.testing.assert_array_equal(loaded.sigma, stats.sigma)
    assert loaded.n == 40
    assert [p.name for p in tmp_path.iterdir()] == ["ref.npz"]  # no temporary file left


def test_bad_inputs_are_named():
    with pytest.raises(MissingAssetError, match="does not exist"):
        FeatureStats.load("/nonexistent/stats.npz")
    with pytest.raises(ConfigError, match="sigma2"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(4))
    with pytest.raises(ConfigError, match="at least 2 rows"):
        feature_statistics(np.zeros((1, 3)))
    with pytest.raises(NonFiniteError):
        feature_statistics(np.array([[0.0, np.nan], [1.0, 2.0]]))
