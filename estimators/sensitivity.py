"""`sensitivity`: pixel-wise aleatoric uncertainty by re-noising the predicted x0 (De Vita & Belagiannis, Alg. 1).

Notation: ab_t = alphas_cumprod[t], a_t = sqrt(ab_t), s_t = sqrt(1 - ab_t).
At a step t of the sampler, with eps = eps_theta(x_t, t):
    x0_hat  = (x_t - s_t eps) / a_t                          (Eq. 7; optionally clipped to [-1, 1])
    x_t^i   = a_t x0_hat + s_t n_i,  n_i ~ N(0, I), i = 1..M  (Eq. 2: re-noise to the SAME t)
    U_t     = Var_i eps_theta(x_t^i, t)                       (Alg. 1 line 9, Eq. 8), per pixel
The M re-noised copies go through the network as one batched call (M NFEs per sample per step).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from benchmark.errors import ConfigError
from estimators.registry import register
from estimators.windowed import WindowedVarianceEstimator, sample_variance, unstack_copies, validate_flag

if TYPE_CHECKING:
    from benchmark.models.base import DiffusionModel
    from benchmark.sampling.context import StepContext

CENTERS = ("mean", "prediction")


def validate_center(center: object, field_name: str = "center") -> str:
    if center not in CENTERS:
        raise ConfigError(field_name, center, f"one of {', '.join(repr(c) for c in CENTERS)}",
                          "'mean' is the paper's Alg. 1, 'prediction' the public code's deviation from eps(x_t)")
    return str(center)


def renoised_copies(x_t: torch.Tensor, eps: torch.Tensor, ab_t: float, noise: torch.Tensor,
                    clip_x0: bool = False) -> torch.Tensor:
    """x_t^i = a_t x0_hat + s_t n_i with x0_hat = (x_t - s_t eps) / a_t (Eq. 7 and Eq. 2).

    x_t, eps [B,C,H,W]; noise [M,B,C,H,W]; returns [M,B,C,H,W]. Differentiable in x_t and eps.
    """
    a_t, s_t = math.sqrt(ab_t), math.sqrt(1.0 - ab_t)
    x0_hat = (x_t - s_t * eps) / a_t
    if clip_x0:
        x0_hat = x0_hat.clamp(-1.0, 1.0)
    return a_t * x0_hat.unsqueeze(0) + s_t * noise


def sensitivity_variance(
    model: "DiffusionModel",
    x_t: torch.Tensor,
    eps: torch.Tensor,
    t: int,
    ab_t: float,
    noise: torch.Tensor,
    center: str = "mean",
    clip_x0: bool = False,
    y: torch.Tensor | None = None,
) -> torch.Tensor:
    """U_t [B,C,H,W] of Alg. 1 for the states x_t [B,C,H,W] with predictions eps [B,C,H,W].

    noise [M,B,C,H,W] are the re-noising draws n_i; y [B] the class labels (None if unconditional).
    With e_i = eps_theta(x_t^i, t) (one batched network call of M*B rows):
      center="mean" (paper, Eq. 8 / Alg. 1):  U_t = 1/(M-1) sum_i (e_i - e_bar)^2,  e_bar = 1/M sum_i e_i.
          Eq. 8 writes the unnormalised scatter diag((E - E_bar)^T (E - E_bar)) and Alg. 1 line 9 calls it
          Var; we use the unbiased sample variance (Bessel-corrected), so that E[U_t] is the variance of
          eps_theta(x_t^i, t) for any M. It differs from Eq. 8 by the constant 1/(M-1): rankings and
          filtering at a fixed M are unchanged.
      center="prediction" (public code "uncertainty_centered"):  U_t = 1/M sum_i (e_i - eps)^2,
          the mean squared deviation from the prediction eps = eps_theta(x_t, t) itself.
    Differentiable in eps and x_t (used by uncertainty-guided sampling, Alg. 2).
    """
    center = validate_center(center)
    m = noise.shape[0]
    if noise.shape[1:] != x_t.shape or eps.shape != x_t.shape:
        raise ConfigError("noise", tuple(noise.shape), f"[M, *x_t.shape] = [M, {', '.join(map(str, x_t.shape))}] "
                          f"with eps of shape {tuple(x_t.shape)}")
    copies = renoised_copies(x_t, eps, ab_t, noise, clip_x0)  # [M,B,C,H,W]
    labels = None if y is None else y.repeat(m)
    e = unstack_copies(model.eps(copies.reshape(-1, *x_t.shape[1:]), t, labels), m)  # [M,B,C,H,W]
    if center == "mean":
        return sample_variance(e)
    return (e - eps.unsqueeze(0)).pow(2).mean(dim=0)


@register("sensitivity")
class SensitivityEstimator(WindowedVarianceEstimator):
    """Alg. 1 of De Vita & Belagiannis on the steps of `window`; pixel map and score summed over them.

    Args:
        m: re-noised copies per step (paper: 5).
        window: half-open window of step indices of a 50-step run (paper: (45, 49) = steps 45..48),
            scaled to other step counts.
        center: "mean" (paper: unbiased variance around the MC mean) or "prediction" (public code: mean
            squared deviation from eps(x_t)); see `sensitivity_variance`.
        clip_x0: clip x0_hat to [-1, 1] before re-noising (public code default; the paper does not).
        keep_steps: keep the per-step maps {t: U_t} (the paper's Fig. 3).
    Draws n_i are seeded per sample by (seed, sample index, step), so maps do not depend on the batch.
    For DPM-Solver-2, x0_hat uses the first-stage prediction eps_theta(x_t, t) (Alg. 1 line 3).
    """

    kind = "aleatoric"

    def __init__(self, m: int = 5, window: tuple[int, int] = (45, 49), center: str = "mean",
                 clip_x0: bool = False, keep_steps: bool = False) -> None:
        super().__init__(m=m, window=window, keep_steps=keep_steps)
        self.center = validate_center(center)
        self.clip_x0 = validate_flag(clip_x0, "clip_x0")

    def step_variance(self, step: "StepContext") -> torch.Tensor:
        noise = step.randn(self.stream, (self.m, *step.x_t.shape[1:])).transpose(0, 1)  # [M,B,C,H,W]
        return sensitivity_variance(step.model, step.x_t, step.eps, step.t, step.ab_t, noise,
                                    center=self.center, clip_x0=self.clip_x0, y=step.y)


__all__ = ["CENTERS", "SensitivityEstimator", "renoised_copies", "sensitivity_variance", "validate_center"]
