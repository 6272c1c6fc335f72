"""`flip`: horizontal-flip test-time augmentation of the noise prediction (baseline of De Vita & Belagiannis).

The public code of De Vita & Belagiannis (WACV 2025, Michedev/diffusion-uncertainty,
schedulers_uncertainty/scheduling_ddim_flip.py) ships this baseline: at a step t of the window, with
F = horizontal flip (last axis) and eps = eps_theta(x_t, t) the sampler's prediction,
    U_t = (eps_theta(x_t, t) - F(eps_theta(F(x_t), t)))^2                       [B,C,H,W]
i.e. the squared disagreement of the network with its own flip-equivariant twin. A network that were
exactly flip-equivariant would give 0 everywhere: the map measures where the prediction depends on the
orientation of the input. Pixel map = sum of U_t over the window, score = its sum over pixels.
Extra NFEs per sample: 1 per window step (the flipped input; the plain prediction is the sampler's).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from estimators.base import validate_window
from estimators.registry import register
from estimators.windowed import WindowedVarianceEstimator, validate_flag

if TYPE_CHECKING:
    from benchmark.models.base import DiffusionModel
    from benchmark.sampling.context import StepContext


def hflip(x: torch.Tensor) -> torch.Tensor:
    """Horizontal flip of [B,C,H,W] (reverse the width axis)."""
    return torch.flip(x, dims=(-1,))


def flip_disagreement(model: "DiffusionModel", x_t: torch.Tensor, eps: torch.Tensor, t: int,
                      y: torch.Tensor | None = None) -> torch.Tensor:
    """U_t = (eps - F(eps_theta(F(x_t), t)))^2 [B,C,H,W] for x_t, eps [B,C,H,W] (one network call of B rows)."""
    return (eps - hflip(model.eps(hflip(x_t), t, y))).pow(2)


@register("flip")
class FlipEstimator(WindowedVarianceEstimator):
    """Flip-TTA disagreement on the steps of `window`; pixel map and score summed over them.

    Args:
        window: half-open window of step indices of a 50-step run, scaled to other step counts
            ((45, 49) = steps 45..48, the window of `sensitivity`).
        keep_steps: keep the per-step maps {t: U_t}.
    """

    kind = "heuristic"
    reference_row = False
    nfe_formula = "1 x window steps"
    paper = "De Vita & Belagiannis, WACV 2025: public-code baseline (flip TTA)"
    needs = "eps only"

    def __init__(self, window: tuple[int, int] = (45, 49), keep_steps: bool = False) -> None:
        # no Monte-Carlo draws: the base class's `m` does not apply, so its constructor is not used
        self.window = validate_window(window)
        self.keep_steps = validate_flag(keep_steps, "keep_steps")

    def step_variance(self, step: "StepContext") -> torch.Tensor:
        return flip_disagreement(step.model, step.x_t, step.eps, step.t, step.y)


__all__ = ["FlipEstimator", "flip_disagreement", "hflip"]
