"""Tests against the no-information floor, and multiplicity control over a family of verdicts.

Every verdict "X beats the floor" of this suite is a test of H0: *the estimator's score (or map) carries no
information about what the metric measures*, i.e. it is exchangeable with a random score. Under H0 the floor's
value is an expectation that can be computed exactly or averaged, so each test compares an estimator with that
expectation, never with one random draw (which would shift every verdict by the draw's luck):

- a filter's kept K-subset (FID, precision): H0 says the kept set is a uniformly random K-subset of the same
  pool. `randomization_test` compares the kept value v with the values f_1..f_R of R random K-subsets:
      delta = v - mean(f),   T = delta / (sd(f) * sqrt(1 + 1/R))  ~  t_{R-1}   under H0 (f normal)
  (a prediction-interval test: v is one more draw of the same law). The interval delta -/+ t_{R-1, 1-a/2} *
  sd(f) * sqrt(1 + 1/R) inverts the test under a location shift: it covers the filter's effect
  E_pool[v - E_subset f] when the effect moves the randomization law without reshaping it. Its width is the
  null spread measured exactly on the run's own pool, with no resampling of duplicated rows (which is what
  makes a with-replacement bootstrap of FID too wide: the number of distinct rows varies and FID's size bias
  follows it). FID is tested on the log scale (`log_scale`: its randomization law is right-skewed). The permutation
  p-value (1 + #{f <= v}) / (R + 1) is exact without the normal law but its
  resolution 1/(R+1) is too coarse for a multiplicity correction, so the t form is the reported p.
- a proportion over a fixed pool (precision of the kept set: the share of kept rows inside the real manifold):
  under H0 the number of kept rows inside is hypergeometric(N, n_inside, K), so `hypergeometric_test` is exact.
- a mean of paired per-item differences (per-image AUSE of an estimator minus the floor's, per-image AURG
  against 0): `paired_t_test`, the one-sample t-test of the mean (scipy.stats.ttest_1samp) with its t interval.

Each test also reports its *minimum detectable effect* (`detectable_effect`): the smallest |effect| that it rejects
with probability POWER = 80 % at the raw level alpha = 5 %, from the null spread it already computed (Cohen 1988):
    MDE = (q_{1 - alpha/2} + q_{POWER}) * se,
q the t quantiles of the test's degrees of freedom (normal for the hypergeometric test), se the test's standard
error (randomization: sd(f) sqrt(1 + 1/R); paired t: sd(d) / sqrt(n); hypergeometric: the finite-population sd).
A log-scale randomization test reports the decrease of the statistic it detects, mean(f) - exp(mean(log f) - (q +
q) se_log). `detectable_at_level` moves an MDE to a stricter level (a family's Bonferroni level alpha / m) with the
test's quantiles. A verdict of "not distinguishable" is then read as "could not have seen an effect below MDE".

`adjust` controls the error over a family of m p-values: Holm (1979) for the family-wise error rate,
Benjamini & Hochberg (1995) for the false discovery rate. Plain 95 % intervals stay unadjusted; only the
verdicts built on the p-values are.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats

from metrics.bootstrap import ConfidenceInterval
from metrics.power import POWER, detectable_at_level, detectable_effect  # noqa: F401  (re-exported)

#: the multiplicity methods a config may name -> what they control
MULTIPLICITY = {"holm": "family-wise error rate (Holm 1979)",
                "bh": "false discovery rate (Benjamini-Hochberg 1995)",
                "none": "nothing: each verdict is a separate 5 % test"}


def _two_sided(p_low: float, p_high: float) -> float:
    return float(min(1.0, 2.0 * min(p_low, p_high)))


def randomization_test(value: float, null_values: Sequence[float], alpha: float = 0.05,
                       log_scale: bool = False) -> ConfidenceInterval:
    """delta = value - mean(null_values) with its test-inversion interval and two-sided p-value (module doc).

    null_values [R]: the statistic on R uniformly random subsets of the same size from the same pool (R >= 2).
    log_scale: run the t test on log(value) among log(null_values) (a positive, right-skewed statistic such as FID:
    over 4000 random 500-of-600 subsets of Fashion-MNIST classifier features FID has skewness 0.47, and a normal
    law puts 0.3 % of them beyond its upper 0.05 % point, 6x too many; on the log scale skewness is 0.11 and the
    share is 0.05 %). The interval then is {delta : value - delta is accepted} = [value - A_high, value - A_low],
    A = exp(mean(log f) -/+ t sd(log f) sqrt(1 + 1/R)), asymmetric as the null law is. Falls back to the linear
    scale when a value is not positive.
    """
    null = np.asarray(null_values, dtype=np.float64)
    if null.size < 2:
        raise ValueError(f"null_values has {null.size} entries: at least 2 random subsets are needed")
    delta = float(value) - float(null.mean())
    use_log = log_scale and value > 0 and bool((null > 0).all())
    observed, draws = (math.log(value), np.log(null)) if use_log else (float(value), null)
    centre, dof = float(draws.mean()), null.size - 1
    scale = float(draws.std(ddof=1)) * math.sqrt(1.0 + 1.0 / null.size)
    method = "randomization (log scale)" if use_log else "randomization"
    if scale == 0.0:
        p = 1.0 if observed == centre else 0.0
        return ConfidenceInterval(delta, delta, delta, int(null.size), alpha, method, p_value=p, detectable=0.0)
    half = float(stats.t.ppf(1.0 - alpha / 2.0, dof)) * scale
    p = float(2.0 * stats.t.sf(abs(observed - centre) / scale, dof))
    accept_low, accept_high = centre - half, centre + half
    mde = detectable_effect(scale, dof)
    if use_log:
        accept_low, accept_high = math.exp(accept_low), math.exp(accept_high)
        mde = float(null.mean()) - math.exp(centre - mde)  # the decrease it detects (module doc)
    return ConfidenceInterval(delta, float(value) - accept_high, float(value) - accept_low, int(null.size), alpha,
                              method, p_value=p, detectable=mde)


def permutation_p_value(value: float, null_values: Sequence[float]) -> float:
    """Two-sided permutation p-value of `value` among the null draws: 2 min((1 + #{f <= v}), (1 + #{f >= v})) / (R + 1)."""
    null = np.asarray(null_values, dtype=np.float64)
    below, above = (1 + np.sum(null <= value)) / (null.size + 1), (1 + np.sum(null >= value)) / (null.size + 1)
    return _two_sided(float(below), float(above))


def hypergeometric_test(inside: np.ndarray, kept: np.ndarray, alpha: float = 0.05) -> ConfidenceInterval:
    """share(inside[kept]) - share(inside) for a boolean property `inside` [N] of a pool and a kept mask [N].

    Under H0 (kept is a uniformly random K-subset) X = #inside among the kept ~ Hypergeom(N, n_inside, K):
    the exact two-sided p-value is 2 min(P(X <= x), P(X >= x)). The interval is delta -/+ z sd with the
    finite-population sd of a K-subset's share, sqrt(p (1 - p) N / (N - 1) (1/K - 1/N)) (test inversion
    under a shift, as in `randomization_test`), clipped to the difference's range [-1, 1].
    """
    inside, kept = np.asarray(inside, dtype=bool), np.asarray(kept, dtype=bool)
    total, size, hits = inside.size, int(kept.sum()), int(inside.sum())
    x = int(inside[kept].sum())
    share = hits / total
    delta = x / size - share
    law = stats.hypergeom(total, hits, size)
    p = _two_sided(float(law.cdf(x)), float(law.sf(x - 1)))
    sd = math.sqrt(share * (1.0 - share) * total / max(total - 1, 1) * (1.0 / size - 1.0 / total))
    half = float(stats.norm.ppf(1.0 - alpha / 2.0)) * sd
    return ConfidenceInterval(delta, max(-1.0, delta - half), min(1.0, delta + half), 0, alpha, "hypergeometric",
                              p_value=p, detectable=detectable_effect(sd))


def paired_t_test(differences: Sequence[float], alpha: float = 0.05) -> ConfidenceInterval:
    """mean(d) of per-item paired differences d [n] with its t interval mean -/+ t_{n-1} sd / sqrt(n) and the
    two-sided one-sample t-test p-value of H0: E[d] = 0 (scipy.stats.ttest_1samp)."""
    d = np.asarray(differences, dtype=np.float64)
    d = d[np.isfinite(d)]
    if d.size < 2:
        raise ValueError(f"{d.size} finite differences: at least 2 are needed for a paired test")
    mean, se = float(d.mean()), float(d.std(ddof=1)) / math.sqrt(d.size)
    if se == 0.0:
        return ConfidenceInterval(mean, mean, mean, int(d.size), alpha, "t", p_value=1.0 if mean == 0 else 0.0,
                                  detectable=0.0)
    half = float(stats.t.ppf(1.0 - alpha / 2.0, d.size - 1)) * se
    p = float(2.0 * stats.t.sf(abs(mean) / se, d.size - 1))
    return ConfidenceInterval(mean, mean - half, mean + half, int(d.size), alpha, "t", p_value=p,
                              detectable=detectable_effect(se, d.size - 1))


def paired_bootstrap_difference(statistic, score_a: np.ndarray, score_b: np.ndarray, target: np.ndarray,
                                n_boot: int = 200, seed: int = 0, alpha: float = 0.05) -> ConfidenceInterval:
    """d = statistic(score_a, target) - statistic(score_b, target) for two scores of the same items (e.g. an
    estimator's and a trivial baseline's score of the same samples), with a paired bootstrap: each replicate
    resamples the items once (rng.integers(0, n, n) from default_rng(seed)) and recomputes both sides. Interval:
    percentile [q(alpha/2), q(1 - alpha/2)] of d*; p-value: the normal test of d = 0 with se = sd(d*) (replicates
    where the statistic is undefined, e.g. an AUROC without positives, are dropped); detectable: from that se."""
    a, b, y = (np.asarray(v, dtype=np.float64) for v in (score_a, score_b, target))
    value = float(statistic(a, y) - statistic(b, y))
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        idx = rng.integers(0, y.size, y.size)
        draws.append(statistic(a[idx], y[idx]) - statistic(b[idx], y[idx]))
    draws = np.asarray(draws, dtype=np.float64)
    draws = draws[np.isfinite(draws)]
    if not math.isfinite(value) or draws.size < 2:
        return ConfidenceInterval(value, math.nan, math.nan, int(draws.size), alpha, "paired bootstrap")
    se = float(draws.std(ddof=1))
    p = float(math.erfc(abs(value) / se / math.sqrt(2.0))) if se > 0 else float(value == 0)
    low, high = np.quantile(draws, [alpha / 2.0, 1.0 - alpha / 2.0])
    return ConfidenceInterval(value, float(low), float(high), int(draws.size), alpha, "paired bootstrap", p_value=p,
                              detectable=detectable_effect(se))


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values: p~_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)) in ascending order."""
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    m = p.size
    stepped = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = stepped
    return out


def benjamini_hochberg(p_values: Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values: p~_(i) = min_{j >= i} min(1, m p_(j) / j) in ascending order."""
    p = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    m = p.size
    scaled = p[order] * m / np.arange(1, m + 1)
    stepped = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    out = np.empty(m)
    out[order] = stepped
    return out


def adjust(p_values: Sequence[float], method: str) -> np.ndarray:
    """Adjusted p-values of a family by `method` (a key of MULTIPLICITY); NaN entries stay NaN and are not
    counted in the family size."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    valid = np.isfinite(p)
    if not valid.any():
        return out
    if method == "holm":
        out[valid] = holm(p[valid])
    elif method == "bh":
        out[valid] = benjamini_hochberg(p[valid])
    elif method == "none":
        out[valid] = p[valid]
    else:
        raise ValueError(f"multiplicity method {method!r}: one of {sorted(MULTIPLICITY)}")
    return out
