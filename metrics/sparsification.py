"""Sparsification curves, AUSE and AURG (mono-uncertainty definitions, Poggi et al. CVPR 2020; Ilg et al. 2018).

For one image with per-pixel errors e and uncertainties u, P pixels and F intervals (F = 50):

    q_i = 100 i / F,  i = 0..F-1                   (percent of pixels removed)
    keep_i = { p : -u_p >= percentile(-u, q_i) }   (remove the q_i % most uncertain pixels)
    method_i = m(e[keep_i]),  method_F = 0          (m = rmse: sqrt(mean e^2); mae: mean |e|)
    oracle_i: the same with u replaced by the true per-pixel error (e^2 for rmse, |e| for mae)
    random_i = E_S[ m(e[S]) ],  random_F = 0        (S a uniformly random set of n_i = |keep_i| pixels)
    x_i = i / F,  i = 0..F
    AUSE = trapz(method, x) - trapz(oracle, x)      (lower is better, 0 for a perfect ranking)
    AURG = trapz(random, x) - trapz(method, x)      (higher is better)

The random curve is what a random uncertainty map gives on average: a continuous random map keeps a uniformly
random set of n_i = P - ceil(i (P - 1) / F) pixels at q_i, and nothing at 100 %, so both curves end at 0 and
E[AURG] = 0 for a random map. (Mono-uncertainty's constant random curve m(e), which does not drop to 0 at
100 %, gives random maps AURG ~ m(e) / (2F) > 0.) Per metric:
    mae:  random_i = mean |e| exactly (the mean of a random subset is unbiased);
    rmse: random_i = sqrt(mu) + E[ sqrt(X_i) - sqrt(mu) - (X_i - mu) / (2 sqrt(mu)) ],  X_i = mean of e^2 over S,
          mu = mean e^2 over all pixels. The expectation (the Jensen gap, O(1/n_i); no closed form) is averaged
          over R seeded random permutations cut into disjoint blocks of n_i pixels (`random_rmse_levels`); the
          control variate X_i - mu has mean 0 exactly, so the estimate is unbiased and its error is of second
          order. The permutations are the same for every image: AURG differences between maps of one image are
          exact.
`random` in the result stays m(e) of all pixels (the level a plot draws); `random_curve` is the curve above.

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
RANDOM_DRAWS = 64  # R permutations per curve for the rmse random curve's Jensen gap (small images) ...
RANDOM_ELEMENTS = 2**16  # ... fewer for large ones: R = clamp(ceil(2^16 / P), 4, 64) (the gap shrinks like 1/P)
RANDOM_SEED = 0


@dataclass
class SparsificationResult:
    """Curves and areas. B = number of curves (images; 1 for the pooled variant), F = intervals.

    removed [F+1]: fraction of pixels removed, 0..1; method, oracle [B, F+1]: metric of the kept pixels;
    random [B]: metric of all pixels; random_curve [B, F+1]: expected metric under random removal (0 at the
    end); ause, aurg: means over the B curves; ause_per_image, aurg_per_image [B].
    """

    removed: np.ndarray
    method: np.ndarray
    oracle: np.ndarray
    random: np.ndarray
    random_curve: np.ndarray
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


def _distinct_start(pixels: int, intervals: int) -> list[int]:
    """First kept index of `score >= percentile(score, q_i)` for P distinct sorted scores, i = 0..F-1:
    ceil(i (P - 1) / F) (numpy's linear percentile sits at the virtual index v_i = i (P - 1) / F)."""
    starts = []
    for i in range(intervals):
        whole, remainder = divmod(i * (pixels - 1), intervals)
        starts.append(whole if remainder == 0 else whole + 1)
    return starts


def _kept_start(sorted_scores: torch.Tensor, intervals: int) -> torch.Tensor:
    """First kept index [B, F] of `score >= percentile(score, q_i)`, q_i = 100 i / F, scores sorted ascending [B, P].

    numpy's linear percentile sits at the virtual index v_i = (q_i / 100)(P - 1) = i (P - 1) / F, between
    s[floor v] and s[floor v + 1]. The values >= it are those >= s[floor v] when v is an integer, else
    those >= s[floor v + 1] (when both neighbours are equal the interpolated value equals them).
    Computed with integer arithmetic, then ties are included via a left search.
    """
    order_index = _distinct_start(sorted_scores.shape[1], intervals)
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


def random_removal_curve(error: torch.Tensor, intervals: int, metric: str, draws: int | None = None,
                         seed: int = RANDOM_SEED) -> torch.Tensor:
    """E[m(e[S])] over uniformly random kept sets S of n_i pixels -> [B, F+1] (last = 0); error [B, P] float64.

    mae: mean |e| exactly. rmse: `random_rmse_levels` (module doc) with `draws` permutations (None: R =
    clamp(ceil(RANDOM_ELEMENTS / P), 4, RANDOM_DRAWS): the remainder's error falls like 1/n_i)."""
    rows, pixels = error.shape
    if draws is None:
        draws = min(RANDOM_DRAWS, max(4, -(-RANDOM_ELEMENTS // pixels)))
    kept = pixels - torch.tensor(_distinct_start(pixels, intervals), dtype=torch.long)  # n_i [F]
    if metric == "rmse":
        values = random_rmse_levels(error.square(), kept, draws, seed)
    else:
        values = error.abs().mean(dim=1, keepdim=True).expand(rows, intervals).clone()
    return torch.cat([values, torch.zeros(rows, 1, dtype=values.dtype)], dim=1)


def random_rmse_levels(squared: torch.Tensor, kept: torch.Tensor, draws: int, seed: int) -> torch.Tensor:
    """E[sqrt(X_i)] [B, F], X_i the mean of squared [B, P] over a uniformly random set of kept[i] pixels.

        E[sqrt(X_i)] = sqrt(mu) + E[ sqrt(X_i) - sqrt(mu) - (X_i - mu) / (2 sqrt(mu)) ]    (E[X_i] = mu exactly)
    The remainder's mean is taken over `draws` seeded random permutations, each cut into floor(P / n_i) disjoint
    blocks of n_i pixels (every block is a uniformly random n_i-set, so the estimate stays unbiased, and small
    sets, where the Jensen gap is largest, get many blocks). The permutations are the same for every row: a
    row's curve depends on its own errors only, not on the batch it came in."""
    rows, pixels = squared.shape
    generator = torch.Generator().manual_seed(seed)
    order = torch.rand(draws, pixels, generator=generator, dtype=torch.float64).argsort(dim=1)  # [R, P]
    sizes = [int(n) for n in kept]
    starts = torch.tensor([k * n for n in sizes for k in range(pixels // n)], dtype=torch.long)
    lengths = torch.tensor([n for n in sizes for _ in range(pixels // n)], dtype=torch.float64)
    group = torch.tensor([i for i, n in enumerate(sizes) for _ in range(pixels // n)], dtype=torch.long)
    blocks_per_size = torch.tensor([pixels // n for n in sizes], dtype=torch.float64)
    mean_all = squared.mean(dim=1, keepdim=True)  # mu [B, 1]
    level = mean_all.sqrt()
    values = level.expand(rows, len(sizes)).clone()
    chunk = max(1, 4_000_000 // (draws * pixels))
    for first in range(0, rows, chunk):
        part = squared[first:first + chunk][:, order]  # [b, R, P]
        sums = torch.nn.functional.pad(part.cumsum(dim=2), (1, 0))  # [b, R, P + 1], sums[..., j] = first j pixels
        x = (sums[..., starts + lengths.long()] - sums[..., starts]) / lengths  # X per block [b, R, blocks]
        mu, root = mean_all[first:first + chunk, :, None], level[first:first + chunk, :, None]
        remainder = (x.sqrt() - root - (x - mu) / (2 * root.clamp_min(torch.finfo(root.dtype).tiny))).mean(dim=1)
        per_size = torch.zeros(remainder.shape[0], len(sizes), dtype=torch.float64).index_add_(1, group, remainder)
        values[first:first + chunk] += per_size / blocks_per_size
    return torch.where(level > 0, values, torch.zeros_like(values))


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
    random_curve = random_removal_curve(error, intervals, metric)
    removed = torch.arange(intervals + 1, dtype=torch.float64) / intervals
    method_area = torch.trapezoid(method, x=removed, dim=1)
    ause = (method_area - torch.trapezoid(oracle, x=removed, dim=1)).numpy()
    aurg = (torch.trapezoid(random_curve, x=removed, dim=1) - method_area).numpy()
    return SparsificationResult(removed=removed.numpy(), method=method.numpy(), oracle=oracle.numpy(),
                                random=random.numpy(), random_curve=random_curve.numpy(), ause=float(ause.mean()),
                                aurg=float(aurg.mean()), ause_per_image=ause, aurg_per_image=aurg, metric=metric)


def aurg_mono_uncertainty(result: SparsificationResult) -> np.ndarray:
    """The published AURG of mono-uncertainty (Poggi et al., CVPR 2020) per curve [B]: the random curve is the
    constant level m(e) of all pixels over the whole removal axis,

        AURG_mono = m(e) * 1 - trapz(method, x),      x = 0..1,

    which does not drop to 0 at 100 % as the expected curve of random removal does, so a map without information
    gets AURG_mono ~ m(e) / (2F) > 0 (F intervals) where the unbiased AURG of this module is 0 in expectation. Reported
    beside the unbiased one, named as the published definition, so that numbers can be put beside a paper's."""
    method_area = np.trapezoid(np.asarray(result.method), x=np.asarray(result.removed), axis=1)
    return np.asarray(result.random, dtype=np.float64) - method_area


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
