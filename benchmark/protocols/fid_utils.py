"""FID against a fixed reference, with bootstrap intervals, shared by the FID-based protocols.

All intervals come from `metrics` (count-weighted replicates against the reference's cached covariance
factor, so a replicate never copies rows nor recomputes a D x D eigendecomposition). Every space, the
2048-d Inception space included, gets the run's `bootstrap` replicates (at least MIN_REPLICATES).
What each interval covers is in `metrics.METRIC_INFO` (FID_N: E[FID_N]; FID∞: the Fréchet distance).
"""
from __future__ import annotations

import numpy as np

from metrics import fid_bootstrap, fid_infinity_bootstrap, paired_sets_fid_difference
from metrics.bootstrap import ConfidenceInterval, FixedReferenceFID
from metrics.filtered import keep_lowest, random_subset, random_subsets  # noqa: F401 - re-exported for the protocols
from metrics.significance import randomization_test

MIN_REPLICATES = 100
#: R, the random K-subsets a filter is compared with (protocols.filtered_fid.random_subsets; at least 100)
DEFAULT_RANDOM_SUBSETS = 100


def bootstrap_replicates(space: str, n_boot: int) -> int:
    """Replicates for a feature space: the configured number, at least MIN_REPLICATES, in every space
    (a 2048-d replicate against the cached reference factor costs ~0.1 s at 500 rows)."""
    return max(MIN_REPLICATES, int(n_boot))


def fid_ci(features: np.ndarray, reference, n_boot: int, seed: int):
    """FID to the reference with a subsampling interval over the generated samples (0.8 N rows without
    replacement, rescaled): covers E[FID_N] (metrics.bootstrap.scheme_interval says why, with its coverage)."""
    return fid_bootstrap(None, features, n_boot=n_boot, seed=seed, real_stats=reference, scheme="subsample")


def fid_infinity_ci(features: np.ndarray, reference, n_boot: int, seed: int, points: int, draws: int = 1):
    """FID∞ (Chong & Forsyth 2020, averaged over `draws` subset draws) with its shifted bootstrap interval:
    covers the Fréchet distance."""
    return fid_infinity_bootstrap(features, reference, n_boot=n_boot, seed=seed, points=points, draws=draws)


def paired_delta_ci(features_a: np.ndarray, features_b: np.ndarray, reference, n_boot: int, seed: int):
    """FID(a) - FID(b) for two sets whose rows are paired (same sample index), subsampled jointly."""
    return paired_sets_fid_difference(features_a, features_b, reference, n_boot=n_boot, seed=seed, scheme="subsample")


class RandomBaseline:
    """The floor of a filter on one pool (features [N, D] against one reference): the FIDs of R uniformly random
    K-subsets (`metrics.filtered.random_subsets`), computed once per K and shared by every filter.

    `delta_ci(mask)` = FID(pool[mask]) - mean_r FID(random K-subset r), tested against those R FIDs
    (`metrics.significance.randomization_test` on the log scale: H0 = the kept set is a random K-subset of this
    pool; the p-value and the test-inversion interval come from the measured spread of FID over random K-subsets).
    `spread_ci(keep)` = the mean of the R FIDs with the 2.5 and 97.5 percentiles of the R values: the range a
    no-information filter's FID falls in. Every FID evaluates 0/1 counts on one `FixedReferenceFID` of the pool.
    """

    def __init__(self, pool: np.ndarray, reference, seed: int, count: int = DEFAULT_RANDOM_SUBSETS) -> None:
        self.pool, self.reference, self.seed, self.count = pool, reference, seed, int(count)
        self._fid = FixedReferenceFID(reference, pool)
        self._null: dict[int, np.ndarray] = {}

    def fid(self, mask: np.ndarray) -> float:
        """FID(pool[mask]) against the reference."""
        return self._fid(np.asarray(mask, dtype=np.int64))

    def null_fids(self, keep: int) -> np.ndarray:
        """FIDs [R] of the R random K-subsets (K = keep)."""
        if keep not in self._null:
            masks = random_subsets(self.pool.shape[0], keep, self.seed, self.count)
            self._null[keep] = np.array([self.fid(mask) for mask in masks])
        return self._null[keep]

    def delta_ci(self, mask: np.ndarray) -> ConfidenceInterval:
        """FID(pool[mask]) - mean FID of random subsets of the same size, with its randomization test."""
        return randomization_test(self.fid(mask), self.null_fids(int(mask.sum())), log_scale=True)

    def spread_ci(self, keep: int) -> ConfidenceInterval:
        null = self.null_fids(keep)
        low, high = np.percentile(null, [2.5, 97.5])
        return ConfidenceInterval(float(null.mean()), float(low), float(high), null.size, 0.05, "random-subsets")
