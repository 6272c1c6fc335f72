"""`distance_to_mean`: a trivial 0-NFE baseline, the squared distance of the final x0 to the data mean.

On data whose density falls off away from its mean (the `gmm` preset's mixture of ten Gaussians around digit
prototypes), the distance to the mean already ranks samples by density without any model: a verdict on scores must
beat it. With x0 the final sample [B,C,H,W] and m [C,H,W] the mean of the data's training images (the `data_mean`
need, estimators.requirements: the first DATA_MEAN_IMAGES training images, in the model's sample space),
    pixel map  = (x0 - m)^2          (per coordinate)
    score      = ||x0 - m||^2 = sum over coordinates of the pixel map          [B]
Extra NFEs: 0 (it reads the sampler's last state). A trivial baseline (estimators.final_sample): shown, never ranked.
"""
from __future__ import annotations

import torch

from benchmark.errors import ConfigError
from estimators.final_sample import FinalSampleBaseline
from estimators.registry import register
from estimators.requirements import Requirements


@register("distance_to_mean")
class DistanceToMeanBaseline(FinalSampleBaseline):
    """(x0 - m)^2 per coordinate with m the training data's mean (supplied by the run; 0 NFE).

    Args:
        mean: the data mean [C,H,W] (filled in by the run from the training images; give it when calling directly).
    """

    paper = "trivial baseline (squared distance of the final x0 to the training data's mean)"
    needs = "the training images' mean (reads the sampler's last prediction)"
    requires = Requirements(data_mean="mean")

    def __init__(self, mean: torch.Tensor | None = None) -> None:
        self.mean = None if mean is None else torch.as_tensor(mean)

    def pixel_map(self, x0: torch.Tensor) -> torch.Tensor:
        if self.mean is None:
            raise ConfigError("distance_to_mean.mean", None, "the data mean [C,H,W]", "run it through a config (the "
                              "run supplies the training images' mean) or pass mean=<tensor>")
        if tuple(self.mean.shape) != tuple(x0.shape[1:]):
            raise ConfigError("distance_to_mean.mean", f"shape {tuple(self.mean.shape)}",
                              f"the sample shape {tuple(x0.shape[1:])}")
        return (x0 - self.mean.to(device=x0.device, dtype=x0.dtype)).pow(2)


__all__ = ["DistanceToMeanBaseline"]
