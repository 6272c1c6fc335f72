"""`flip`: horizontal-flip test-time augmentation of the noise prediction (baseline of De Vita & Belagiannis).

The public code of De Vita & Belagiannis (WACV 2025, Michedev/diffusion-uncertainty,
schedulers_uncertainty/scheduling_ddim_flip.py) ships this baseline: at a step t of the window, with
F = horizontal flip (last axis) and eps = eps_theta(x_t, t) the sampler's prediction,
    U_t = (eps_theta(x_t, t) - F(eps_theta(F(x_t), t)))^2                       [B,C,H,W]
i.e. the squared disagreement of the network with its own flip-equivariant twin. A network that were
exactly flip-equivariant would give 0 everywhere: the map measures where the prediction depends on the
orientation of the input. Pixel map = sum of U_t over the window, score = its sum over pixels.
Extra NFEs per sample: 1 per window step (the flipped input; the plain prediction is the sampler's).

Deviations of the public code (scheduling_ddim_flip.py), available as options: it flips `dims=[2]`, which for
[B,C,H,W] is the HEIGHT axis (a vertical flip: axis = "vertical"), and it feeds the flipped predicted clean image
x0_hat = clip((x_t - s_t eps) / a_t, -1, 1) to the network at timestep t instead of the state x_t (input =
"x0_hat"): U_t = (eps - F(eps_theta(F(x0_hat), t)))^2. Defaults follow the issue's definition (horizontal flip
of x_t); `axis = "vertical", input = "x0_hat"` reproduces the public code.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from benchmark.errors import ConfigError
from estimators.base import validate_window
from estimators.registry import register
from estimators.windowed import WindowedVarianceEstimator, validate_flag

if TYPE_CHECKING:
    from benchmark.models.base import DiffusionModel
    from benchmark.sampling.context import StepContext


AXES = {"horizontal": -1, "vertical": -2}
INPUTS = ("x_t", "x0_hat")


def hflip(x: torch.Tensor, axis: str = "horizontal") -> torch.Tensor:
    """Flip of [B,C,H,W]: "horizontal" reverses the width axis, "vertical" the height axis."""
    return torch.flip(x, dims=(AXES[axis],))


def flip_disagreement(model: "DiffusionModel", x_t: torch.Tensor, eps: torch.Tensor, t: int,
                      y: torch.Tensor | None = None, axis: str = "horizontal", source: torch.Tensor | None = None
                      ) -> torch.Tensor:
    """U_t = (eps - F(eps_theta(F(z), t)))^2 [B,C,H,W], z = x_t (or `source`, e.g. x0_hat), one call of B rows."""
    z = x_t if source is None else source
    return (eps - hflip(model.eps(hflip(z, axis), t, y), axis)).pow(2)


@register("flip")
class FlipEstimator(WindowedVarianceEstimator):
    """Flip-TTA disagreement on the steps of `window`; pixel map and score summed over them.

    Args:
        window: half-open window of step indices of a 50-step run, scaled to other step counts
            ((45, 49) = steps 45..48, the window of `sensitivity`).
        axis: "horizontal" (default) or "vertical" (what the public code's dims=[2] flips).
        input: "x_t" (default: flip the state) or "x0_hat" (public code: the clipped predicted clean image).
        keep_steps: keep the per-step maps {t: U_t}.
    """

    kind = "heuristic"
    reference_row = False
    nfe_formula = "1 x window steps"
    paper = "De Vita & Belagiannis, WACV 2025: public-code baseline (flip TTA)"
    needs = "eps only"

    def __init__(self, window: tuple[int, int] = (45, 49), axis: str = "horizontal", input: str = "x_t",
                 keep_steps: bool = False) -> None:
        # no Monte-Carlo draws: the base class's `m` does not apply, so its constructor is not used
        self.window = validate_window(window)
        if axis not in AXES:
            raise ConfigError("axis", axis, f"one of {', '.join(AXES)}", "the public code's dims=[2] is 'vertical'")
        if input not in INPUTS:
            raise ConfigError("input", input, f"one of {', '.join(INPUTS)}", "the public code flips 'x0_hat'")
        self.axis, self.input = axis, input
        self.keep_steps = validate_flag(keep_steps, "keep_steps")

    def step_variance(self, step: "StepContext") -> torch.Tensor:
        source = None
        if self.input == "x0_hat":
            a, s = math.sqrt(step.ab_t), math.sqrt(1.0 - step.ab_t)
            source = ((step.x_t - s * step.eps) / a).clamp(-1.0, 1.0)
        return flip_disagreement(step.model, step.x_t, step.eps, step.t, step.y, self.axis, source)


__all__ = ["AXES", "FlipEstimator", "INPUTS", "flip_disagreement", "hflip"]
