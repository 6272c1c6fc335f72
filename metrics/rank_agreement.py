"""Rank agreement between two uncertainty estimators on the same samples (pure functions).

Spearman's rho is Pearson's correlation of the ranks (ties get their average rank):
    rho(a, b) = corr(rank(a), rank(b))
- of the scores: one rho over the N samples (do the two estimators order the samples alike?);
- of the maps: one rho per sample over its pixels, then their mean (do they order the pixels of an image alike?).
A constant vector has no ranking: its rho is NaN, and the mean over samples skips it.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def _row_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson's r of every row pair of a, b [N, D] (NaN for a constant row)."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    denominator = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (a * b).sum(axis=1) / np.where(denominator > 0, denominator, 1.0), np.nan)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho of two vectors [N] (NaN when either is constant)."""
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    return float(_row_pearson(rankdata(a)[None], rankdata(b)[None])[0])


def per_item_spearman(maps_a: np.ndarray, maps_b: np.ndarray) -> np.ndarray:
    """rho over the pixels of each sample: maps [N, ...] -> [N] (NaN for a constant map)."""
    a = np.asarray(maps_a, dtype=np.float64).reshape(len(maps_a), -1)
    b = np.asarray(maps_b, dtype=np.float64).reshape(len(maps_b), -1)
    if a.shape != b.shape:
        raise ValueError(f"maps of different shapes: {a.shape} and {b.shape}")
    return _row_pearson(rankdata(a, axis=1), rankdata(b, axis=1))


__all__ = ["per_item_spearman", "spearman"]
