"""FID against a fixed reference, with bootstrap intervals, shared by the FID-based protocols.

All intervals come from `metrics` (count-weighted replicates against the reference's cached covariance
factor, so a replicate never copies rows nor recomputes a D x D eigendecomposition).
"""
from __future__ import annotations

import numpy as np

from metrics import fid_bootstrap, paired_fid_difference, paired_sets_fid_difference


def bootstrap_replicates(space: str, n_boot: int) -> int:
    """Replicates for a feature space: a tenth (at least 10) in the 2048-d Inception space, where each
    replicate's eigendecomposition is of the subset's size rather than 128."""
    return n_boot if space != "inception" else max(10, n_boot // 10)


def fid_ci(features: np.ndarray, reference, n_boot: int, seed: int):
    """FID to the reference with a (bias-shifted) bootstrap interval over the generated samples."""
    return fid_bootstrap(None, features, n_boot=n_boot, seed=seed, real_stats=reference)


def paired_delta_ci(features_a: np.ndarray, features_b: np.ndarray, reference, n_boot: int, seed: int):
    """FID(a) - FID(b) for two sets whose rows are paired (same sample index), resampled jointly."""
    return paired_sets_fid_difference(features_a, features_b, reference, n_boot=n_boot, seed=seed)


def subset_delta_ci(pool: np.ndarray, mask_a: np.ndarray, mask_b: np.ndarray, reference, n_boot: int, seed: int):
    """FID(pool[a]) - FID(pool[b]) for two subsets of one pool, resampling the pool (paired membership)."""
    return paired_fid_difference(None, pool, mask_a.astype(bool), mask_b.astype(bool), n_boot=n_boot, seed=seed,
                                 real_stats=reference)


def keep_lowest(scores: np.ndarray, keep: int) -> np.ndarray:
    """Boolean mask [N] of the `keep` lowest scores (ties broken by index, so it is deterministic)."""
    order = np.lexsort((np.arange(scores.size), scores))
    mask = np.zeros(scores.size, dtype=bool)
    mask[order[:keep]] = True
    return mask
