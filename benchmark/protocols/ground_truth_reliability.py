"""How far the epistemic target can be trusted: its split-half reliability and correlations corrected for it.

The shared-theta target of the ground-truth protocol (ground_truth_targets.shared_theta_draws) is a Monte-Carlo
estimate: S regenerations x0^1..x0^S of each sample under weight draws theta_s, target V = Var_s[x0^s]. Its own
noise attenuates every correlation with it, so even an exact estimator scores below 1 (issue 24 item 3). The
classical test theory of Spearman (1904, 1910) and Brown (1910) states the ceiling:
- split half: draws s < h and h <= s < 2h (h = floor(S / 2); an odd S leaves its last draw to the full target
  only) give two independent targets V_a, V_b of h draws each, and r_half = corr(V_a, V_b);
- Spearman-Brown step-up to the S-draw target (its reliability: the expected correlation of two independent
  S-draw targets):
      r_full = 2 r_half / (1 + r_half);
- correction for attenuation: an estimator's U correlates with the noise-free target T (S -> infinity) as
      rho(U, T) = rho(U, V) / sqrt(r_full).
  The estimator's own map U is taken as exact: its own Monte-Carlo noise is NOT corrected for, so an estimator
  that is itself a noisy copy of the target (e.g. a second, independent S-draw target) is corrected to
  sqrt(r_full), not to 1. sqrt(r_full) is the ceiling of the raw correlation: what an exact U reaches.
Correlations are Spearman's. Per pixel: the mean over images of the per-image correlation of two maps [C,H,W]
(reliability and correction use the means); per score: across samples, of the maps' sums. Spearman-Brown is
exact for sums of parallel measures; variances of h and 2h draws are close to that (the log-variance noise is
about 2 / (h - 1) vs 2 / (2h - 1)), and tests/test_ground_truth_target_reliability.py measures how close on the gmm
preset. A disattenuated correlation is an estimate, not a correlation: noise can put it above 1 (never clipped).
Intervals: percentile bootstrap over samples; each replicate recomputes the raw correlation AND the reliability
from the same resampled samples (the seed of the raw rows, so the same resamples), so the interval carries the
target's noise as far as it varies between samples; where a replicate's reliability is <= 0 the corrected value
is undefined and so is the interval (NaN: the data do not bound it). It does not cover the choice of the S draws where one draw
serves every sample (last-layer Laplace: theta_s is one layer for the whole batch; dropout masks are drawn per
sample).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import spearmanr

from benchmark.protocols.table import MetricRow, row_from_ci
from metrics import bootstrap_ci

TARGET = "shared_theta_var"


@dataclass(frozen=True)
class SplitHalfTarget:
    """The shared-theta target Var_s[x0^s] of all S draws and of each half ([B,C,H,W] float64 each); the halves
    are None when a half would hold fewer than 2 draws (S < 4)."""

    full: torch.Tensor
    half_a: torch.Tensor | None
    half_b: torch.Tensor | None
    draws: int


def split_half_target(x0_draws: torch.Tensor) -> SplitHalfTarget:
    """Targets (unbiased variances over the draw axis) from x0^s [S,B,C,H,W]: all S, draws [0, h), draws [h, 2h)."""
    draws = x0_draws.double()
    size, half = draws.shape[0], draws.shape[0] // 2
    full = draws.var(dim=0, unbiased=True)
    if half < 2:
        return SplitHalfTarget(full, None, None, size)
    return SplitHalfTarget(full, draws[:half].var(dim=0, unbiased=True), draws[half:2 * half].var(dim=0, unbiased=True),
                           size)


def spearman_brown(r_half: float) -> float:
    """Reliability of the doubled measure, r_full = 2 r_half / (1 + r_half) (NaN for r_half <= -1 or NaN)."""
    if not math.isfinite(r_half) or r_half <= -1:
        return float("nan")
    return 2 * r_half / (1 + r_half)


def corrected_for_attenuation(raw: float, reliability: float) -> float:
    """rho_raw / sqrt(reliability of the target) (the estimator taken as exact); NaN unless reliability > 0."""
    if not (math.isfinite(raw) and math.isfinite(reliability)) or reliability <= 0:
        return float("nan")
    return raw / math.sqrt(reliability)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman correlation of two vectors (NaN where either is constant)."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def per_image_spearman(maps: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """[N] Spearman correlation of each image's map [C,H,W] with its target map (NaN where either is constant)."""
    a, b = maps.flatten(1).double().numpy(), target.flatten(1).double().numpy()
    return np.array([spearman(u, v) for u, v in zip(a, b)])


def nanmean(values: np.ndarray) -> float:
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


# statistics of the bootstrap: functions of the rows of their arrays (samples), resampled jointly
def pixel_reliability(half_rho: np.ndarray) -> float:
    """Spearman-Brown of the mean over images of the per-image Spearman of the two half targets [N]."""
    return spearman_brown(nanmean(half_rho))


def pixel_corrected(raw_rho: np.ndarray, half_rho: np.ndarray) -> float:
    """Mean per-image Spearman of map and target [N] over sqrt(pixel_reliability)."""
    return corrected_for_attenuation(nanmean(raw_rho), pixel_reliability(half_rho))


def score_reliability(sum_a: np.ndarray, sum_b: np.ndarray) -> float:
    """Spearman-Brown of the Spearman correlation across samples of the two half targets' sums [N]."""
    return spearman_brown(spearman(sum_a, sum_b))


def score_corrected(score: np.ndarray, target_sum: np.ndarray, sum_a: np.ndarray, sum_b: np.ndarray) -> float:
    """Spearman of score and target sum across samples over sqrt(score_reliability)."""
    return corrected_for_attenuation(spearman(score, target_sum), score_reliability(sum_a, sum_b))


def reliability_rows(protocol: str, estimator: str, maps: torch.Tensor, scores: np.ndarray, target: SplitHalfTarget,
                     *, n_boot: int, seed: int) -> list[MetricRow]:
    """`target_reliability_{pixel,score}_shared_theta_var` and `spearman_{pixel,score}_vs_shared_theta_var_corrected`
    of one estimator: maps [N,C,H,W] and scores [N] against its target on the same N samples."""
    n = len(scores)
    names = [f"target_reliability_pixel_{TARGET}", f"target_reliability_score_{TARGET}",
             f"spearman_pixel_vs_{TARGET}_corrected", f"spearman_score_vs_{TARGET}_corrected"]
    if target.half_a is None or target.half_b is None:  # S < 4: a half of one draw has no variance
        return [MetricRow(protocol, estimator, name, float("nan"), n=n, seed=seed) for name in names]
    raw_rho = per_image_spearman(maps, target.full)
    half_rho = per_image_spearman(target.half_a, target.half_b)
    target_sum, sum_a, sum_b = (t.flatten(1).sum(1).numpy() for t in (target.full, target.half_a, target.half_b))
    statistics = [(pixel_reliability, (half_rho,)), (score_reliability, (sum_a, sum_b)),
                  (pixel_corrected, (raw_rho, half_rho)), (score_corrected, (scores, target_sum, sum_a, sum_b))]
    return [row_from_ci(protocol, estimator, name, bootstrap_ci(statistic, *arrays, n_boot=n_boot, seed=seed), n, seed)
            for name, (statistic, arrays) in zip(names, statistics)]


__all__ = ["SplitHalfTarget", "corrected_for_attenuation", "nanmean", "per_image_spearman", "pixel_corrected",
           "pixel_reliability", "reliability_rows", "score_corrected", "score_reliability", "spearman",
           "spearman_brown", "split_half_target"]
