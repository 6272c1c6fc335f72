"""Fréchet distance between Gaussians fitted to feature sets (FID when the features are Inception pool3).

Everything here is float64 numpy. tr(sqrt(sigma1 sigma2)) goes through a factor sigma1 = B B^T (Cholesky,
or `eigh` when sigma1 is singular) and `eigvalsh` of the symmetric B^T sigma2 B, never `scipy.linalg.sqrtm`:
it is faster at 2048-d, real by construction, and stable when a covariance is singular (fewer samples than
dimensions).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from benchmark.errors import ConfigError, MissingAssetError, NonFiniteError


@dataclass
class FeatureStats:
    """Mean and covariance of a feature set: mu [D] float64, sigma [D, D] float64 (ddof = 1), n rows."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int

    @cached_property
    def factor(self) -> np.ndarray:
        """psd_factor(sigma) [D, r], computed once per statistics object (a reference reused by many FIDs)."""
        return psd_factor(self.sigma)

    def save(self, path: str | Path) -> None:
        """Write an .npz with keys mu, sigma, n (written to a temporary file, then renamed)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, mu=self.mu, sigma=self.sigma, n=np.int64(self.n))
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> "FeatureStats":
        """Read an .npz written by `save` (keys mu, sigma, n)."""
        path = Path(path)
        if not path.is_file():
            raise MissingAssetError(f"feature statistics file {str(path)!r} does not exist. Fix: compute it with "
                                    "metrics.feature_statistics(features).save(path).")
        with np.load(path) as data:
            missing = {"mu", "sigma", "n"} - set(data.files)
            if missing:
                raise ConfigError("stats file", str(path),
                                  f"an .npz with keys mu, sigma, n (missing {sorted(missing)})")
            return cls(mu=data["mu"].astype(np.float64), sigma=data["sigma"].astype(np.float64), n=int(data["n"]))


def as_feature_matrix(features, field: str = "features") -> np.ndarray:
    """numpy/torch features as a [N, D] float64 numpy array (no copy if already one); checks rank and finiteness."""
    if hasattr(features, "detach"):
        features = features.detach().cpu().numpy()
    array = np.asarray(features, dtype=np.float64)
    if array.ndim != 2:
        raise ConfigError(field, f"array of shape {array.shape}", "a 2-D [N, D] feature matrix")
    if not np.isfinite(array).all():
        raise NonFiniteError(f"{field} contains NaN or Inf. Fix: check the feature extractor's inputs.")
    return array


def feature_statistics(features) -> FeatureStats:
    """mu = mean of the rows, sigma = unbiased covariance (ddof = 1) of features [N, D], N >= 2."""
    array = as_feature_matrix(features)
    if array.shape[0] < 2:
        raise ConfigError("features", f"{array.shape[0]} rows", "at least 2 rows to estimate a covariance")
    return FeatureStats(mu=array.mean(axis=0), sigma=np.cov(array, rowvar=False, ddof=1).reshape(array.shape[1], -1),
                        n=array.shape[0])


def psd_factor(matrix: np.ndarray) -> np.ndarray:
    """B [D, r] with B B^T = matrix for a symmetric PSD matrix [D, D].

    A positive definite matrix takes its Cholesky factor (r = D; ~D^3/3 flops, far cheaper than an
    eigendecomposition); a singular one (fewer samples than dimensions) B = V_+ diag(sqrt(w_+)) from eigh,
    keeping the r eigenpairs with w > 0 (round-off negatives are dropped).
    """
    symmetric = 0.5 * (matrix + matrix.T)
    try:
        return np.linalg.cholesky(symmetric)
    except np.linalg.LinAlgError:
        pass
    eigenvalues, eigenvectors = np.linalg.eigh(symmetric)
    positive = eigenvalues > 0
    return eigenvectors[:, positive] * np.sqrt(eigenvalues[positive])


def congruence(factor: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """factor^T matrix factor [r, r]; with a square lower-triangular factor (a Cholesky factor) through two
    triangular products (BLAS trmm: half the flops of general products), else two general products."""
    if factor.shape[0] == factor.shape[1] and not np.triu(factor, 1).any():
        from scipy.linalg.blas import dtrmm

        lower = np.asfortranarray(factor, dtype=np.float64)
        left = dtrmm(1.0, lower, np.asarray(matrix, dtype=np.float64), side=0, lower=1, trans_a=1)  # L^T M
        return dtrmm(1.0, lower, left, side=1, lower=1, trans_a=0)  # (L^T M) L
    return factor.T @ matrix @ factor


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray, factor1: np.ndarray | None = None) -> float:
    """tr(sqrt(sigma1 sigma2)) = sum_i sqrt(lambda_i), lambda_i the eigenvalues of B^T sigma2 B, sigma1 = B B^T.

    sigma1 sigma2 = B (B^T sigma2) has the nonzero eigenvalues of (B^T sigma2) B = B^T sigma2 B, which are
    also those of sqrt(s1) s2 sqrt(s1); B^T sigma2 B [r, r] is symmetric PSD, so `eigvalsh` applies and
    round-off negatives are clamped at 0. `factor1` (= psd_factor(sigma1)) may be passed when reused.
    """
    factor = psd_factor(sigma1) if factor1 is None else factor1
    middle = congruence(factor, sigma2)
    eigenvalues = np.linalg.eigvalsh(0.5 * (middle + middle.T))
    return float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2, *, factor1: np.ndarray | None = None) -> float:
    """Fréchet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2):

        d^2 = ||mu1 - mu2||^2 + tr(sigma1) + tr(sigma2) - 2 tr(sqrt(sigma1 sigma2))

    (Heusel et al. 2017, Eq. 6 / Dowson & Landau 1982). mu [D], sigma [D, D]; computed in float64.
    `factor1` = psd_factor(sigma1) may be given when sigma1 is reused (a fixed reference set).
    """
    mu1, mu2 = np.asarray(mu1, dtype=np.float64), np.asarray(mu2, dtype=np.float64)
    sigma1, sigma2 = np.asarray(sigma1, dtype=np.float64), np.asarray(sigma2, dtype=np.float64)
    dim = mu1.shape[0]
    for name, value, shape in (("mu2", mu2, (dim,)), ("sigma1", sigma1, (dim, dim)), ("sigma2", sigma2, (dim, dim))):
        if value.shape != shape:
            raise ConfigError(name, f"array of shape {value.shape}", f"shape {shape} to match mu1 of shape {(dim,)}")
    diff = mu1 - mu2
    cross = trace_sqrt_product(sigma1, sigma2, factor1)
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * cross)


def fid_from_stats(stats_a: FeatureStats, stats_b: FeatureStats) -> float:
    """Fréchet distance between two FeatureStats (stats_a's covariance factor is cached on it: pass the
    reference first when it is reused)."""
    return frechet_distance(stats_a.mu, stats_a.sigma, stats_b.mu, stats_b.sigma, factor1=stats_a.factor)


def fid_from_features(features_a, features_b) -> float:
    """Fréchet distance between Gaussians fitted to features_a [N, D] and features_b [M, D]."""
    return fid_from_stats(feature_statistics(features_a), feature_statistics(features_b))
