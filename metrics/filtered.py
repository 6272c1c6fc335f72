"""Filtered-set FID as one function: keep the K lowest-score samples, compare them with a random K-subset.

    fid_kept   = FID(features[K lowest scores], reference)
    fid_random = mean over R random K-subsets S_r of FID(features[S_r], reference)   (equal size: the same c/K bias)
    delta      = fid_kept - fid_random                           (< 0: the score filters better than chance)

The random subsets are drawn from `seed` on a stream of their own (`random_subsets`), the same for every filter.
The average over R subsets (not one draw) is the floor's expectation: one draw would shift every filter's delta
by that draw's luck (sd of FID over random K-subsets / 1, against sd / sqrt(R) for the mean).
Ties in the scores are broken by row order (`keep_lowest`). This is what the filtered_fid protocol reports
(with intervals) and what `metrics.FilteredFID` (torchmetrics) computes from accumulated states.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmark.errors import ConfigError
from metrics.frechet import FeatureStats, as_feature_matrix, feature_statistics, fid_from_stats

RANDOM_SUBSET_STREAM = 0x52414E44  # "RAND": the random-K draws, independent of any estimator's stream


@dataclass
class FilteredFIDResult:
    fid_kept: float
    fid_random: float
    delta_vs_random: float
    keep: int


def keep_lowest(scores: np.ndarray, keep: int) -> np.ndarray:
    """Boolean mask [N] of the `keep` lowest scores (ties broken by index, so it is deterministic)."""
    order = np.lexsort((np.arange(scores.size), scores))
    mask = np.zeros(scores.size, dtype=bool)
    mask[order[:keep]] = True
    return mask


def random_subset(size: int, keep: int, seed: int) -> np.ndarray:
    """Boolean mask [size] of `keep` rows drawn uniformly without replacement from `seed` on a stream of its own
    (the first of `random_subsets`)."""
    return random_subsets(size, keep, seed, 1)[0]


def random_subsets(size: int, keep: int, seed: int, count: int) -> np.ndarray:
    """Boolean masks [count, size], each of `keep` rows drawn uniformly without replacement, in turn from one
    generator seeded by (seed, its own stream, keep): the first `c` masks are the same for every count >= c."""
    rng = np.random.default_rng([int(seed), RANDOM_SUBSET_STREAM, int(keep)])
    masks = np.zeros((int(count), size), dtype=bool)
    for row in masks:
        row[rng.choice(size, size=keep, replace=False)] = True
    return masks


def resolve_keep(total: int, keep: int | None, keep_fraction: float | None) -> int:
    """K from `keep` or round(keep_fraction * total); 2 <= K < total (an equal-size comparison needs K < N)."""
    k = int(keep) if keep is not None else int(round(float(keep_fraction) * total))
    if not 2 <= k < total:
        raise ConfigError("keep", k, f"an integer in [2, {total - 1}] (K kept of N = {total} samples)")
    return k


def filtered_fid(features, scores, reference: FeatureStats, keep: int | None = None, *,
                 keep_fraction: float | None = None, seed: int = 0, random_count: int = 100) -> FilteredFIDResult:
    """features [N, D], scores [N] (higher = less trusted): see the module doc; fid_random is the mean over
    `random_count` random K-subsets."""
    array = as_feature_matrix(features)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if scores.shape[0] != array.shape[0]:
        raise ConfigError("scores", f"{scores.shape[0]} values", f"one score per feature row ({array.shape[0]})")
    k = resolve_keep(array.shape[0], keep, keep_fraction)
    kept = fid_from_stats(reference, feature_statistics(array[keep_lowest(scores, k)]))
    chance = float(np.mean([fid_from_stats(reference, feature_statistics(array[mask]))
                            for mask in random_subsets(array.shape[0], k, seed, random_count)]))
    return FilteredFIDResult(fid_kept=kept, fid_random=chance, delta_vs_random=kept - chance, keep=k)
