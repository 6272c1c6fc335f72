"""FID against a fixed reference, with bootstrap intervals, shared by the FID-based protocols.

All intervals come from `metrics` (count-weighted replicates against the reference's cached covariance
factor, so a replicate never copies rows nor recomputes a D x D eigendecomposition). Every space, the
2048-d Inception space included, gets the run's `bootstrap` replicates (at least MIN_REPLICATES).
What each interval covers is in `metrics.METRIC_INFO` (FID_N: E[FID_N]; FID∞: the Fréchet distance).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from metrics import fid_bootstrap, fid_infinity_bootstrap, paired_sets_fid_difference
from metrics.bootstrap import ConfidenceInterval, FixedReferenceFID
from metrics.class_balance import class_matched_subsets
from metrics.fid_decomposition import DELTA_TERMS, FIDTerms, term_values
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
    `terms_cis(mask)`: the same comparison for each term of FID (metrics.fid_decomposition; the three deltas sum to
    delta_ci's); `statistic_ci(name, statistic, mask)`: for any other statistic of a subset (KID, density,
    coverage), on the same R subsets, its values on them computed once per name and subset size.
    `stratified(labels)`: the baseline of a filter applied within classes, whose R random subsets hold the kept
    set's count of every class (`metrics.class_balance.class_matched_subsets`), drawn uniformly within each class.
    """

    def __init__(self, pool: np.ndarray, reference, seed: int, count: int = DEFAULT_RANDOM_SUBSETS, *,
                 labels: np.ndarray | None = None, fid: FixedReferenceFID | None = None) -> None:
        self.pool, self.reference, self.seed, self.count = pool, reference, seed, int(count)
        self.labels = None if labels is None else np.asarray(labels).astype(np.int64).reshape(-1)
        self._fid = fid if fid is not None else FixedReferenceFID(reference, pool)
        self._masks: dict[tuple, np.ndarray] = {}
        self._terms: dict[tuple, list[FIDTerms]] = {}
        self._values: dict[tuple, np.ndarray] = {}
        self._by_class: dict[bytes, RandomBaseline] = {}

    def stratified(self, labels: np.ndarray) -> "RandomBaseline":
        """The class-matched baseline of this pool (class docstring), sharing its FID evaluator; one per labels."""
        labels = np.asarray(labels).astype(np.int64).reshape(-1)
        key = labels.tobytes()
        if key not in self._by_class:
            self._by_class[key] = RandomBaseline(self.pool, self.reference, self.seed, self.count, labels=labels,
                                                 fid=self._fid)
        return self._by_class[key]

    def _key(self, mask: np.ndarray) -> tuple:
        """What fixes the random subsets a kept mask is compared with: its size, or its count in every class."""
        mask = np.asarray(mask, dtype=bool)
        if self.labels is None:
            return (int(mask.sum()),)
        return tuple(int(np.sum(mask & (self.labels == c))) for c in np.unique(self.labels))

    def null_masks(self, mask: np.ndarray) -> np.ndarray:
        """Boolean masks [R, N] of the random subsets `mask` is compared with (its size; with labels, its classes)."""
        key = self._key(mask)
        if key not in self._masks:
            self._masks[key] = (random_subsets(self.pool.shape[0], key[0], self.seed, self.count) if self.labels is None
                                else class_matched_subsets(self.labels, mask, self.seed, self.count))
        return self._masks[key]

    def null_terms(self, mask: np.ndarray) -> list[FIDTerms]:
        """The FID terms of each of the R random subsets `mask` is compared with."""
        key = self._key(mask)
        if key not in self._terms:
            self._terms[key] = [self._fid.terms(m.astype(np.int64)) for m in self.null_masks(mask)]
        return self._terms[key]

    def fid(self, mask: np.ndarray) -> float:
        """FID(pool[mask]) against the reference."""
        return self._fid(np.asarray(mask, dtype=np.int64))

    def null_fids(self, keep: int) -> np.ndarray:
        """FIDs [R] of the R random K-subsets (K = keep) of the uniform baseline."""
        return self._null_fids(np.arange(self.pool.shape[0]) < keep)

    def _null_fids(self, mask: np.ndarray) -> np.ndarray:
        return np.array([terms.total for terms in self.null_terms(mask)])

    def delta_ci(self, mask: np.ndarray) -> ConfidenceInterval:
        """FID(pool[mask]) - mean FID of the random subsets it is compared with, with its randomization test."""
        return randomization_test(self.fid(mask), self._null_fids(mask), log_scale=True)

    def terms_cis(self, mask: np.ndarray) -> dict[str, ConfidenceInterval]:
        """{term: term(pool[mask]) - its mean over the random subsets} for the terms of FID that a difference keeps
        (mean, trace, cross: metrics.fid_decomposition), each with its randomization test (log scale where the
        term is positive); the three values sum to delta_ci(mask).value."""
        kept, null = self._fid.terms(np.asarray(mask, dtype=np.int64)), self.null_terms(mask)
        return {name: randomization_test(getattr(kept, name), term_values(null, name), log_scale=True)
                for name in DELTA_TERMS}

    def statistic_ci(self, name: str, statistic: Callable[[np.ndarray], np.ndarray], mask: np.ndarray
                     ) -> ConfidenceInterval:
        """statistic(kept) - mean statistic over the random subsets, with the randomization test on the linear scale.
        `statistic` maps boolean masks [R, N] to values [R]; its null values are cached under (name, subset key)."""
        key = (name,) + self._key(mask)
        if key not in self._values:
            self._values[key] = np.asarray(statistic(self.null_masks(mask)), dtype=np.float64)
        value = float(np.asarray(statistic(np.asarray(mask, dtype=bool)[None]))[0])
        return randomization_test(value, self._values[key])

    def spread_ci(self, keep: int) -> ConfidenceInterval:
        null = self.null_fids(keep)
        low, high = np.percentile(null, [2.5, 97.5])
        return ConfidenceInterval(float(null.mean()), float(low), float(high), null.size, 0.05, "random-subsets")
