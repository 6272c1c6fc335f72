"""FID against a fixed reference, with bootstrap intervals, shared by the FID-based protocols."""
from __future__ import annotations

import numpy as np

from metrics import bootstrap_ci, feature_statistics, fid_from_stats


def fid_to_reference(features: np.ndarray, reference) -> float:
    """FID of a feature set [n, D] to the reference statistics (the real test set)."""
    return float(fid_from_stats(feature_statistics(features), reference))


def fid_ci(features: np.ndarray, reference, n_boot: int, seed: int):
    """FID to the reference with a bootstrap interval over the generated samples."""
    return bootstrap_ci(lambda f: fid_to_reference(f, reference), features, n_boot=n_boot, seed=seed)


def paired_delta_ci(features_a: np.ndarray, features_b: np.ndarray, reference, n_boot: int, seed: int):
    """FID(a) - FID(b) for two sets whose rows are paired (same sample index), resampled jointly."""
    return bootstrap_ci(lambda a, b: fid_to_reference(a, reference) - fid_to_reference(b, reference),
                        features_a, features_b, n_boot=n_boot, seed=seed)


def subset_delta_ci(pool: np.ndarray, mask_a: np.ndarray, mask_b: np.ndarray, reference, n_boot: int, seed: int):
    """FID(pool[a]) - FID(pool[b]) for two subsets of one pool, resampling the pool (paired membership)."""

    def delta(feats: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
        a, b = a.astype(bool), b.astype(bool)
        if a.sum() < 2 or b.sum() < 2:
            return float("nan")
        return fid_to_reference(feats[a], reference) - fid_to_reference(feats[b], reference)

    return bootstrap_ci(delta, pool, mask_a.astype(np.float64), mask_b.astype(np.float64), n_boot=n_boot, seed=seed)


def keep_lowest(scores: np.ndarray, keep: int) -> np.ndarray:
    """Boolean mask [N] of the `keep` lowest scores (ties broken by index, so it is deterministic)."""
    order = np.lexsort((np.arange(scores.size), scores))
    mask = np.zeros(scores.size, dtype=bool)
    mask[order[:keep]] = True
    return mask
