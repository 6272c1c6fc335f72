"""Sparsification / AUSE / AURG against a direct loop over the mono-uncertainty definitions (np.percentile + masks)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.errors import ConfigError, NonFiniteError
from metrics import sparsification, sparsification_pooled


def mono_uncertainty_loop(error: np.ndarray, uncertainty: np.ndarray, intervals: int = 50, metric: str = "rmse"):
    """One image (flat arrays), written like mattpoggi/mono-uncertainty's compute_aucs."""

    def value(mask):
        kept = error[mask]
        return np.sqrt(np.mean(kept ** 2)) if metric == "rmse" else np.mean(np.abs(kept))

    true_uncertainty = -(error ** 2) if metric == "rmse" else -np.abs(error)
    quants = [100.0 / intervals * t for t in range(intervals)]
    plotx = [1.0 / intervals * t for t in range(intervals + 1)]
    sparse = [value(-uncertainty >= np.percentile(-uncertainty, q)) for q in quants] + [0.0]
    oracle = [value(true_uncertainty >= np.percentile(true_uncertainty, q)) for q in quants] + [0.0]
    random = value(np.ones_like(error, dtype=bool))
    ause = np.trapezoid(sparse, x=plotx) - np.trapezoid(oracle, x=plotx)
    aurg = random - np.trapezoid(sparse, x=plotx)
    return np.array(sparse), np.array(oracle), random, ause, aurg


def batch(seed: int, shape=(5, 3, 8, 8), ties: bool = False):
    rng = np.random.default_rng(seed)
    error = rng.normal(size=shape)
    uncertainty = np.abs(error) * rng.uniform(0.2, 1.8, size=shape) + 0.3 * rng.random(shape)
    if ties:
        uncertainty = np.round(uncertainty * 3) / 3  # a handful of distinct values
    return error, uncertainty


def assert_matches_loop(result, error, uncertainty, intervals, metric):
    for b in range(error.shape[0]):
        sparse, oracle, random, ause, aurg = mono_uncertainty_loop(error[b].ravel(), uncertainty[b].ravel(),
                                                                   intervals, metric)
        np.testing.assert_allclose(result.method[b], sparse, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(result.oracle[b], oracle, rtol=1e-12, atol=1e-14)
        assert result.random[b] == pytest.approx(random, rel=1e-12)
        assert result.ause_per_image[b] == pytest.approx(ause, rel=1e-10, abs=1e-13)
        x = np.arange(intervals + 1) / intervals  # AURG against the expected random-removal curve (issue 24)
        assert result.aurg_per_image[b] == pytest.approx(np.trapezoid(result.random_curve[b], x=x)
                                                         - np.trapezoid(sparse, x=x), rel=1e-10, abs=1e-13)
    assert result.ause == pytest.approx(result.ause_per_image.mean(), rel=1e-12)
    assert result.aurg == pytest.approx(result.aurg_per_image.mean(), rel=1e-12)


@pytest.mark.parametrize("metric", ["rmse", "mae"])
@pytest.mark.parametrize("intervals", [50, 7])
@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
def test_per_image_matches_mono_uncertainty_loop(metric, intervals, ties):
    error, uncertainty = batch(0, ties=ties)
    result = sparsification(torch.from_numpy(error), uncertainty, fractions=intervals, metric=metric)
    assert result.method.shape == (5, intervals + 1) and result.removed.shape == (intervals + 1,)
    np.testing.assert_allclose(result.removed, np.arange(intervals + 1) / intervals)
    assert_matches_loop(result, error, uncertainty, intervals, metric)


def test_pooled_is_one_curve_over_all_pixels():
    error, uncertainty = batch(1, shape=(4, 1, 6, 6))
    result = sparsification_pooled(error, uncertainty)
    assert result.method.shape == (1, 51)
    assert_matches_loop(result, error.reshape(1, -1), uncertainty.reshape(1, -1), 50, "rmse")


def test_perfect_uncertainty_gives_zero_ause():
    error, _ = batch(2)
    for uncertainty in (np.abs(error), error ** 2):
        result = sparsification(error, uncertainty)
        np.testing.assert_array_equal(result.method, result.oracle)
        assert result.ause == 0.0 and np.all(result.ause_per_image == 0.0)
        assert result.aurg > 0


def test_inverted_uncertainty_is_worse_than_random():
    error, _ = batch(3)
    result = sparsification(error, -np.abs(error))
    assert result.aurg < 0 < result.ause


def test_bad_inputs_are_named():
    error, uncertainty = batch(4)
    with pytest.raises(ConfigError, match="uncertainty"):
        sparsification(error, uncertainty[:, :1])
    with pytest.raises(ConfigError, match="metric"):
        sparsification(error, uncertainty, metric="abs_rel")
    with pytest.raises(ConfigError, match="fractions"):
        sparsification(error, uncertainty, fractions=0)
    with pytest.raises(NonFiniteError):
        sparsification(error, np.full_like(uncertainty, np.nan))


def test_the_published_mono_uncertainty_aurg_sits_m_over_2f_above_the_unbiased_one():
    """mae: the expected random curve is m(e) until it drops to 0 at 100 %, so AURG_mono - AURG = m(e) / (2F)
    exactly, for any map; a map without information has unbiased AURG ~ 0 but AURG_mono ~ m(e) / (2F) > 0."""
    import numpy as np

    from metrics.sparsification import aurg_mono_uncertainty

    rng = np.random.default_rng(0)
    error, noise = np.abs(rng.normal(size=(6, 1, 8, 8))), np.abs(rng.normal(size=(6, 1, 8, 8)))
    res = sparsification(error, noise, fractions=20, metric="mae")
    level = error.reshape(6, -1).mean(1)
    np.testing.assert_allclose(aurg_mono_uncertainty(res) - res.aurg_per_image, level / 40, rtol=1e-12)
