"""`zigzag`: the public code's "zigzag" variant of the sensitivity estimator (De Vita & Belagiannis).

Public code: Michedev/diffusion-uncertainty, schedulers_uncertainty/scheduling_ddim_uncertainty_zigzag_centered.py
(`uncertainty_zigzag_centered`). At a step t of the window, with a = sqrt(ab_t), s = sqrt(1 - ab_t),
eps = eps_theta(x_t, t) and x0_hat = (x_t - s eps) / a (clipped to [-1, 1], the scheduler's clip_sample):
for every copy m = 1..M, starting from z_m^0 = x0_hat, repeat j = 1..Z (Z = num_zigzag):
    x_m^j   = a z_m^{j-1} + s n_{m,j},   n_{m,j} ~ N(0, I)       (re-noise to the SAME t)
    e_m^j   = eps_theta(x_m^j, t)                                 (denoise ...)
    z_m^j   = (x_m^j - s e_m^j) / a                               (... back to a predicted x0; not clipped)
and keep the last prediction e_m = e_m^Z. Then
    center="prediction" (public code):  U_t = 1/M sum_m (e_m - eps)^2
    center="mean" (as Alg. 1):          U_t = 1/(M-1) sum_m (e_m - e_bar)^2
With Z = 1 it is exactly `sensitivity` (Alg. 1). Pixel map = sum of U_t over the window, score = its sum.
Extra NFEs per sample: M x Z per window step (Z batched calls of M*B rows).

Defaults are the public code's where the paper is silent: M = 5, window = steps 40..49 of 50 (README example
`-M 5 --start-step-uc 40 --num-steps-uc 10`), num_zigzag = 3 (the CLI default; the scheduler class default is
4), centred on the prediction, x0_hat clipped. Deviation: the public scheduler hard-codes `predict_next = True`,
which re-noises the *previous sample* x_{t-1} with the single training beta_t on every zigzag pass, so every
pass starts from the same state and only the last evaluation is kept (the zigzag loop has no effect there);
here the documented intent (the `predict_next = False` branch) is implemented: each pass starts from the
previous pass's predicted x0.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from benchmark.errors import ConfigError
from estimators.registry import register
from estimators.sensitivity import validate_center
from estimators.windowed import WindowedVarianceEstimator, sample_variance, unstack_copies, validate_flag

if TYPE_CHECKING:
    from benchmark.models.base import DiffusionModel
    from benchmark.sampling.context import StepContext


def centred_spread(draws: torch.Tensor, eps: torch.Tensor, center: str) -> torch.Tensor:
    """[M,B,C,H,W] -> [B,C,H,W]: unbiased variance ("mean") or mean squared deviation from eps ("prediction")."""
    if validate_center(center) == "mean":
        return sample_variance(draws)
    return (draws - eps.unsqueeze(0)).pow(2).mean(dim=0)


def zigzag_variance(model: "DiffusionModel", x_t: torch.Tensor, eps: torch.Tensor, t: int, ab_t: float,
                    noise: torch.Tensor, center: str = "prediction", clip_x0: bool = True,
                    y: torch.Tensor | None = None) -> torch.Tensor:
    """U_t [B,C,H,W] of the zigzag estimator (module doc) for x_t, eps [B,C,H,W] and noise n [Z,M,B,C,H,W]."""
    zigzags, m = noise.shape[0], noise.shape[1]
    a, s = math.sqrt(ab_t), math.sqrt(1.0 - ab_t)
    x0_hat = (x_t - s * eps) / a
    if clip_x0:
        x0_hat = x0_hat.clamp(-1.0, 1.0)
    z = x0_hat.unsqueeze(0).expand(m, *x0_hat.shape)  # [M,B,C,H,W]
    labels = None if y is None else y.repeat(m)
    e = z
    for j in range(zigzags):
        x = a * z + s * noise[j]
        e = unstack_copies(model.eps(x.reshape(-1, *x_t.shape[1:]), t, labels), m)
        z = (x - s * e) / a
    return centred_spread(e, eps, center)


@register("zigzag")
class ZigzagEstimator(WindowedVarianceEstimator):
    """Zigzag sensitivity on the steps of `window`; pixel map and score summed over them.

    Args:
        m: copies per step (>= 2).
        num_zigzag: re-noise / denoise passes per copy (>= 1; 1 = `sensitivity`).
        window: half-open window of step indices of a 50-step run (public example: (40, 50)).
        center: "prediction" (public code) or "mean" (unbiased variance, as Alg. 1).
        clip_x0: clip the first x0_hat to [-1, 1] (public scheduler default).
        keep_steps: keep the per-step maps {t: U_t}.
    """

    kind = "aleatoric"
    reference_row = False
    nfe_formula = "m x num_zigzag x window steps"
    paper = "De Vita & Belagiannis, WACV 2025: public-code zigzag variant"
    needs = "eps only"

    def __init__(self, m: int = 5, num_zigzag: int = 3, window: tuple[int, int] = (40, 50),
                 center: str = "prediction", clip_x0: bool = True, keep_steps: bool = False) -> None:
        super().__init__(m=m, window=window, keep_steps=keep_steps)
        if not isinstance(num_zigzag, int) or isinstance(num_zigzag, bool) or num_zigzag < 1:
            raise ConfigError("num_zigzag", num_zigzag, "an integer >= 1 (1 = plain sensitivity)")
        self.num_zigzag = num_zigzag
        self.center = validate_center(center)
        self.clip_x0 = validate_flag(clip_x0, "clip_x0")

    def step_variance(self, step: "StepContext") -> torch.Tensor:
        shape = step.x_t.shape[1:]
        draws = step.randn(self.stream, (self.num_zigzag, self.m, *shape))  # [B,Z,M,C,H,W]
        noise = draws.permute(1, 2, 0, *range(3, draws.ndim))  # [Z,M,B,C,H,W]
        return zigzag_variance(step.model, step.x_t, step.eps, step.t, step.ab_t, noise,
                               center=self.center, clip_x0=self.clip_x0, y=step.y)


__all__ = ["ZigzagEstimator", "centred_spread", "zigzag_variance"]
