"""FID against a fixed reference, with bootstrap intervals, shared by the FID-based protocols.

All intervals come from `metrics` (count-weighted replicates against the reference's cached covariance
factor, so a replicate never copies rows nor recomputes a D x D eigendecomposition). Every space, the
2048-d Inception space included, gets the run's `bootstrap` replicates (at least MIN_REPLICATES).
What each interval covers is in `metrics.METRIC_INFO` (FID_N: E[FID_N]; FID∞: the Fréchet distance).
"""
from __future__ import annotations

import numpy as np

from metrics import fid_bootstrap, fid_infinity_bootstrap, paired_fid_difference, paired_sets_fid_difference
from metrics.filtered import keep_lowest, random_subset  # noqa: F401 - re-exported for the protocols

MIN_REPLICATES = 100


def bootstrap_replicates(space: str, n_boot: int) -> int:
    """Replicates for a feature space: the configured number, at least MIN_REPLICATES, in every space
    (a 2048-d replicate against the cached reference factor costs ~0.1 s at 500 rows)."""
    return max(MIN_REPLICATES, int(n_boot))


def fid_ci(features: np.ndarray, reference, n_boot: int, seed: int):
    """FID to the reference with a (bias-shifted) bootstrap interval over the generated samples: covers E[FID_N]."""
    return fid_bootstrap(None, features, n_boot=n_boot, seed=seed, real_stats=reference)


def fid_infinity_ci(features: np.ndarray, reference, n_boot: int, seed: int, points: int):
    """FID∞ (Chong & Forsyth 2020) with its shifted bootstrap interval: covers the Fréchet distance."""
    return fid_infinity_bootstrap(features, reference, n_boot=n_boot, seed=seed, points=points)


def paired_delta_ci(features_a: np.ndarray, features_b: np.ndarray, reference, n_boot: int, seed: int):
    """FID(a) - FID(b) for two sets whose rows are paired (same sample index), resampled jointly."""
    return paired_sets_fid_difference(features_a, features_b, reference, n_boot=n_boot, seed=seed)


def subset_delta_ci(pool: np.ndarray, mask_a: np.ndarray, mask_b: np.ndarray, reference, n_boot: int, seed: int):
    """FID(pool[a]) - FID(pool[b]) for two subsets of one pool of EQUAL size, resampling the pool (paired
    membership). FID is biased in the set size, so only equal sizes make the difference mean what it says."""
    if int(mask_a.sum()) != int(mask_b.sum()):
        raise ValueError(f"FID comparison of sets of sizes {int(mask_a.sum())} and {int(mask_b.sum())}: "
                         "FID is biased in the sample size, compare sets of equal size")
    return paired_fid_difference(None, pool, mask_a.astype(bool), mask_b.astype(bool), n_boot=n_boot, seed=seed,
                                 real_stats=reference)
