"""`noise_perturbation`: the generic input-perturbation sensitivity that De Vita & Belagiannis argue against.

The generic test-time sensitivity of a regressor: perturb its input with isotropic Gaussian noise of a fixed
scale and take the spread of the outputs. At a step t of the window, for i = 1..M with n_i ~ N(0, I):
    P_i(x_t) = x_t + sigma n_i                                            (the perturbation)
    U_t      = 1/(M-1) sum_i (e_i - e_bar)^2,  e_i = eps_theta(P_i(x_t), t)   (unbiased, per pixel)
Unlike `sensitivity` (De Vita & Belagiannis, Alg. 1: re-noise the predicted x0 to the SAME t, i.e. move along
the forward process), the perturbation ignores the noise level of x_t: comparing the two shows what the
diffusion-specific re-noising buys. Pixel map = sum of U_t over the window, score = its sum over pixels.
Closed form (tests): for data N(mu, s^2 I), eps(x) = c (x - a_t mu) with c = s_t / v_t, so U_t is
(c sigma)^2 times the unbiased variance of the draws n_i, and E[U_t] = (c sigma)^2.
Extra NFEs per sample: M per window step (one batched call of M*B rows).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from benchmark.errors import ConfigError
from estimators.registry import register
from estimators.windowed import WindowedVarianceEstimator, sample_variance, unstack_copies

if TYPE_CHECKING:
    from benchmark.models.base import DiffusionModel
    from benchmark.sampling.context import StepContext


def perturbation_variance(model: "DiffusionModel", x_t: torch.Tensor, t: int, sigma: float, noise: torch.Tensor,
                          y: torch.Tensor | None = None) -> torch.Tensor:
    """U_t [B,C,H,W] = unbiased Var_i eps_theta(x_t + sigma n_i, t) for x_t [B,C,H,W], noise n [M,B,C,H,W]."""
    m = noise.shape[0]
    perturbed = (x_t.unsqueeze(0) + sigma * noise).reshape(-1, *x_t.shape[1:])  # copy-major [M*B,C,H,W]
    labels = None if y is None else y.repeat(m)
    return sample_variance(unstack_copies(model.eps(perturbed, t, labels), m))


@register("noise_perturbation")
class NoisePerturbationEstimator(WindowedVarianceEstimator):
    """Variance of eps under Gaussian input perturbations of scale `sigma` on the steps of `window`.

    Args:
        m: perturbed copies per step (>= 2).
        sigma: perturbation scale in data units ([-1, 1] images); > 0.
        window: half-open window of step indices of a 50-step run (as `sensitivity`: (45, 49)).
        keep_steps: keep the per-step maps {t: U_t}.
    Draws are seeded per sample by (seed, sample index, step), so maps do not depend on the batch.
    """

    kind = "aleatoric"
    reference_row = False
    nfe_formula = "m x window steps"
    paper = "generic input-perturbation sensitivity (baseline argued against by De Vita & Belagiannis)"
    needs = "eps only"

    def __init__(self, m: int = 5, sigma: float = 0.1, window: tuple[int, int] = (45, 49),
                 keep_steps: bool = False) -> None:
        super().__init__(m=m, window=window, keep_steps=keep_steps)
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not math.isfinite(sigma) or sigma <= 0:
            raise ConfigError("sigma", sigma, "a finite number > 0 (perturbation scale in data units)",
                              "set sigma = 0.1 (a scale of [-1, 1] images)")
        self.sigma = float(sigma)

    def step_variance(self, step: "StepContext") -> torch.Tensor:
        noise = step.randn(self.stream, (self.m, *step.x_t.shape[1:])).transpose(0, 1)  # [M,B,C,H,W]
        return perturbation_variance(step.model, step.x_t, step.t, self.sigma, noise, step.y)


__all__ = ["NoisePerturbationEstimator", "perturbation_variance"]
