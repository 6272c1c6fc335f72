"""Bootstrap and subsampling confidence intervals for FID and paired FID differences
(precision/recall: metrics.pr_bootstrap).

A replicate resamples rows with replacement. Replicate r draws its rows with
`rng.integers(0, n, n)` from `numpy.random.default_rng(seed)` (fake rows first, then real rows when
the real set is resampled too), so a seed fixes every interval. `value` is the statistic of the
full, un-resampled data. Two interval kinds (Efron & Tibshirani 1993):

    "percentile": [q(alpha/2), q(1 - alpha/2)] of the replicates theta*_r              (Eq. 13.5)
    "shifted":    the percentile interval minus the bootstrap bias estimate
                  b = mean_r(theta*_r) - value                                          (Eq. 10.2)

FID and the k-NN manifolds of precision/recall are biased by sample size, and a resample (about 63%
distinct rows) is a smaller effective sample: its FID is systematically higher, so the plain
percentile interval of a single FID usually does not even contain the observed value. The shifted
interval keeps the spread of the replicates and removes that offset; it is the default for the FID
and precision/recall intervals here (both kinds are available everywhere).

What the intervals cover: the shifted interval of FID_N covers E[FID_N], the expected FID of N samples
against the fixed reference -- NOT the Fréchet distance between the two distributions, which FID_N
overestimates by about c / N (for that, FID∞: metrics/fid_infinity.py). A paired difference of two sets
of EQUAL size covers the difference of their expected FIDs, in which the size bias cancels; sets of
different sizes must not be compared this way. `metrics.METRIC_INFO` states it per reported metric.

FID replicates never copy the feature matrix: the resample is a vector of counts c_i (how often row i
was drawn) and the statistics are count-weighted sums over rows centred once. Against a fixed
reference the rows are also projected once onto the factor of the reference covariance, which
leaves one Gram product and one eigvalsh per replicate (see FixedReferenceFID).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from benchmark.errors import ConfigError
from metrics.power import detectable_effect
from metrics.count_weighted import CountWeightedStatistics, FixedReferenceFID, drawn_rows  # noqa: F401 (re-exported)
from metrics.frechet import FeatureStats, as_feature_matrix, feature_statistics, fid_from_stats


@dataclass
class ConfidenceInterval:
    """A statistic `value` with its bootstrap interval [low, high] at level 1 - alpha from n_boot replicates;
    method: "percentile" or "shifted" (see the module doc)."""

    value: float
    low: float
    high: float
    n_boot: int
    alpha: float
    method: str = "percentile"
    p_value: float = math.nan  # two-sided p-value of "the difference is 0", where the row is a test (else NaN)
    #: where the row is a test: the smallest |effect| its test detects with 80 % power at the raw 5 % level, from
    #: the null spread the test computed (metrics.significance.detectable_effect); NaN otherwise
    detectable: float = math.nan

    def contains(self, x: float) -> bool:
        return self.low <= x <= self.high

    @property
    def excludes_zero(self) -> bool:
        """True when 0 lies outside [low, high]: a difference is significant at level alpha."""
        return self.low > 0 or self.high < 0


INTERVALS = ("percentile", "shifted")


def _check_bootstrap_args(n_boot: int, alpha: float, interval: str = "percentile") -> None:
    if interval not in INTERVALS:
        raise ConfigError("interval", interval, f"one of {INTERVALS}")
    if not isinstance(n_boot, int) or n_boot < 2:
        raise ConfigError("n_boot", n_boot, "an integer >= 2 (number of bootstrap replicates; 200 is typical)")
    if not 0.0 < alpha < 1.0:
        raise ConfigError("alpha", alpha, "a level in (0, 1), e.g. 0.05 for a 95% interval")


def percentile_interval(value: float, replicates: Sequence[float], alpha: float,
                        interval: str = "percentile") -> ConfidenceInterval:
    """[alpha/2, 1 - alpha/2] percentiles (numpy linear interpolation) of the replicates; with
    interval="shifted" both ends minus the bias estimate mean(replicates) - value (see module doc)."""
    draws = np.asarray(replicates, dtype=np.float64)
    low, high = np.percentile(draws, [50.0 * alpha, 100.0 - 50.0 * alpha])
    if interval == "shifted":
        bias = draws.mean() - value
        low, high = low - bias, high - bias
    return ConfidenceInterval(value=float(value), low=float(low), high=float(high), n_boot=len(draws),
                              alpha=float(alpha), method=interval)


def resample_counts(rng: np.random.Generator, n: int) -> np.ndarray:
    """How often each of n rows is drawn in one resample of size n with replacement -> int [n]."""
    return np.bincount(rng.integers(0, n, n), minlength=n)


SUBSAMPLE_FRACTION = 0.8


def subsample_counts(rng: np.random.Generator, n: int) -> np.ndarray:
    """0/1 counts [n] of one subsample: m = round(0.8 n) rows drawn WITHOUT replacement (m-out-of-n subsampling;
    Politis & Romano 1994). The spread of the subsample statistics is rescaled by `subsample_scale`."""
    counts = np.zeros(n, dtype=np.int64)
    counts[rng.choice(n, subsample_size(n), replace=False)] = 1
    return counts


def subsample_size(n: int) -> int:
    return min(n - 1, max(2, int(round(SUBSAMPLE_FRACTION * n))))


def subsample_scale(n: int) -> float:
    """sqrt(m / (n - m)): a mean of m of n rows drawn without replacement varies around the full mean with variance
    S^2 (1/m - 1/n) = S^2 / n * (n - m) / m, so this factor turns the subsamples' spread into the spread of the
    statistic of all n rows (exact for means, first-order for smooth statistics such as FID)."""
    m = subsample_size(n)
    return float(np.sqrt(m / (n - m)))


#: resampling scheme -> (counts of one replicate, factor on the replicates' spread)
SCHEMES = {"subsample": (subsample_counts, subsample_scale), "replacement": (resample_counts, lambda n: 1.0)}


def scheme_interval(value: float, replicates, alpha: float, scheme: str, n: int, interval: str) -> ConfidenceInterval:
    """The interval of `value` from replicates of `scheme` on n rows. "replacement": `percentile_interval`.
    "subsample": value + sqrt(m/(n-m)) (q - mean(replicates)) for the alpha/2 and 1 - alpha/2 quantiles q.

    Why subsamples (the protocols' choice for FID): every subsample has exactly m distinct rows, so FID's size bias
    (~c/m) is the same in every replicate and cancels against their mean; a with-replacement resample has a varying
    number of distinct rows (~0.632 n +- a few) and FID's bias follows it, widening the interval. Measured on
    Gaussians (fixed reference, 100 replicates, 100-150 trials, coverage of E[FID_N] by a 95 % interval):
    D = 128, N = 600: implied sd 0.504 with replacement vs 0.282 by subsamples for a true 0.270, coverage 100 % vs
    95 %; D = 128, N = 120: 3.82 vs 0.886 (true 0.780), 100 % vs 93 %; D = 16, N = 200: coverage 95 %. Half-samples
    (m = n/2, scale 1) over-cover more (98-99 %): the second-order terms of FID vary more at smaller m."""
    if scheme == "replacement":
        return percentile_interval(value, replicates, alpha, interval)
    draws = np.asarray(replicates, dtype=np.float64)
    low, high = (np.percentile(draws, [50.0 * alpha, 100.0 - 50.0 * alpha]) - draws.mean()) * SCHEMES[scheme][1](n)
    return ConfidenceInterval(value=float(value), low=float(value + low), high=float(value + high), n_boot=len(draws),
                              alpha=float(alpha), method=scheme)


def bootstrap_ci(statistic: Callable[..., float], *arrays, n_boot: int = 200, seed: int = 0,
                 alpha: float = 0.05, interval: str = "percentile") -> ConfidenceInterval:
    """Interval of statistic(*arrays); the rows of all arrays are resampled jointly (same indices)."""
    _check_bootstrap_args(n_boot, alpha, interval)
    if not arrays:
        raise ConfigError("arrays", "nothing", "at least one array whose rows are resampled")
    rows = len(arrays[0])
    if any(len(array) != rows for array in arrays):
        raise ConfigError("arrays", [len(array) for array in arrays], "arrays with the same number of rows")
    rng = np.random.default_rng(seed)
    replicates = []
    for _ in range(n_boot):
        index = rng.integers(0, rows, rows)
        picked = [array[torch.from_numpy(index)] if isinstance(array, torch.Tensor) else np.asarray(array)[index]
                  for array in arrays]
        replicates.append(float(statistic(*picked)))
    return percentile_interval(float(statistic(*arrays)), replicates, alpha, interval)


def _resampled_fid(reference: CountWeightedStatistics, reference_counts: np.ndarray, subsets,
                   subset_counts) -> list[float]:
    """FIDs of resampled subsets against one resampled reference (covariance factor computed once)."""
    stats = reference(reference_counts)
    return [fid_from_stats(stats, subset(counts)) for subset, counts in zip(subsets, subset_counts)]


def _reference(real_features, real_stats: FeatureStats | None, resample_real: bool) -> FeatureStats:
    """The fixed reference statistics: `real_stats` when given (and the real set is not resampled)."""
    if real_features is None and (real_stats is None or resample_real):
        raise ConfigError("real_features", None, "a feature matrix [N, D] (needed without real_stats, "
                          "and always with resample_real=True)")
    return real_stats if real_stats is not None and not resample_real else feature_statistics(real_features)


def fid_bootstrap(real_features, fake_features, n_boot: int = 200, seed: int = 0, alpha: float = 0.05, *,
                  resample_real: bool = False, real_stats: FeatureStats | None = None,
                  interval: str = "shifted", scheme: str = "replacement") -> ConfidenceInterval:
    """FID(real, fake) with a bootstrap interval over resamples of the fake set (and the real set if asked).

    real_features [N, D], fake_features [M, D]. `real_stats` (e.g. a cached reference) replaces the
    statistics of real_features when the real set is not resampled; real_features may then be None.
    scheme (fixed reference only): "replacement" (the classic bootstrap) or "subsample" (m = 0.8 M rows without
    replacement, rescaled: the protocols' choice, whose interval covers E[FID_M]; see `scheme_interval`).
    """
    if scheme not in SCHEMES:
        raise ConfigError("scheme", scheme, f"one of {sorted(SCHEMES)}")
    _check_bootstrap_args(n_boot, alpha, interval)
    reference = _reference(real_features, real_stats, resample_real)
    rng = np.random.default_rng(seed)
    replicates = []
    if resample_real:
        value = fid_from_stats(reference, feature_statistics(fake_features))
        fake, real = CountWeightedStatistics(fake_features), CountWeightedStatistics(real_features)
        for _ in range(n_boot):
            fake_counts = resample_counts(rng, fake.centred.shape[0])
            real_counts = resample_counts(rng, real.centred.shape[0])
            replicates.extend(_resampled_fid(real, real_counts, [fake], [fake_counts]))
    else:
        fid = FixedReferenceFID(reference, fake_features)
        value = fid.full()
        rows = fid.centred.shape[0]
        replicates = [fid(SCHEMES[scheme][0](rng, rows)) for _ in range(n_boot)]
        return scheme_interval(value, replicates, alpha, scheme, rows, interval)
    return percentile_interval(value, replicates, alpha, interval)


def _as_index(index, pool_size: int, field: str) -> np.ndarray:
    """Integer row indices into the pool from an index array or a boolean mask [pool_size]."""
    array = index.detach().cpu().numpy() if isinstance(index, torch.Tensor) else np.asarray(index)
    if array.dtype == bool:
        if array.shape != (pool_size,):
            raise ConfigError(field, f"mask of shape {array.shape}", f"a boolean mask of shape ({pool_size},)")
        array = np.flatnonzero(array)
    if array.ndim != 1 or array.size < 2 or not np.issubdtype(array.dtype, np.integer):
        raise ConfigError(field, f"array of shape {array.shape} and dtype {array.dtype}",
                          "a 1-D integer index (or boolean mask) selecting at least 2 pool rows")
    if array.min() < 0 or array.max() >= pool_size:
        raise ConfigError(field, f"indices in [{array.min()}, {array.max()}]", f"indices in [0, {pool_size - 1}]")
    return array


def paired_fid_difference(real_features, pool_features, idx_a, idx_b, n_boot: int = 200, seed: int = 0,
                          alpha: float = 0.05, *, resample_real: bool = False,
                          real_stats: FeatureStats | None = None, interval: str = "shifted") -> ConfidenceInterval:
    """FID(pool[idx_a]) - FID(pool[idx_b]) with a paired bootstrap interval.

    Each replicate resamples the whole pool once (counts c over its N rows); subset a of the replicate
    is its rows idx_a with counts c[idx_a], subset b its rows idx_b with counts c[idx_b], so rows shared
    by a and b move together. With resample_real the reference set is resampled once per replicate,
    shared by both FIDs. Identical subsets give exactly 0 in every replicate. `real_stats` replaces the
    statistics of real_features (which may then be None) when the reference is not resampled.
    """
    _check_bootstrap_args(n_boot, alpha, interval)
    pool = as_feature_matrix(pool_features, "pool_features")
    index_a = _as_index(idx_a, pool.shape[0], "idx_a")
    index_b = _as_index(idx_b, pool.shape[0], "idx_b")
    reference = _reference(real_features, real_stats, resample_real)
    rng = np.random.default_rng(seed)
    replicates = []
    if resample_real:
        value = (fid_from_stats(reference, feature_statistics(pool[index_a]))
                 - fid_from_stats(reference, feature_statistics(pool[index_b])))
        subsets = [CountWeightedStatistics(pool[index_a]), CountWeightedStatistics(pool[index_b])]
        real = CountWeightedStatistics(real_features)
        for _ in range(n_boot):
            counts = resample_counts(rng, pool.shape[0])
            real_counts = resample_counts(rng, real.centred.shape[0])
            fid_a, fid_b = _resampled_fid(real, real_counts, subsets, [counts[index_a], counts[index_b]])
            replicates.append(fid_a - fid_b)
    else:
        value_a, replicates_a = subset_fid_replicates(reference, pool, index_a, n_boot, seed)
        value_b, replicates_b = subset_fid_replicates(reference, pool, index_b, n_boot, seed)
        value, replicates = value_a - value_b, replicates_a - replicates_b
    return percentile_interval(value, replicates, alpha, interval)


def subset_fid_replicates(reference: FeatureStats, pool_features, index, n_boot: int, seed: int
                          ) -> tuple[float, np.ndarray]:
    """FID of pool[index] against the fixed reference and its n_boot bootstrap replicates [n_boot], replicate r
    taking the subset's counts from the r-th `resample_counts(rng, N)` of `default_rng(seed)` over the whole pool
    of N rows. Two subsets' replicates from the same pool, n_boot and seed are therefore paired (this is what
    `paired_fid_difference` subtracts), so one subset's replicates can be computed once and reused."""
    pool = as_feature_matrix(pool_features, "pool_features")
    rows = _as_index(index, pool.shape[0], "index")
    fid = FixedReferenceFID(reference, pool[rows])
    rng = np.random.default_rng(seed)
    replicates = np.array([fid(resample_counts(rng, pool.shape[0])[rows]) for _ in range(n_boot)])
    return fid.full(), replicates


def paired_sets_fid_difference(features_a, features_b, reference: FeatureStats, n_boot: int = 200, seed: int = 0,
                               alpha: float = 0.05, *, interval: str = "shifted",
                               scheme: str = "replacement") -> ConfidenceInterval:
    """FID(a) - FID(b) against a fixed reference for two sets whose row i belongs to the same sample i (e.g.
    guided and plain images from the same x_T): each replicate draws one set of counts (`scheme`, as in
    fid_bootstrap) and applies it to both. The p_value is the normal test of 0 with the replicates' (rescaled) sd."""
    _check_bootstrap_args(n_boot, alpha, interval)
    if scheme not in SCHEMES:
        raise ConfigError("scheme", scheme, f"one of {sorted(SCHEMES)}")
    a, b = as_feature_matrix(features_a, "features_a"), as_feature_matrix(features_b, "features_b")
    if a.shape[0] != b.shape[0]:
        raise ConfigError("features_b", f"{b.shape[0]} rows", f"one row per row of features_a ({a.shape[0]})")
    fid_a, fid_b = FixedReferenceFID(reference, a), FixedReferenceFID(reference, b)
    value = fid_a.full() - fid_b.full()
    rng = np.random.default_rng(seed)
    replicates = []
    for _ in range(n_boot):
        counts = SCHEMES[scheme][0](rng, a.shape[0])
        replicates.append(fid_a(counts) - fid_b(counts))
    ci = scheme_interval(value, replicates, alpha, scheme, a.shape[0], interval)
    spread = float(np.std(replicates, ddof=1)) * SCHEMES[scheme][1](a.shape[0])
    ci.p_value = float(math.erfc(abs(value) / spread / math.sqrt(2.0))) if spread > 0 else float(value == 0)
    ci.detectable = detectable_effect(spread)
    return ci
