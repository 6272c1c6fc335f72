"""Uncertainty-guided sampling (De Vita & Belagiannis, Alg. 2 / Eq. 10).

On a guided step t, with eps = eps_theta(x_t, t) and U_t(eps) the sensitivity map of Alg. 1 written as a
differentiable function of eps (`estimators.sensitivity.sensitivity_variance`):
    mask   = U_t > percentile_p(U_t)          per image (default p = 95: the top 5 % of pixels)
    g      = d (sum_pixels U_t) / d eps        [B,C,H,W]
    eps_hat = eps + lambda * mask * g          (Eq. 10; gradient ascent on the uncertainty, lambda = 1)
and the sampler's update uses eps_hat instead of eps.

What dU_t/deps means here: U_t is a map, so its derivative w.r.t. eps is a Jacobian; Eq. 10 multiplies it
element-wise with a mask, i.e. it uses a map. We take the gradient of the image's total uncertainty,
g_j = sum_k dU_k/deps_j (one backward pass, as the public code does). Through x0_hat the perturbed inputs
x_t^i = x_t - s_t eps + s_t n_i depend on eps, and the network couples pixels, so g_j also collects the
effect of eps_j on neighbouring pixels' uncertainty; the exact Jacobian diagonal would need one backward
pass per pixel. The public code averages U over the batch before the backward pass, which divides the
update by the batch size; we sum, so each image's update is independent of the batch it is in (images
do not interact in the network: no batch norm).

The paper's experiments threshold with a fixed step-wise value (the 95th percentile of U_t over 10,000
samples, Alg. 2's tau_t); `thresholds={t: tau_t}` reproduces that, the default is the per-image percentile.
The guidance's extra network calls (M per sample per guided step) are counted as the "guidance" NFEs
(`SampleResult.guidance_nfe`); the backward passes are not NFEs but are in `guidance_seconds`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

import torch

from benchmark.errors import ConfigError
from estimators.base import validate_m, validate_window
from estimators.sensitivity import sensitivity_variance, validate_center
from estimators.windowed import validate_flag, window_steps

if TYPE_CHECKING:
    from benchmark.models.base import DiffusionModel
    from benchmark.sampling.context import StepContext


@dataclass
class GuidanceStep:
    """One guided step: U_t [B,C,H,W], the guided pixels mask (bool) [B,C,H,W] and g = dU/deps [B,C,H,W]."""

    uncertainty: torch.Tensor
    mask: torch.Tensor
    gradient: torch.Tensor


def percentile_mask(uncertainty: torch.Tensor, percentile: float) -> torch.Tensor:
    """mask [B,C,H,W] (bool): U > the per-image p-th percentile of U (linear interpolation, as numpy).

    Strictly greater, so about (100 - p) % of each image's pixels; none for a constant map.
    """
    u = uncertainty.detach()
    if u.dtype not in (torch.float32, torch.float64):  # torch.quantile needs float32 / float64
        u = u.float()
    thresholds = torch.quantile(u.flatten(1), percentile / 100.0, dim=1)  # [B]
    return u > thresholds.view(-1, *([1] * (u.ndim - 1)))


def uncertainty_and_gradient(
    model: "DiffusionModel",
    x_t: torch.Tensor,
    eps: torch.Tensor,
    t: int,
    ab_t: float,
    noise: torch.Tensor,
    **options,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(U_t, g) [B,C,H,W] each: the sensitivity map and g = d(sum over each image's pixels of U_t)/d eps.

    x_t, eps [B,C,H,W]; noise [M,B,C,H,W]; `options` (center, clip_x0, y) and U_t as in `sensitivity_variance`.
    """
    with torch.enable_grad():
        eps_var = eps.detach().clone().requires_grad_(True)
        u = sensitivity_variance(model, x_t.detach(), eps_var, t, ab_t, noise, **options)
        (grad,) = torch.autograd.grad(u.sum(), eps_var)
    return u.detach(), grad.detach()


def guided_eps(eps: torch.Tensor, mask: torch.Tensor, gradient: torch.Tensor, strength: float) -> torch.Tensor:
    """Eq. 10: eps_hat = eps + lambda * mask * dU/deps, all [B,C,H,W]."""
    return eps + strength * (mask.to(eps.dtype) * gradient)


class UncertaintyGuidance:
    """Alg. 2 as the `guidance=` of `benchmark.sampling.sample`.

    Args:
        m: re-noised copies per guided step (>= 2).
        percentile: p in (0, 100); pixels with U_t above the per-image p-th percentile are guided.
        strength: lambda (finite; > 0 ascends the uncertainty as in the paper, 0 disables the update).
        window: half-open window of guided step indices of a 50-step run, scaled to other step counts.
        center, clip_x0: as for the `sensitivity` estimator.
        thresholds: optional fixed thresholds {diffusion timestep t: tau_t} (Alg. 2's step-wise tau)
            used instead of the per-image percentile.
    """

    def __init__(self, m: int = 5, percentile: float = 95.0, strength: float = 1.0,
                 window: tuple[int, int] = (45, 49), center: str = "mean", clip_x0: bool = False,
                 thresholds: Mapping[int, float] | None = None) -> None:
        self.m = validate_m(m)
        if isinstance(percentile, bool) or not isinstance(percentile, (int, float)) or not 0 < percentile < 100:
            raise ConfigError("percentile", percentile, "a number strictly between 0 and 100 (the paper uses 95)")
        self.percentile = float(percentile)
        if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not math.isfinite(strength):
            raise ConfigError("strength", strength, "a finite number (lambda of Eq. 10; the paper uses 1.0)")
        self.strength = float(strength)
        self.window = validate_window(window)
        self.center = validate_center(center)
        self.clip_x0 = validate_flag(clip_x0, "clip_x0")
        self.thresholds = _validate_thresholds(thresholds)

    def params(self) -> dict:
        return {"m": self.m, "percentile": self.percentile, "strength": self.strength, "window": self.window,
                "center": self.center, "clip_x0": self.clip_x0, "thresholds": self.thresholds}

    def active(self, step_index: int, num_steps: int) -> bool:
        """Whether step `step_index` of a `num_steps`-step run is guided."""
        return step_index in window_steps(self.window, num_steps)

    def step(self, ctx: "StepContext") -> GuidanceStep:
        """U_t, the mask and dU/deps at this step (M network calls per sample, counted by the caller)."""
        noise = ctx.randn("uncertainty-guidance", (self.m, *ctx.x_t.shape[1:])).transpose(0, 1)  # [M,B,C,H,W]
        u, grad = uncertainty_and_gradient(ctx.model, ctx.x_t, ctx.eps, ctx.t, ctx.ab_t, noise,
                                           center=self.center, clip_x0=self.clip_x0, y=ctx.y)
        if self.thresholds is None:
            mask = percentile_mask(u, self.percentile)
        elif ctx.t not in self.thresholds:
            raise ConfigError("thresholds", sorted(self.thresholds),
                              f"a threshold for every guided timestep (missing t = {ctx.t})")
        else:
            mask = u > self.thresholds[ctx.t]
        return GuidanceStep(uncertainty=u, mask=mask, gradient=grad)

    def guide(self, ctx: "StepContext") -> torch.Tensor:
        """eps_hat [B,C,H,W] that replaces ctx.eps_eff in the sampler's update (Eq. 10), detached.

        U_t is computed from the first-stage prediction eps_theta(x_t, t) (Alg. 1); the update is added to
        the prediction the sampler uses (the same tensor for DDIM and DDPM).
        """
        g = self.step(ctx)
        return guided_eps(ctx.eps_eff, g.mask, g.gradient, self.strength).detach()


def _validate_thresholds(thresholds: Mapping[int, float] | None) -> dict[int, float] | None:
    if thresholds is None:
        return None
    try:
        out = {int(t): float(v) for t, v in dict(thresholds).items()}
    except (TypeError, ValueError):
        raise ConfigError("thresholds", thresholds, "a mapping {diffusion timestep: threshold}") from None
    if not out or not all(math.isfinite(v) for v in out.values()):
        raise ConfigError("thresholds", thresholds, "a non-empty mapping of timesteps to finite thresholds")
    return out


__all__ = ["GuidanceStep", "UncertaintyGuidance", "guided_eps", "percentile_mask", "uncertainty_and_gradient"]
