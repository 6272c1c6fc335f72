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

Thresholds. The paper's experiments threshold with a fixed step-wise value (Alg. 2's tau_t: the 95th
percentile of U_t over 10,000 plain samples); `thresholds={t: tau_t}` takes such values and
`calibrate_thresholds` computes them (the p-th percentile, numpy's linear interpolation, of all pixels of U_t
over a calibration pass of plain samples, at every guided step, with the guidance's own draws). The default is
the per-image percentile (mask = the top 100 - p % of each image's pixels).

Why center="mean" barely moves anything (second order). With e_i = eps(x_t^i), x_t^i = x_t - s_t eps + s_t n_i
and J_i = d eps / dx at x_t^i:
    center="mean":        dU/d eps = -2 s_t / (M - 1) sum_i (e_i - e_bar) J_i = -2 s_t / (M - 1) sum_i (e_i - e_bar)(J_i - J_bar)
(the deviations e_i - e_bar sum to zero, so any Jacobian common to the copies drops out): the gradient is the
product of two deviations over the M copies, of the spread of eps and of the change of the Jacobian across
it, and vanishes exactly where eps is affine in x (a single Gaussian). With center="prediction"
    U = 1/M sum_i (e_i - eps)^2,   dU/d eps = -2/M sum_i (e_i - eps)(1 + s_t J_i)
is first order in the offset e_i - eps. An audit at lambda = 1 measured Delta U = 5.9e-8 (mean) vs 9.5e-4
(prediction); the guided protocol reports the mean |Delta x0| the guidance causes next to the FID change.
The guidance's extra network calls (M per sample per guided step) are counted as the "guidance" NFEs
(`SampleResult.guidance_nfe`); the backward passes are not NFEs but are in `guidance_seconds`.

Placebo (`PlaceboGuidance`). Guided sampling costs M extra calls per guided step and changes eps wherever the
mask is on, so "guided vs plain" cannot tell the uncertainty map's contribution from that of perturbing eps at
all. The placebo runs the same procedure (same x_T, same U_t and g with the same draws, hence the same NFEs, the
same lambda and the same number of guided pixels per image) with the mask moved to random pixels:
    mask_placebo[b] = pi_b(mask[b]),   eps_hat = eps + lambda * mask_placebo * g
pi_b a uniformly random permutation of image b's C*H*W pixels (argsort of N(0, 1) keys drawn per (seed, sample
index, step) from PLACEBO_STREAM), so mask_placebo[b] is a uniformly random set of exactly |mask[b]| pixels that
carries no information from U_t. "Guided vs placebo" is the uncertainty map's own effect.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

import numpy as np
import torch

from benchmark.errors import ConfigError
from estimators.base import EstimatorResult, UncertaintyEstimator, validate_m, validate_window
from estimators.sensitivity import sensitivity_variance, validate_center
from estimators.windowed import validate_flag, window_steps

if TYPE_CHECKING:
    from benchmark.models.base import DiffusionModel
    from benchmark.sampling.context import StepContext


NOISE_STREAM = "uncertainty-guidance"
PLACEBO_STREAM = "uncertainty-guidance-placebo"


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

    def noise(self, ctx: "StepContext") -> torch.Tensor:
        """The re-noising draws n_i [M,B,C,H,W] of this step, seeded by (seed, sample index, step)."""
        return ctx.randn(NOISE_STREAM, (self.m, *ctx.x_t.shape[1:])).transpose(0, 1)

    def uncertainty(self, ctx: "StepContext") -> torch.Tensor:
        """U_t [B,C,H,W] as `step` computes it (same draws), without the gradient (threshold calibration)."""
        return sensitivity_variance(ctx.model, ctx.x_t, ctx.eps, ctx.t, ctx.ab_t, self.noise(ctx),
                                    center=self.center, clip_x0=self.clip_x0, y=ctx.y)

    def step(self, ctx: "StepContext") -> GuidanceStep:
        """U_t, the mask and dU/deps at this step (M network calls per sample, counted by the caller)."""
        u, grad = uncertainty_and_gradient(ctx.model, ctx.x_t, ctx.eps, ctx.t, ctx.ab_t, self.noise(ctx),
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


def permuted_mask(mask: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """mask [B,C,H,W] (bool) with each image's pixels permuted: out[b].flatten()[j] = mask[b].flatten()[pi_b(j)],
    pi_b = argsort(keys[b]), keys [B, C*H*W]. Each image keeps its number of True pixels."""
    order = keys.argsort(dim=1)
    return mask.flatten(1).gather(1, order.to(mask.device)).view_as(mask)


class PlaceboGuidance:
    """Alg. 2 with a random mask of the same per-image size (module docstring: "Placebo"), as `guidance=`.

    Wraps the guidance it is the placebo of (any object with `step`, `active`, `window` and `strength`, e.g.
    UncertaintyGuidance): U_t, g and the NFEs are that guidance's; only the mask is permuted within each image.
    """

    def __init__(self, guidance: UncertaintyGuidance, stream: str = PLACEBO_STREAM) -> None:
        self.guidance, self.stream = guidance, str(stream)

    @property
    def window(self) -> tuple[int, int]:
        return self.guidance.window

    @property
    def strength(self) -> float:
        return self.guidance.strength

    def params(self) -> dict:
        return {**self.guidance.params(), "placebo": self.stream}

    def active(self, step_index: int, num_steps: int) -> bool:
        return self.guidance.active(step_index, num_steps)

    def step(self, ctx: "StepContext") -> GuidanceStep:
        """The wrapped guidance's step with mask_placebo = pi(mask) (same U_t and g, same network calls)."""
        g = self.guidance.step(ctx)
        keys = ctx.randn(self.stream, (g.mask[0].numel(),))  # [B, C*H*W], per (seed, sample index, step)
        return GuidanceStep(uncertainty=g.uncertainty, mask=permuted_mask(g.mask, keys), gradient=g.gradient)

    def guide(self, ctx: "StepContext") -> torch.Tensor:
        """eps_hat = eps + lambda * mask_placebo * g [B,C,H,W], detached (Eq. 10 with the placebo mask)."""
        g = self.step(ctx)
        return guided_eps(ctx.eps_eff, g.mask, g.gradient, self.strength).detach()


class _UncertaintyRecorder(UncertaintyEstimator):
    """Collects the guidance's U_t [B,C,H,W] on its guided steps during a plain (unguided) pass."""

    name = "_guidance_calibration"

    def __init__(self, guidance: UncertaintyGuidance) -> None:
        self.guidance = guidance
        self.maps: dict[int, list[torch.Tensor]] = {}

    def observe(self, step: "StepContext") -> None:
        if self.guidance.active(step.index, step.num_steps):
            self.maps.setdefault(step.t, []).append(self.guidance.uncertainty(step).detach().cpu())

    def result(self) -> EstimatorResult:
        zeros = torch.zeros(self.batch.size, *self.batch.sample_shape, device=self.batch.device)
        return EstimatorResult(pixel=zeros, score=zeros.flatten(1).sum(1))


def calibrate_thresholds(model: "DiffusionModel", guidance: UncertaintyGuidance, x_T: torch.Tensor, *,
                         sampler: str, steps: int, seed: int, indices: torch.Tensor, y: torch.Tensor | None = None,
                         batch_size: int = 100) -> dict[int, float]:
    """Alg. 2's step-wise thresholds {t: tau_t}: tau_t = the p-th percentile (p = guidance.percentile, numpy's
    linear interpolation) of U_t over every pixel of plain samples from x_T [N,C,H,W] (rows = `indices`), at
    every step the guidance acts on. U_t uses the guidance's own draws and options (center, clip_x0)."""
    from benchmark.sampling import sample

    recorder = _UncertaintyRecorder(guidance)
    for start in range(0, x_T.shape[0], batch_size):
        rows = slice(start, start + batch_size)
        sample(model, x_T[rows], sampler=sampler, steps=steps, seed=seed, indices=indices[rows],
               y=None if y is None else y[rows], estimators=[recorder])
    return {t: float(np.percentile(torch.cat(maps).double().numpy(), guidance.percentile))
            for t, maps in recorder.maps.items()}


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


__all__ = ["GuidanceStep", "PlaceboGuidance", "UncertaintyGuidance", "calibrate_thresholds", "guided_eps",
           "percentile_mask", "permuted_mask", "uncertainty_and_gradient"]
