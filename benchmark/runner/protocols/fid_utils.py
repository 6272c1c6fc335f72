"""FID against a fixed reference, with bootstrap intervals, shared by the FID-based protocols.

All intervals come from `metrics` (count-weighted replicates against the reference's cached covariance
factor, so a replicate never copies rows nor recomputes a D x D eigendecomposition). Every space, the
2048-d Inception space included, gets the run's `bootstrap` replicates (at least MIN_REPLICATES).
What each interval covers is in `metrics.METRIC_INFO` (FID_N: E[FID_N]; FID∞: the Fréchet distance).
"""
from __future__ import annotations

import numpy as np

from metrics import fid_bootstrap, fid_infinity_bootstrap, paired_sets_fid_difference
from metrics.bootstrap import percentile_interval, subset_fid_replicates
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


class RandomBaseline:
    """The protocol's random K-subsets of one pool (features [N, D] against one reference) and their FID
    bootstrap replicates, computed once per (K, replicates) and shared by every filter's paired comparison:
    `delta_ci(mask)` = FID(pool[mask]) - FID(random subset of the same size), the interval of
    `metrics.paired_fid_difference` (the same numbers), without recomputing the random side per filter."""

    def __init__(self, pool: np.ndarray, reference, seed: int) -> None:
        self.pool, self.reference, self.seed = pool, reference, seed
        self._replicates: dict[tuple[int, int], tuple[float, np.ndarray]] = {}

    def mask(self, keep: int) -> np.ndarray:
        return random_subset(self.pool.shape[0], keep, self.seed)

    def delta_ci(self, mask: np.ndarray, n_boot: int):
        """FID(pool[mask]) - FID(random subset of the same size): FID is biased in the set size, so only equal
        sizes make the difference mean what it says."""
        keep = int(mask.sum())
        key = (keep, n_boot)
        if key not in self._replicates:
            self._replicates[key] = subset_fid_replicates(self.reference, self.pool, self.mask(keep), n_boot, self.seed)
        random_value, random_replicates = self._replicates[key]
        value, replicates = subset_fid_replicates(self.reference, self.pool, mask, n_boot, self.seed)
        return percentile_interval(value - random_value, replicates - random_replicates, 0.05, "shifted")
