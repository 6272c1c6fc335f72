"""`local_variance`: a trivial 0-NFE baseline, the local variance of the final x0 (an edge detector).

The error of a denoised image concentrates at edges, so any map that is large at edges scores well on
sparsification without knowing anything about the model. This row says how much of an estimator's AUSE a plain
image statistic already gets. With x0 the final sample [B,C,H,W] and a 3 x 3 window W(p) around pixel p (borders:
the pixels inside the image),
    pixel map  = mean_{q in W(p)} x0(q)^2 - (mean_{q in W(p)} x0(q))^2      (per channel)
    score      = sum over pixels of the pixel map                          [B]
Extra NFEs: 0 (it reads the sampler's last state). A reference row: shown, never ranked; the sparsification
protocol tests every estimator against it as against the `random` floor (`comparison_baseline`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from benchmark.errors import ConfigError
from estimators.base import EstimatorResult, UncertaintyEstimator
from estimators.registry import register
from estimators.x0_trajectory import predicted_x0

if TYPE_CHECKING:
    from benchmark.sampling.context import StepContext


def local_variance(images: torch.Tensor, window: int = 3) -> torch.Tensor:
    """Per-pixel variance over a window x window neighbourhood [B,C,H,W] (mean of squares minus squared mean;
    the padding is not counted)."""
    pad = window // 2
    mean = F.avg_pool2d(images, window, stride=1, padding=pad, count_include_pad=False)
    square = F.avg_pool2d(images * images, window, stride=1, padding=pad, count_include_pad=False)
    return (square - mean * mean).clamp_min(0.0)


@register("local_variance")
class LocalVarianceBaseline(UncertaintyEstimator):
    """Local variance of the final x0 prediction in a `size` x `size` neighbourhood (0 NFE).

    Args:
        size: odd neighbourhood size in pixels (3 by default).
    """

    kind = "heuristic"
    reference_row = True  # a trivial baseline: shown, never ranked
    comparison_baseline = True  # the sparsification protocol reports every estimator's AUSE against it
    uses_network = False
    nfe_formula = "0"
    paper = "trivial baseline (edge detector on the final x0)"
    needs = "eps only (reads the sampler's last prediction)"

    def __init__(self, size: int = 3) -> None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 3 or size % 2 == 0:
            raise ConfigError("size", size, "an odd integer >= 3 (the neighbourhood in pixels)", "set size = 3")
        self.size = size

    def begin(self, batch) -> None:
        super().begin(batch)
        self._last: torch.Tensor | None = None

    def observe(self, step: "StepContext") -> None:
        self._last = predicted_x0(step.x_t, step.eps, step.ab_t)  # the last one seen is the final prediction

    def result(self) -> EstimatorResult:
        pixel = local_variance(self._last, self.size)
        return EstimatorResult(pixel=pixel, score=pixel.flatten(1).sum(1))


__all__ = ["LocalVarianceBaseline", "local_variance"]
