"""Diversity of a set of samples from their features: mean pairwise distance and the Vendi score.

Pure functions over feature matrices [n, D] (numpy or anything `np.asarray` accepts).
"""
from __future__ import annotations

import numpy as np

from benchmark.errors import ConfigError


def _features(features, field: str = "features") -> np.ndarray:
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ConfigError(field, getattr(x, "shape", None), "a feature matrix [n, D] with n >= 2 rows")
    return x


def mean_pairwise_distance(features) -> float:
    """Mean Euclidean distance over the n (n - 1) / 2 unordered pairs of rows: sum_{i<j} ||f_i - f_j|| / C(n, 2)."""
    x = _features(features)
    sq = (x * x).sum(1)
    d2 = np.clip(sq[:, None] + sq[None, :] - 2.0 * x @ x.T, 0.0, None)
    upper = np.triu_indices(x.shape[0], k=1)
    return float(np.sqrt(d2[upper]).mean())


def cosine_kernel(features) -> np.ndarray:
    """K_ij = <f_i, f_j> / (||f_i|| ||f_j||) [n, n] (K_ii = 1; a zero row counts as similar only to itself)."""
    x = _features(features)
    norms = np.linalg.norm(x, axis=1)
    unit = np.divide(x, norms[:, None], out=np.zeros_like(x), where=norms[:, None] > 0)
    kernel = unit @ unit.T
    np.fill_diagonal(kernel, 1.0)
    return kernel


def vendi_score(features) -> float:
    """Vendi score (Friedman & Dieng 2023, Eq. 1, order q = 1) with the cosine-similarity kernel:

        VS = exp( - sum_i lambda_i log lambda_i ),   lambda_i the eigenvalues of K / n,
    the exponential of the Shannon entropy of the kernel's spectrum: 1 for n identical samples, n for n
    mutually orthogonal ones ("the effective number of distinct samples").
    """
    kernel = cosine_kernel(features)
    eig = np.clip(np.linalg.eigvalsh(kernel / kernel.shape[0]), 0.0, None)
    eig = eig[eig > 1e-12]
    return float(np.exp(-(eig * np.log(eig)).sum()))
