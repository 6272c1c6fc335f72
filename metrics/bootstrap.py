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
from metrics.fid_decomposition import FIDTerms
from metrics.power import detectable_effect
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


def drawn_rows(counts: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """(n = sum of counts, indices of the rows drawn at least once, their counts as float64) of a resample."""
    total = int(counts.sum())
    if total < 2:
        raise ConfigError("subset size", total, "at least 2 rows in every bootstrap replicate",
                          "use larger subsets (tens of rows or more) for bootstrap intervals")
    drawn = np.flatnonzero(counts)
    return total, drawn, counts[drawn].astype(np.float64)


class CountWeightedStatistics:
    """Feature statistics of resamples given as counts, without copying rows. features [N, D].

    With rows centred once at their mean m and counts c_i (n = sum c_i):
        mu = m + sum_i c_i (x_i - m) / n
        sigma = (sum_i c_i (x_i - m)(x_i - m)^T - n (mu - m)(mu - m)^T) / (n - 1)
    which equals the ddof = 1 covariance of the resampled rows.
    """

    def __init__(self, features) -> None:
        array = as_feature_matrix(features)
        self.centre = array.mean(axis=0)
        self.centred = array - self.centre

    def __call__(self, counts: np.ndarray) -> FeatureStats:
        total, drawn, weights = drawn_rows(counts)
        scaled = self.centred[drawn] * np.sqrt(weights)[:, None]
        shift = np.sqrt(weights) @ scaled / total
        scatter = scaled.T @ scaled
        sigma = (scatter - total * np.outer(shift, shift)) / (total - 1)
        return FeatureStats(mu=self.centre + shift, sigma=sigma, n=total)


class FixedReferenceFID:
    """FID against fixed reference statistics of count-weighted resamples of features [N, D].

    With the reference covariance sigma_r = B B^T (B = psd_factor, [D, r]) and the rows centred once at
    their mean m and projected once, Y = (X - m) B [N, r], a resample with counts c (n = sum c) has
        shift = sum_i c_i (x_i - m) / n,  ybar = B^T shift               (mu = m + shift)
        tr(sigma) = (sum_i c_i ||x_i - m||^2 - n ||shift||^2) / (n - 1)
        B^T sigma B = Z^T Z / (n - 1),  Z = rows sqrt(c_i) (y_i - ybar) of the drawn rows
        FID = ||mu_r - mu||^2 + tr(sigma_r) + tr(sigma) - 2 sum_i sqrt(eig_i(Z^T Z) / (n - 1))  (frechet.py)
    Z^T Z and Z Z^T share their nonzero eigenvalues, so the smaller of the two is decomposed: a
    replicate costs one Gram product and one eigvalsh of size min(drawn rows, r), no D^3 products.
    With fewer rows than r, the Gram matrix G = Y Y^T [N, N] is computed once and a replicate reads Z Z^T
    from it: with w the counts of the drawn rows d and a = G_dd w / n (= Y_d ybar),
        Z Z^T = diag(sqrt w) (G_dd - a 1^T - 1 a^T + (w . a / n) 1 1^T) diag(sqrt w)
    and the mean terms from K = (X - m)(X - m)^T and v = (X - m)(mu_r - m), both cached:
        ||shift||^2 = w^T K_dd w / n^2,   ||mu_r - mu||^2 = ||mu_r - m||^2 - 2 w . v_d / n + ||shift||^2
    so a replicate costs one eigvalsh of its drawn rows and no product with r or D.
    """

    def __init__(self, reference: FeatureStats, features) -> None:
        array = as_feature_matrix(features)
        factor = reference.factor  # cached on the statistics: one eigh per reference, not per subset
        self.centre = array.mean(axis=0)
        self.centred = array - self.centre
        self.projected = self.centred @ factor
        self.squared_norms = np.einsum("ij,ij->i", self.centred, self.centred)
        self.mean_gap = reference.mu - self.centre
        self.reference_trace = float(np.trace(reference.sigma))
        rows, rank = self.projected.shape
        self.gram = self.projected @ self.projected.T if rows < rank else None
        # for the mean terms in O(drawn rows^2): K = (X - m)(X - m)^T and (X - m)(mu_r - m)
        self.centred_gram = self.centred @ self.centred.T if rows < rank else None
        self.along_gap = self.centred @ self.mean_gap
        self._scatter: np.ndarray | None = None  # Y^T Y [r, r], on the first replicate that updates it

    def full(self) -> float:
        """FID of the features themselves (every row once): the same value as fid_from_stats(reference,
        feature_statistics(features)), without its D x D x D products."""
        return self(np.ones(self.centred.shape[0], dtype=np.int64))

    def __call__(self, counts: np.ndarray) -> float:
        return self.terms(counts).total

    def terms(self, counts: np.ndarray) -> FIDTerms:
        """The FID of the resample split into its terms (metrics.fid_decomposition); `total` is the FID."""
        total, drawn, weights = drawn_rows(counts)
        if self.gram is not None:
            pair = np.ix_(drawn, drawn)
            gram_drawn = self.gram[pair]
            along_mean = gram_drawn @ weights / total
            root = np.sqrt(weights)
            gram = (gram_drawn - along_mean[:, None] - along_mean[None, :] + weights @ along_mean / total) \
                * root[:, None] * root[None, :]
            shift_squared = weights @ self.centred_gram[pair] @ weights / total**2  # ||shift||^2
            gap_squared = self.mean_gap @ self.mean_gap - 2.0 * weights @ self.along_gap[drawn] / total + shift_squared
        else:
            if 2 * np.count_nonzero(counts != 1) < drawn.size:  # most rows drawn once: update the full scatter
                shift, gram = self._updated_scatter(counts, total)
            else:
                shift, projected = weights @ self.centred[drawn] / total, self.projected[drawn]
                rows = (projected - weights @ projected / total) * np.sqrt(weights)[:, None]
                gram = rows @ rows.T if rows.shape[0] < rows.shape[1] else rows.T @ rows
            shift_squared, gap = shift @ shift, self.mean_gap - shift
            gap_squared = gap @ gap
        cross = np.sqrt(np.clip(np.linalg.eigvalsh(gram) / (total - 1), 0.0, None)).sum()
        trace = (weights @ self.squared_norms[drawn] - total * shift_squared) / (total - 1)
        return FIDTerms(float(gap_squared), float(trace), self.reference_trace, -2.0 * float(cross))

    def _updated_scatter(self, counts: np.ndarray, total: int) -> tuple[np.ndarray, np.ndarray]:
        """(shift [D], Z^T Z [r, r]) of counts that differ from 1 on few rows e (a subsample: the rows left out), from
        S = Y^T Y computed once: Z^T Z = S + Y_e^T diag(c_e - 1) Y_e - n ybar ybar^T (a product over e, not n)."""
        if self._scatter is None:
            self._scatter = self.projected.T @ self.projected
        weights, changed = counts.astype(np.float64), np.flatnonzero(counts != 1)
        projected, ybar = self.projected[changed], weights @ self.projected / total
        gram = self._scatter + (projected * (weights[changed] - 1.0)[:, None]).T @ projected
        return weights @ self.centred / total, gram - total * np.outer(ybar, ybar)


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
