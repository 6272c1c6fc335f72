"""Sparsification curves, AUSE and AURG (mono-uncertainty definitions, Poggi et al. CVPR 2020; Ilg et al. 2018).

For one image with per-pixel errors e and uncertainties u, and F intervals (F = 50):

    q_i = 100 i / F,  i = 0..F-1                   (percent of pixels removed)
    keep_i = { p : -u_p >= percentile(-u, q_i) }   (remove the q_i % most uncertain pixels)
    method_i = m(e[keep_i]),  method_F = 0          (m = rmse: sqrt(mean e^2); mae: mean |e|)
    oracle_i: the same with u replaced by the true per-pixel error (e^2 for rmse, |e| for mae)
    random   = m(e) over all pixels                 (a constant curve)
    x_i = i / F,  i = 0..F
    AUSE = trapz(method, x) - trapz(oracle, x)      (lower is better, 0 for a perfect ranking)
    AURG = random - trapz(method, x)                (higher is better)

`percentile` is numpy's default (linear interpolation). The kept set of a linear-interpolation
percentile is evaluated exactly on the sorted values (no floating-point interpolation), so ties and
the 0 % / 100 % ends behave as the definition says. `sparsification` computes the curves per image,
vectorised over the batch, and averages AUSE/AURG over images (mono-uncertainty protocol);
`sparsification_pooled` puts all pixels of all images in one curve (what De Vita et al.'s public code does).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from benchmark.errors import ConfigError, NonFiniteError

METRICS = ("rmse", "mae")


@dataclass
class SparsificationResult:
    """Curves and areas. B = number of curves (images; 1 for the pooled variant), F = intervals.

    removed [F+1]: fraction of pixels removed, 0..1; method, oracle [B, F+1]: metric of the kept pixels;
    random [B]: metric of all pixels; ause, aurg: means over the B curves; ause_per_image, aurg_per_image [B].
    """

    removed: np.ndarray
    method: np.ndarray
    oracle: np.ndarray
    random: np.ndarray
    ause: float
    aurg: float
    ause_per_image: np.ndarray
    aurg_per_image: np.ndarray
    metric: str = "rmse"


def _as_rows(values, field: str) -> torch.Tensor:
    """[B, ...] numpy/tensor -> [B, P] float64 CPU tensor (P = pixels per image)."""
    tensor = values.detach() if isinstance(values, torch.Tensor) else torch.from_numpy(np.asarray(values))
    if tensor.ndim < 2:
        raise ConfigError(field, f"array of shape {tuple(tensor.shape)}",
                          "a per-pixel array [B, ...] with B >= 1 images")
    rows = tensor.to(device="cpu", dtype=torch.float64).reshape(tensor.shape[0], -1)
    if rows.shape[1] == 0:
        raise ConfigError(field, f"array of shape {tuple(tensor.shape)}", "at least one pixel per image")
    if not torch.isfinite(rows).all():
        raise NonFiniteError(f"{field} contains NaN or Inf. Fix: check the estimator's map / the reconstruction.")
    return rows


def _kept_start(sorted_scores: torch.Tensor, intervals: int) -> torch.Tensor:
    """First kept index [B, F] of `score >= percentile(score, q_i)`, q_i = 100 i / F, scores sorted ascending [B, P].

    numpy's linear percentile sits at the virtual index v_i = (q_i / 100)(P - 1) = i (P - 1) / F, between
    s[floor v] and s[floor v + 1]. The values >= it are those >= s[floor v] when v is an integer, else
    those >= s[floor v + 1] (when both neighbours are equal the interpolated value equals them).
    Computed with integer arithmetic, then ties are included via a left search.
    """
    pixels = sorted_scores.shape[1]
    order_index = []
    for i in range(intervals):
        whole, remainder = divmod(i * (pixels - 1), intervals)
        order_index.append(whole if remainder == 0 else whole + 1)
    index = torch.tensor(order_index, dtype=torch.long).expand(sorted_scores.shape[0], -1).contiguous()
    boundary = torch.gather(sorted_scores, 1, index)
    return torch.searchsorted(sorted_scores, boundary, side="left")


def sparsification_curve(error: torch.Tensor, ranking: torch.Tensor, intervals: int, metric: str) -> torch.Tensor:
    """Metric of the pixels kept after removing the q_i % with the highest `ranking` -> [B, F+1] (last = 0).

    error, ranking [B, P] float64. The kept pixels are a suffix of the pixels sorted by -ranking, so the
    metric of every kept set is read from suffix sums of the sorted per-pixel errors.
    """
    scores, order = torch.sort(-ranking, dim=1)  # ascending -u: the most uncertain pixels come first
    per_pixel = error.square() if metric == "rmse" else error.abs()
    ordered = torch.gather(per_pixel, 1, order)
    tail_sum = torch.flip(torch.cumsum(torch.flip(ordered, [1]), dim=1), [1])  # tail_sum[:, j] = sum ordered[:, j:]
    start = _kept_start(scores, intervals)
    kept = (scores.shape[1] - start).to(torch.float64)
    mean = torch.gather(tail_sum, 1, start) / kept
    values = mean.sqrt() if metric == "rmse" else mean
    return torch.cat([values, torch.zeros(values.shape[0], 1, dtype=values.dtype)], dim=1)


def _validate(intervals: int, metric: str) -> None:
    if not isinstance(intervals, int) or isinstance(intervals, bool) or intervals < 1:
        raise ConfigError("fractions", intervals, "a positive integer number of removal steps (50 in mono-uncertainty)")
    if metric not in METRICS:
        raise ConfigError("metric", metric, f"one of {METRICS}")


def _areas(error: torch.Tensor, uncertainty: torch.Tensor, intervals: int, metric: str) -> SparsificationResult:
    """Curves and AUSE/AURG for rows of error / uncertainty [B, P] (float64)."""
    method = sparsification_curve(error, uncertainty, intervals, metric)
    oracle = sparsification_curve(error, error.abs(), intervals, metric)  # rank by the true error (e^2 and |e| agree)
    random = method[:, 0].clone()  # the metric of all pixels (nothing removed)
    removed = torch.arange(intervals + 1, dtype=torch.float64) / intervals
    method_area = torch.trapezoid(method, x=removed, dim=1)
    ause = (method_area - torch.trapezoid(oracle, x=removed, dim=1)).numpy()
    aurg = (random - method_area).numpy()
    return SparsificationResult(removed=removed.numpy(), method=method.numpy(), oracle=oracle.numpy(),
                                random=random.numpy(), ause=float(ause.mean()), aurg=float(aurg.mean()),
                                ause_per_image=ause, aurg_per_image=aurg, metric=metric)


def _rows_pair(error, uncertainty) -> tuple[torch.Tensor, torch.Tensor]:
    error_rows, uncertainty_rows = _as_rows(error, "error"), _as_rows(uncertainty, "uncertainty")
    if error_rows.shape != uncertainty_rows.shape:
        raise ConfigError("uncertainty", f"shape {tuple(np.shape(uncertainty))}",
                          f"the shape of error {tuple(np.shape(error))} (one value per pixel)")
    return error_rows, uncertainty_rows


def sparsification(error, uncertainty, fractions: int = 50, metric: str = "rmse") -> SparsificationResult:
    """Per-image sparsification of error vs uncertainty, both [B, ...] (tensors or arrays); see module doc.

    error: the per-pixel error (prediction - target; its sign is ignored). uncertainty: any per-pixel
    score, higher = less trusted. fractions: the number F of removal steps. Returns curves [B, F+1] and
    AUSE/AURG per image and averaged over the B images.
    """
    _validate(fractions, metric)
    error_rows, uncertainty_rows = _rows_pair(error, uncertainty)
    return _areas(error_rows, uncertainty_rows, fractions, metric)


def sparsification_pooled(error, uncertainty, fractions: int = 50, metric: str = "rmse") -> SparsificationResult:
    """All pixels of all B images in ONE curve (De Vita et al.'s compute_ause.py); result has B = 1."""
    _validate(fractions, metric)
    error_rows, uncertainty_rows = _rows_pair(error, uncertainty)
    return _areas(error_rows.reshape(1, -1), uncertainty_rows.reshape(1, -1), fractions, metric)
