"""`local_variance`: a trivial 0-NFE baseline, the local variance of the final x0 (an edge detector).

The error of a denoised image concentrates at edges, so any map that is large at edges scores well on
sparsification without knowing anything about the model. This row says how much of an estimator's AUSE a plain
image statistic already gets. With x0 the final sample [B,C,H,W] and a 3 x 3 window W(p) around pixel p (borders:
the pixels inside the image),
    pixel map  = mean_{q in W(p)} x0(q)^2 - (mean_{q in W(p)} x0(q))^2      (per channel)
    score      = sum over pixels of the pixel map                          [B]
Extra NFEs: 0 (it reads the sampler's last state). A trivial baseline (estimators.final_sample): shown, never
ranked; the sparsification protocol tests every estimator against it as against the `random` floor
(`comparison_baseline`). The other trivial baselines: `gradient_magnitude`, `distance_to_mean`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from benchmark.errors import ConfigError
from estimators.final_sample import FinalSampleBaseline
from estimators.registry import register


def local_variance(images: torch.Tensor, window: int = 3) -> torch.Tensor:
    """Per-pixel variance over a window x window neighbourhood [B,C,H,W] (mean of squares minus squared mean;
    the padding is not counted)."""
    pad = window // 2
    mean = F.avg_pool2d(images, window, stride=1, padding=pad, count_include_pad=False)
    square = F.avg_pool2d(images * images, window, stride=1, padding=pad, count_include_pad=False)
    return (square - mean * mean).clamp_min(0.0)


@register("local_variance")
class LocalVarianceBaseline(FinalSampleBaseline):
    """Local variance of the final x0 prediction in a `size` x `size` neighbourhood (0 NFE).

    Args:
        size: odd neighbourhood size in pixels (3 by default).
    """

    paper = "trivial baseline (edge detector on the final x0)"
    needs = "eps only (reads the sampler's last prediction)"

    def __init__(self, size: int = 3) -> None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 3 or size % 2 == 0:
            raise ConfigError("size", size, "an odd integer >= 3 (the neighbourhood in pixels)", "set size = 3")
        self.size = size

    def pixel_map(self, x0: torch.Tensor) -> torch.Tensor:
        return local_variance(x0, self.size)


__all__ = ["LocalVarianceBaseline", "local_variance"]
