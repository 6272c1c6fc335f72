"""`tweedie_posterior_variance`: the denoiser's own posterior variance Var[x0 | x_t] from its Jacobian
(Manor & Michaeli, ICLR 2024, "On the Posterior Distribution in Denoising"; public code
HilaManor/GaussianDenoisingPosterior).

Notation: ab_t = alphas_cumprod[t], a_t = sqrt(ab_t), s_t = sqrt(1 - ab_t). With x_t = a_t x0 + s_t n, Tweedie's
formula gives x0_hat(x_t) = E[x0 | x_t] = (x_t + s_t^2 grad log p_t(x_t)) / a_t, and differentiating it once more
    Cov[x0 | x_t] = (s_t^2 / a_t) d x0_hat / d x_t                                              (M&M Eq. 4)
For a noise predictor, x0_hat = (x_t - s_t eps(x_t)) / a_t, so with J = d eps / d x_t
    Var[x0 | x_t]_i = (s_t^2 / a_t^2) (1 - s_t J_ii)                                               (per pixel)
It needs no training and is exact for an exact score (the Gaussian mixture's eps*). The diagonal of J comes from
Jacobian-vector products by torch.func (forward mode; exact derivatives, not finite differences):
`estimators.jacobian_diagonal`: Hutchinson with `probes` Rademacher probes. Its error per pixel is
sqrt(sum_{j != i} C_ij^2 / K) in Var[x0 | x_t] units (Eq. V with J = (I - a_t^2 / s_t^2 C) / s_t, C the posterior
covariance): nil where the posterior covariance is diagonal (late steps, one mode: the default window), large per
pixel where x_t lies between modes (a dense between-mode covariance), while the sum over pixels (the score) stays
close (Eq. T). Negative estimates (probe noise, or a learned network whose Jacobian is not
positive semi-definite) are clipped at 0. Pixel map and score are summed over the window's steps like
`sensitivity`; the probes are seeded per sample by (seed, sample index, step).

Cost in NFE-equivalents per sample and window step: a JVP counts 2 (the primal and the tangent pass): 2 probes
(default 16 probes: 32 per step, 128 over the default window of 4 steps).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch.func import jvp as forward_jvp

from benchmark.errors import CapabilityError
from benchmark.models.precision import autocast_off

from estimators.jacobian_diagonal import hutchinson_diagonal, rademacher_like
from estimators.registry import register
from estimators.base import validate_m
from estimators.windowed import WindowedVarianceEstimator, stack_copies, unstack_copies

if TYPE_CHECKING:
    from benchmark.models.base import DiffusionModel
    from benchmark.sampling.context import StepContext

JVP_COST = 2  # NFE-equivalents of one Jacobian-vector product per row (primal + tangent pass)


def tweedie_variance(jacobian_diagonal: torch.Tensor, ab_t: float) -> torch.Tensor:
    """Var[x0 | x_t] = (s_t^2 / a_t^2) (1 - s_t diag(d eps / d x_t)), clipped at 0 (module docstring)."""
    s_t = math.sqrt(1.0 - ab_t)
    return ((1.0 - ab_t) / ab_t * (1.0 - s_t * jacobian_diagonal)).clamp_min(0.0)


#: rows per forward-mode call: the K probes of a batch of B states go through the network in chunks of at most
#: max(1, JVP_ROWS // B) probes (16 probes x 100 states in one call took 12 GB per process on the fashion UNet)
JVP_ROWS = 128


def eps_jvp(model: "DiffusionModel", x_t: torch.Tensor, t: int, y: torch.Tensor | None):
    """V [K,B,C,H,W] -> J V for J = d eps / d x_t at x_t [B,C,H,W]: forward-mode calls (torch.func.jvp) of at most
    JVP_ROWS rows each (chunks of probes), counted as JVP_COST NFE-equivalents per row."""

    def jvp(vectors: torch.Tensor) -> torch.Tensor:
        chunk = max(1, JVP_ROWS // x_t.shape[0])
        return torch.cat([_jvp_chunk(model, x_t, t, y, part) for part in vectors.split(chunk)])

    return jvp


def _jvp_chunk(model: "DiffusionModel", x_t: torch.Tensor, t: int, y: torch.Tensor | None,
               vectors: torch.Tensor) -> torch.Tensor:
    k = vectors.shape[0]
    x = stack_copies(x_t, k)
    labels = None if y is None else y.repeat(k)
    # under grad mode: without it the CPU kernel picked for group norm has no forward-mode derivative (the autograd
    # graph this records is freed with the call, and JVP_ROWS bounds its size); in float32 under any run.autocast
    try:
        with torch.enable_grad(), autocast_off(model):
            _, tangent = forward_jvp(lambda z: model.eps(z, t, labels), (x,), (vectors.reshape(x.shape),))
    except NotImplementedError as err:  # e.g. diffusers attention: torch's CPU attention kernels have no forward AD
        raise CapabilityError(f"tweedie_posterior_variance needs forward-mode derivatives (torch.func.jvp) through the "
                              f"network, and an operation of this model has none ({str(err).splitlines()[0][:120]}). "
                              "Fix: use a network without attention layers, or remove the estimator") from None
    model.count_rows((JVP_COST - 1) * x.shape[0])
    return unstack_copies(tangent.detach(), k)


def posterior_variance(model: "DiffusionModel", x_t: torch.Tensor, t: int, ab_t: float, probes: torch.Tensor,
                       y: torch.Tensor | None = None) -> torch.Tensor:
    """Var[x0 | x_t] [B,C,H,W] at the states x_t [B,C,H,W] from Rademacher probes [K,B,C,H,W]."""
    return tweedie_variance(hutchinson_diagonal(eps_jvp(model, x_t, t, y), probes), ab_t)


@register("tweedie_posterior_variance")
class TweediePosteriorVariance(WindowedVarianceEstimator):
    """Var[x0 | x_t] of the denoiser on the steps of `window`; pixel map and score summed over them.

    Args:
        probes: Rademacher probes per step (>= 2).
        window: half-open window of step indices of a 50-step run (default the paper setting of `sensitivity`).
        keep_steps: keep the per-step maps {t: Var[x0 | x_t]}.
    """

    kind = "aleatoric"
    paper = "Manor & Michaeli, ICLR 2024 (Tweedie: Cov[x0 | x_t] = s_t^2 / a_t d x0_hat / d x_t)"
    needs = "eps only (Jacobian-vector products by torch.func through the network)"
    nfe_formula = "2 x probes x window steps (a JVP counts 2 NFE-equivalents)"

    def __init__(self, probes: int = 16, window: tuple[int, int] = (45, 49), keep_steps: bool = False) -> None:
        super().__init__(m=validate_m(probes, "probes"), window=window, keep_steps=keep_steps)
        self.probes = self.m

    def step_variance(self, step: "StepContext") -> torch.Tensor:
        draws = step.randn(self.stream, (self.probes, *step.x_t.shape[1:])).transpose(0, 1)  # [K,B,C,H,W]
        return posterior_variance(step.model, step.x_t, step.t, step.ab_t, rademacher_like(draws), step.y)


__all__ = ["JVP_COST", "TweediePosteriorVariance", "eps_jvp", "posterior_variance", "tweedie_variance"]
