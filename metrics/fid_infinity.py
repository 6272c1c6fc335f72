"""FID∞: FID extrapolated to infinitely many samples (Chong & Forsyth, "Effectively Unbiased FID and
Inception Score and where to find them", CVPR 2020, Sec. 3.2).

FID_N is biased upwards in the number N of generated samples, to first order linearly in 1/N:

    E[FID_N] = FID∞ + c / N + O(1/N^2)

so FID_n is computed on random subsets (drawn without replacement) of sizes n_1 < ... < n_P = N, and
the least-squares line FID_n = a + c / n is extrapolated to 1/n = 0: FID∞ = a. The paper uses P = 15
sizes evenly spaced from N/10 to N (5k..50k of 2048-d features, every n > D). Here the smallest size is
0.3 N by default: when n is not large against the feature dimension D the O(1/n^2) terms bend the curve
and a fit from N/10 over-corrects (Gaussian, D = 32, N = 200: FID∞ bias -0.44 from N/10, -0.11 from 0.3 N,
against +0.90 for FID_N; at N = 1000 both are within 0.02 of the truth). With N well below D (e.g. a few
hundred Inception features) FID∞ is a rougher correction. The reference statistics are held fixed (their
own bias is not removed: a small reference set biases FID∞ as it biases FID_N).

The interval (`fid_infinity_bootstrap`) resamples the generated rows with replacement and recomputes FID∞
on every resample (its subsets are drawn from the resample's multiset). The replicates centre on the
plug-in FID of the resampled empirical distribution, not on FID∞, so the interval is the "shifted" one
(the replicates' spread around the observed FID∞; metrics/bootstrap.py): it covers the Fréchet distance
between the generated distribution and the reference statistics.
Every FID here is a count-weighted `FixedReferenceFID` call (no row copies, the reference factor cached).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmark.errors import ConfigError
from metrics.bootstrap import (
    ConfidenceInterval,
    FixedReferenceFID,
    _check_bootstrap_args,
    percentile_interval,
    resample_counts,
)
from metrics.frechet import FeatureStats, as_feature_matrix

DEFAULT_POINTS = 15
DEFAULT_MIN_FRACTION = 0.3


@dataclass
class FIDInfinity:
    """value = FID∞ (intercept at 1/n = 0), slope c of FID_n against 1/n, and the fitted points."""

    value: float
    slope: float
    sizes: np.ndarray  # [P] subset sizes n_i
    fids: np.ndarray  # [P] FID_{n_i}


def subset_sizes(total: int, points: int = DEFAULT_POINTS, min_fraction: float = DEFAULT_MIN_FRACTION) -> np.ndarray:
    """P distinct sizes evenly spaced from max(2, round(min_fraction * total)) to total, truncated to integers
    (np.linspace(...).astype(int), as the paper's code) -> int [P'] (P' <= P)."""
    if not isinstance(points, int) or points < 2:
        raise ConfigError("fid_infinity_points", points,
                          "an integer >= 2 (subset sizes of the 1/n fit; 15 in the paper)")
    if not 0.0 < min_fraction < 1.0:
        raise ConfigError("min_fraction", min_fraction, "a fraction in (0, 1) (0.1 in the paper, 0.3 by default here)")
    smallest = max(2, int(round(min_fraction * total)))
    if total < smallest + 1:
        raise ConfigError("features", f"{total} rows", "at least 3 rows (FID∞ fits FID over several subset sizes)")
    return np.unique(np.linspace(smallest, total, points).astype(np.int64))  # truncated, as the paper's code


def extrapolate(sizes: np.ndarray, fids: np.ndarray) -> tuple[float, float]:
    """(a, c) of the least-squares line FID_n = a + c / n (Chong & Forsyth Sec. 3.2)."""
    design = np.stack([np.ones(len(sizes)), 1.0 / np.asarray(sizes, dtype=np.float64)], axis=1)
    (intercept, slope), *_ = np.linalg.lstsq(design, np.asarray(fids, dtype=np.float64), rcond=None)
    return float(intercept), float(slope)


def _subset_counts(rng: np.random.Generator, counts: np.ndarray, size: int) -> np.ndarray:
    """Counts of a subset of `size` rows drawn without replacement from the multiset given by `counts`."""
    members = np.repeat(np.arange(counts.size), counts)
    return np.bincount(rng.permutation(members)[:size], minlength=counts.size)


def _fit(fid: FixedReferenceFID, counts: np.ndarray, sizes: np.ndarray, rng: np.random.Generator) -> FIDInfinity:
    fids = np.array([fid(_subset_counts(rng, counts, int(n))) for n in sizes])
    value, slope = extrapolate(sizes, fids)
    return FIDInfinity(value=value, slope=slope, sizes=sizes, fids=fids)


def fid_infinity(features, reference: FeatureStats, *, points: int = DEFAULT_POINTS,
                 min_fraction: float = DEFAULT_MIN_FRACTION, seed: int = 0) -> FIDInfinity:
    """FID∞ of features [N, D] against fixed reference statistics (see module doc); `seed` draws the subsets."""
    fid = FixedReferenceFID(reference, features)
    total = fid.centred.shape[0]
    sizes = subset_sizes(total, points, min_fraction)
    return _fit(fid, np.ones(total, dtype=np.int64), sizes, np.random.default_rng(seed))


#: FID∞ is reported only when its smallest fit subset has at least this many rows per feature dimension
MIN_ROWS_PER_DIMENSION = 10


def is_sound(rows: int, dimension: int, min_fraction: float = DEFAULT_MIN_FRACTION) -> bool:
    """Whether the 1/n law can be trusted for a fit over `rows` rows of `dimension`-d features: every fitted subset
    (the smallest has round(min_fraction * rows) rows) holds >= MIN_ROWS_PER_DIMENSION rows per dimension. Below that
    the O(1/n^2) terms bend the curve: on identical 128-d Gaussians with N = 500 (4 rows per dimension) FID∞ came
    out -1.82 +- 0.29 for a true 0 (issue 23's audit)."""
    return round(min_fraction * rows) >= MIN_ROWS_PER_DIMENSION * dimension


def fid_infinity_bootstrap(features, reference: FeatureStats, n_boot: int = 100, seed: int = 0, alpha: float = 0.05,
                           *, points: int = DEFAULT_POINTS, min_fraction: float = DEFAULT_MIN_FRACTION,
                           interval: str = "shifted", draws: int = 1) -> ConfidenceInterval:
    """FID∞ with a bootstrap interval over resamples of the generated rows (see module doc for its target);
    `draws` > 1 averages the fit over that many independent subset draws (value and every replicate)."""
    _check_bootstrap_args(n_boot, alpha, interval)
    return fid_infinity_difference_bootstrap(features, None, reference, n_boot, seed, alpha, points=points,
                                             min_fraction=min_fraction, interval=interval, draws=draws)


def fid_infinity_difference_bootstrap(pool_features, index_b, reference: FeatureStats, n_boot: int = 100,
                                      seed: int = 0, alpha: float = 0.05, *, index_a=None,
                                      points: int = DEFAULT_POINTS, min_fraction: float = DEFAULT_MIN_FRACTION,
                                      interval: str = "shifted", draws: int = 1) -> ConfidenceInterval:
    """FID∞(pool[index_a]) - FID∞(pool[index_b]) (sets of any sizes: both are bias-corrected), paired: each
    replicate resamples the pool once and both sets take their rows' counts from it. index_* are boolean masks
    [N] or integer indices; index_a None = the whole pool; index_b None = no second set (FID∞(a) alone).
    Each FID∞ is the mean of `draws` fits on independent subset draws (the fit's subset noise shrinks as
    1/sqrt(draws))."""
    _check_bootstrap_args(n_boot, alpha, interval)
    pool = as_feature_matrix(pool_features, "pool_features")
    members = [np.arange(pool.shape[0]) if index_a is None else _indices(index_a, pool.shape[0])]
    if index_b is not None:
        members.append(_indices(index_b, pool.shape[0]))
    fids = [FixedReferenceFID(reference, pool[rows]) for rows in members]
    sizes = [subset_sizes(rows.size, points, min_fraction) for rows in members]

    def statistic(counts: np.ndarray, subset_seed) -> float:
        """FID∞ of each set under `counts`; every set draws its subsets from its own generator seeded alike,
        so identical sets give identical values."""
        values = []
        for fid, rows, size in zip(fids, members, sizes):
            kept = counts[rows]
            fits = [_fit(fid, kept, np.minimum(size, kept.sum()),
                         np.random.default_rng(subset_seed if draw == 0 else [*np.atleast_1d(subset_seed), 7, draw]))
                    for draw in range(int(draws))]
            values.append(float(np.mean([f.value for f in fits])))
        return values[0] - (values[1] if len(values) > 1 else 0.0)

    value = statistic(np.ones(pool.shape[0], dtype=np.int64), seed)  # = fid_infinity(..., seed=seed) for one set
    rng = np.random.default_rng([seed, 1])
    replicates = [statistic(resample_counts(rng, pool.shape[0]), [seed, 2, r]) for r in range(n_boot)]
    return percentile_interval(value, replicates, alpha, interval)


def _indices(index, size: int) -> np.ndarray:
    array = np.asarray(index)
    if array.dtype == bool:
        if array.shape != (size,):
            raise ConfigError("index", f"mask of shape {array.shape}", f"a boolean mask of shape ({size},)")
        return np.flatnonzero(array)
    if array.ndim != 1 or array.size < 3 or array.min() < 0 or array.max() >= size:
        raise ConfigError("index", f"array of shape {array.shape}", f"at least 3 row indices in [0, {size - 1}]")
    return array.astype(np.int64)
