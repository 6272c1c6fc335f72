"""Split-conformal pixel intervals and conformal risk control for filtering: the pure maths of `conformal`.

Pixels (Vovk et al. 2005; Angelopoulos & Bates 2021): with residuals r = x0_hat - x0 and a map u >= 0, the
nonconformity score of a pixel is s = |r| / u. On the n calibration pixels,
    q = s_(ceil((n + 1)(1 - alpha)))          (the order statistic; +inf when that rank exceeds n)
and the interval x0_hat -/+ q u covers a new exchangeable pixel with probability >= 1 - alpha (and < 1 - alpha +
1 / (n + 1) without ties). A constant map (u = 1) gives the constant-width interval at the same guarantee; the
*width ratio* mean(2 q u) / (2 q_const) over the test pixels is below 1 when the map is informative.

Samples (conformal risk control, Angelopoulos et al. 2022): keep the samples with score <= lambda; the loss of a
sample is L_i(lambda) = f_i 1[s_i <= lambda] (a kept failure, f_i in {0, 1}), nondecreasing in lambda and <= 1. The
largest lambda on the calibration scores with
    (n R_n(lambda) + 1) / (n + 1) <= alpha,   R_n(lambda) = mean_i L_i(lambda)
(-inf: keep nothing) gives E[L_new(lambda)] <= alpha: the share of new samples that are kept failures is at most
alpha, so the kept set's failure rate is at most alpha / P(kept).
"""
from __future__ import annotations

import math

import numpy as np


def conformal_quantile(scores: np.ndarray, alpha: float) -> float:
    """q of the module doc (inf when ceil((n + 1)(1 - alpha)) > n)."""
    s = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    rank = math.ceil((s.size + 1) * (1.0 - alpha))
    return float(s[rank - 1]) if rank <= s.size else math.inf


def nonconformity(residual: np.ndarray, u: np.ndarray) -> np.ndarray:
    """s = |r| / u, with u floored at 1e-12 (a zero map gives huge scores, not a division by zero)."""
    return np.abs(residual) / np.maximum(u, 1e-12)


def risk_control_threshold(scores: np.ndarray, failures: np.ndarray, alpha: float) -> float:
    """lambda of the module doc: the largest calibration score whose kept-failure risk passes (-inf: none)."""
    s, f = np.asarray(scores, dtype=np.float64), np.asarray(failures, dtype=np.float64)
    order = np.argsort(s, kind="stable")
    s, f = s[order], f[order]
    n = s.size
    kept_failures = np.cumsum(f)  # keeping s <= s_(j): the first j failures counted (ties resolved below)
    best = -math.inf
    for j in range(n):
        if j + 1 < n and s[j + 1] == s[j]:
            continue  # lambda = s[j] keeps every tied score
        if (kept_failures[j] + 1.0) / (n + 1.0) <= alpha:
            best = float(s[j])
    return best
