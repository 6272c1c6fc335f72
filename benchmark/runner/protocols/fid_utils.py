"""FID against a fixed reference, with bootstrap intervals, shared by the FID-based protocols."""
from __future__ import annotations

import numpy as np

from metrics import ConfidenceInterval, bootstrap_ci, feature_statistics, fid_bootstrap, fid_from_stats, paired_fid_difference


def inception_free_boot(space: str, n_boot: int) -> int:
    """Bootstrap replicates for a feature space: none for the 2048-d Inception space, where one FID costs
    seconds on a CPU and a paired difference hundreds of replicates of two (point estimates instead)."""
    return n_boot if space != "inception" else 0


def point_estimate(value: float) -> ConfidenceInterval:
    """A value without an interval (reported with NaN bounds)."""
    return ConfidenceInterval(float(value), float("nan"), float("nan"), 0, 0.05)


def fid_to_reference(features: np.ndarray, reference) -> float:
    """FID of a feature set [n, D] to the reference statistics (the real test set)."""
    return float(fid_from_stats(feature_statistics(features), reference))


def fid_ci(features: np.ndarray, reference, n_boot: int, seed: int):
    """FID to the reference with a (bias-shifted) bootstrap interval over the generated samples."""
    if n_boot == 0:
        return point_estimate(fid_to_reference(features, reference))
    return fid_bootstrap(None, features, n_boot=n_boot, seed=seed, real_stats=reference)


def paired_delta_ci(features_a: np.ndarray, features_b: np.ndarray, reference, n_boot: int, seed: int):
    """FID(a) - FID(b) for two sets whose rows are paired (same sample index), resampled jointly."""
    if n_boot == 0:
        return point_estimate(fid_to_reference(features_a, reference) - fid_to_reference(features_b, reference))
    return bootstrap_ci(lambda a, b: fid_to_reference(a, reference) - fid_to_reference(b, reference),
                        features_a, features_b, n_boot=n_boot, seed=seed)


def subset_delta_ci(pool: np.ndarray, mask_a: np.ndarray, mask_b: np.ndarray, reference, n_boot: int, seed: int,
                    real_features: np.ndarray | None = None):
    """FID(pool[a]) - FID(pool[b]) for two subsets of one pool, resampling the pool (paired membership).

    With the real features at hand this is `metrics.paired_fid_difference` (count-weighted, no copies);
    with only reference statistics (e.g. committed Inception statistics) a plain paired bootstrap.
    """
    if n_boot == 0:
        a, b = mask_a.astype(bool), mask_b.astype(bool)
        return point_estimate(fid_to_reference(pool[a], reference) - fid_to_reference(pool[b], reference))
    if real_features is not None:
        return paired_fid_difference(real_features, pool, mask_a.astype(bool), mask_b.astype(bool),
                                     n_boot=n_boot, seed=seed)

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
