"""Timestep grids and the per-step linear coefficients of each sampler, as pure functions.

Every step is written as  x_prev = x_coef * x_t + eps_coef * eps_eff + noise_std * z,  z ~ N(0, I),
where eps_eff is the noise prediction that enters the update (eps(x_t, t) for DDIM / DDPM, the
midpoint prediction combination for DPM-Solver-2). Estimators read these coefficients to propagate
moments; nothing recomputes them elsewhere.
Notation: ab_t = alphas_cumprod[t], a_t = sqrt(ab_t), s_t = sqrt(1 - ab_t).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
import torch

from benchmark.errors import ConfigError

SAMPLERS = ("ddim", "ddpm", "dpm2")


@dataclass(frozen=True)
class StepCoefficients:
    """x_prev = x_coef * x_t + eps_coef * eps_eff + noise_std * z."""

    x_coef: float
    eps_coef: float
    noise_std: float = 0.0


@dataclass(frozen=True)
class GridStep:
    """One step of a sampler grid: from timestep t to t_prev (-1 means the clean data, ab = 1).

    For DPM-Solver-2, t_mid is the intermediate timestep and mid_* the coefficients of the first stage
    u = mid_x_coef * x_t + mid_eps_coef * eps(x_t, t); the effective eps is
    eps_eff = (1 - 1/(2r)) eps(x_t, t) + 1/(2r) eps(u, t_mid).
    """

    index: int
    t: int
    t_prev: int
    ab_t: float
    ab_prev: float
    coefficients: StepCoefficients
    t_mid: int | None = None
    mid_x_coef: float = 0.0
    mid_eps_coef: float = 0.0
    mid_weight: float = 0.0  # 1/(2r)


def leading_timesteps(num_train_timesteps: int, steps: int) -> list[int]:
    """diffusers' "leading" spacing with steps_offset=0: [ (S-1)r, ..., r, 0 ] with r = T // S."""
    ratio = num_train_timesteps // steps
    return [i * ratio for i in reversed(range(steps))]


def linspace_timesteps(num_train_timesteps: int, num_points: int) -> list[int]:
    """diffusers' "linspace" spacing: round(linspace(0, T-1, n+1))[::-1][:-1] (n = num_points).

    Computed with numpy's float64 linspace as diffusers does: grid points that fall on k + 0.5 round
    differently when the linspace is evaluated in float32 or by torch (e.g. n = 26 for T = 1000).
    """
    grid = np.linspace(0, num_train_timesteps - 1, num_points + 1).round().astype(np.int64)
    return [int(v) for v in grid[::-1][:-1]]


def ddim_coefficients(ab_t: float, ab_prev: float) -> StepCoefficients:
    """DDIM (eta = 0), Song et al. 2021 Eq. 12: x_prev = (a_prev/a_t) x_t + (s_prev - (a_prev/a_t) s_t) eps."""
    k = math.sqrt(ab_prev / ab_t)
    return StepCoefficients(x_coef=k, eps_coef=math.sqrt(1.0 - ab_prev) - k * math.sqrt(1.0 - ab_t))


def ddpm_coefficients(ab_t: float, ab_prev: float) -> StepCoefficients:
    """DDPM ancestral step (Ho et al. 2020 Eq. 7, posterior q(x_prev | x_t, x0_hat), "fixed_small" variance).

    alpha = ab_t / ab_prev, beta = 1 - alpha, x0_hat = (x_t - s_t eps) / a_t;
    mean = sqrt(ab_prev) beta / (1 - ab_t) x0_hat + sqrt(alpha) (1 - ab_prev) / (1 - ab_t) x_t;
    var = (1 - ab_prev) / (1 - ab_t) beta.
    """
    alpha = ab_t / ab_prev
    beta = 1.0 - alpha
    c_x0 = math.sqrt(ab_prev) * beta / (1.0 - ab_t)
    c_xt = math.sqrt(alpha) * (1.0 - ab_prev) / (1.0 - ab_t)
    var = max((1.0 - ab_prev) / (1.0 - ab_t) * beta, 1e-20) if ab_prev < 1.0 else 0.0
    return StepCoefficients(
        x_coef=c_x0 / math.sqrt(ab_t) + c_xt,
        eps_coef=-c_x0 * math.sqrt(1.0 - ab_t) / math.sqrt(ab_t),
        noise_std=math.sqrt(var),
    )


def half_log_snr(ab: float) -> float:
    """lambda = log(a / s) = 0.5 * log(ab / (1 - ab))."""
    return 0.5 * math.log(ab / (1.0 - ab))


def build_grid(sampler: str, alphas_cumprod: torch.Tensor, steps: int) -> list[GridStep]:
    """The steps of `sampler` with `steps` steps on the training schedule `alphas_cumprod` [T]."""
    if sampler not in SAMPLERS:
        raise ConfigError("sampler", sampler, f"one of {', '.join(SAMPLERS)}")
    total = int(alphas_cumprod.numel())
    if (isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 1 or steps > total
            or (sampler == "dpm2" and 4 * steps > total)):
        raise ConfigError("steps", steps, f"an integer in [1, {total // (4 if sampler == 'dpm2' else 1)}]")
    steps = int(steps)
    ab = [float(v) for v in alphas_cumprod.to(torch.float64)]
    if sampler == "dpm2":
        return _dpm2_grid(ab, steps)
    times = leading_timesteps(total, steps)
    ratio = total // steps
    grid = []
    for i, t in enumerate(times):
        t_prev = t - ratio if t - ratio >= 0 else -1  # -1: the clean data, ab = 1 (set_alpha_to_one)
        ab_prev = ab[t_prev] if t_prev >= 0 else 1.0
        coef = ddim_coefficients(ab[t], ab_prev) if sampler == "ddim" else ddpm_coefficients(ab[t], ab_prev)
        grid.append(GridStep(i, t, t_prev, ab[t], ab_prev, coef))
    return grid


def _dpm2_grid(ab: list[float], steps: int) -> list[GridStep]:
    """Singlestep DPM-Solver-2 (Lu et al. 2022, Alg. 1 / Eq. 3.7 with noise prediction) on diffusers' grid.

    Matches diffusers' DPMSolverSinglestepScheduler(solver_order=2, algorithm_type="dpmsolver",
    solver_type="midpoint", final_sigmas_type="sigma_min", lower_order_final=False): the 2*steps
    "linspace" grid points pair up, each solver step goes s -> t with its intermediate point s1 on the grid,
    and the last step lands on timestep 0. With r = (lambda_s1 - lambda_s) / h, h = lambda_t - lambda_s:
        u   = (a_s1 / a_s) x - s_s1 (e^{r h} - 1) eps(x, s)
        x_t = (a_t / a_s) x - s_t (e^h - 1) [ (1 - 1/(2r)) eps(x, s) + 1/(2r) eps(u, s1) ]
    r is about 0.5 in timestep index; in lambda it follows the grid (diffusers' convention).
    """
    points = linspace_timesteps(len(ab), 2 * steps) + [0]
    grid = []
    for i in range(steps):
        s, s1, t = points[2 * i], points[2 * i + 1], points[2 * i + 2]
        lam_s, lam_s1, lam_t = half_log_snr(ab[s]), half_log_snr(ab[s1]), half_log_snr(ab[t])
        h = lam_t - lam_s
        r = (lam_s1 - lam_s) / h
        coef = StepCoefficients(math.sqrt(ab[t] / ab[s]), -math.sqrt(1 - ab[t]) * math.expm1(h))
        grid.append(GridStep(
            i, s, t, ab[s], ab[t], coef, t_mid=s1,
            mid_x_coef=math.sqrt(ab[s1] / ab[s]), mid_eps_coef=-math.sqrt(1 - ab[s1]) * math.expm1(lam_s1 - lam_s),
            mid_weight=1.0 / (2.0 * r)))
    return grid
