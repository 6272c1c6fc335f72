"""`gradient_magnitude`: a trivial 0-NFE baseline, the Sobel gradient magnitude of the final x0 (an edge map).

Like `local_variance`, it is large at edges, where a denoised image's error concentrates, and knows nothing about
the model: a verdict on a pixel map must beat it. With x0 the final sample [B,C,H,W], per channel, the borders
extended by their edge pixels (scipy.ndimage's mode "reflect" for a 3 x 3 kernel),
    G_x = [1 2 1]^T [-1 0 1] * x0,   G_y = [-1 0 1]^T [1 2 1] * x0      (correlation; Sobel 1968)
    pixel map  = sqrt(G_x^2 + G_y^2)
    score      = sum over pixels of the pixel map                        [B]
Extra NFEs: 0 (it reads the sampler's last state). A trivial baseline (estimators.final_sample): shown, never ranked.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from estimators.final_sample import FinalSampleBaseline
from estimators.registry import register


def sobel_magnitude(images: torch.Tensor) -> torch.Tensor:
    """sqrt(G_x^2 + G_y^2) per pixel and channel of images [B,C,H,W] (module doc; edge pixels repeated at the
    border) -> [B,C,H,W]."""
    b, c, h, w = images.shape
    smooth = torch.tensor([1.0, 2.0, 1.0], dtype=images.dtype, device=images.device)
    derivative = torch.tensor([-1.0, 0.0, 1.0], dtype=images.dtype, device=images.device)
    kernels = torch.stack([torch.outer(smooth, derivative), torch.outer(derivative, smooth)]).unsqueeze(1)
    padded = F.pad(images.reshape(b * c, 1, h, w), (1, 1, 1, 1), mode="replicate")
    gradients = F.conv2d(padded, kernels)  # [B*C, 2, H, W]: G_x, G_y
    return gradients.pow(2).sum(dim=1).sqrt().reshape(b, c, h, w)


@register("gradient_magnitude")
class GradientMagnitudeBaseline(FinalSampleBaseline):
    """Sobel gradient magnitude of the final x0 prediction (0 NFE; no parameters)."""

    paper = "trivial baseline (Sobel edge map of the final x0)"
    needs = "eps only (reads the sampler's last prediction)"

    def __init__(self) -> None:  # no parameters (an explicit signature for the registry and the cards)
        super().__init__()

    def pixel_map(self, x0: torch.Tensor) -> torch.Tensor:
        return sobel_magnitude(x0)


__all__ = ["GradientMagnitudeBaseline", "sobel_magnitude"]
