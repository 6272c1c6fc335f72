"""The flow's per-pixel contraction on BayesDiff-Skip's skipped steps (owned by estimators/bayesdiff.py).

A skipped step x_prev = k x_t + c eps_eff(x_t) + n z carries the variance of x_t through the linearised update,
    Var[x_prev] = (k + c J_t)^2 Var[x_t] + n^2,        J_t = d eps_eff / d x_t (diagonal, per pixel).
J_t is not measured on a skipped step (no draws there). It is carried from the last uncertainty step u, where
the Monte-Carlo regression of eps on the draws gives the slope J_u = Cov(x_u, eps_u) / Var[x_u] per pixel, by a
per-pixel Gaussian model of the data, x_0 ~ N(m, rho): its exact score has
    eps*(x_t) = s_t (x_t - a_t m) / (a_t^2 rho + s_t^2),   J_t = s_t / (a_t^2 rho + s_t^2),
so the slope at u fixes rho, through the signal fraction r = a_u^2 rho / (a_u^2 rho + s_u^2) = 1 - s_u J_u
(clamped to [0, 1]), and then J at every later time (`gaussian_eps_slope`, no division by zero at r = 0 or 1):
    J_t = s_t ab_u (1 - r) / (ab_t (1 - ab_u) r + (1 - ab_t) ab_u (1 - r)).
This is exact for Gaussian data (the closed-form test), reproduces J_u at t = u, and is what the posterior
mean's Tweedie derivative dE[x_0 | x_t]/dx_t = a_t Var[x_0 | x_t] / s_t^2 gives when Var[x_0 | x_t] follows
the Gaussian law between u and t. Plainly reusing J_u instead is wrong by the change of J_t with t, which is
fast at the end of sampling (J_t ~ s_t / rho as s_t -> 0). Before the first measured slope (V = 0 at step 0,
so no draws) r = 0: J_t = 1/s_t, the x0 prediction held constant, k + c/s_t = s_prev/s_t on DDIM; its error is
O(a_t^2 rho / s_t^2): below 3e-4 rho on steps 1-4 of 50 DDIM steps on the T = 1000 linear schedule.
DPM-Solver-2: the slope of eps_eff = (1 - w) eps(x, t) + w eps(u, t_mid), u = mx x + me eps(x, t), is
    J_eff = (1 - w) J_t + w J_mid (mx + me J_t)
with J_t, J_mid from the same rho (ab_mid = mx^2 ab_t); r is found from a measured J_eff by bisection.
"""
from __future__ import annotations

import torch

from benchmark.sampling.schedule import GridStep

BISECTION_STEPS = 40  # r in [0, 1] to 2^-40


def gaussian_eps_slope(signal_fraction: torch.Tensor, ab_ref: float, ab_t: float) -> torch.Tensor:
    """J_t = d eps*/dx_t [same shape as r] of Gaussian data whose signal fraction at ab_ref is r (module doc)."""
    r = signal_fraction
    numerator = (1.0 - ab_t) ** 0.5 * ab_ref * (1.0 - r)
    return numerator / (ab_t * (1.0 - ab_ref) * r + (1.0 - ab_t) * ab_ref * (1.0 - r))


def effective_slope(grid: GridStep, signal_fraction: torch.Tensor, ab_ref: float) -> torch.Tensor:
    """d eps_eff / d x_t of the step `grid` under the Gaussian model: J_t, or DPM-Solver-2's J_eff (module doc)."""
    slope = gaussian_eps_slope(signal_fraction, ab_ref, grid.ab_t)
    if grid.t_mid is None:
        return slope
    slope_mid = gaussian_eps_slope(signal_fraction, ab_ref, grid.mid_x_coef**2 * grid.ab_t)
    w = grid.mid_weight
    return (1.0 - w) * slope + w * slope_mid * (grid.mid_x_coef + grid.mid_eps_coef * slope)


def signal_fraction_from_slope(grid: GridStep, slope: torch.Tensor) -> torch.Tensor:
    """r in [0, 1] at ab_ref = grid.ab_t with effective_slope(grid, r, ab_t) = measured slope [B,C,H,W].

    DDIM / DDPM: r = clamp(1 - s_t J, 0, 1). DPM-Solver-2: bisection on [0, 1] (J_eff falls from J_eff(0) to 0
    as r goes from 0 to 1; slopes outside that range give 0 or 1)."""
    if grid.t_mid is None:
        return (1.0 - (1.0 - grid.ab_t) ** 0.5 * slope).clamp(0.0, 1.0)
    low, high = torch.zeros_like(slope), torch.ones_like(slope)
    for _ in range(BISECTION_STEPS):
        middle = 0.5 * (low + high)
        above = effective_slope(grid, middle, grid.ab_t) > slope  # the root lies at a larger r
        low, high = torch.where(above, middle, low), torch.where(above, high, middle)
    return 0.5 * (low + high)


def rebase_signal_fraction(signal_fraction: torch.Tensor, ab_ref: float, ab_new: float) -> torch.Tensor:
    """The same Gaussian model's signal fraction at ab_new: r' = a'^2 rho / (a'^2 rho + s'^2) = 1 - s' J'."""
    return (1.0 - (1.0 - ab_new) ** 0.5 * gaussian_eps_slope(signal_fraction, ab_ref, ab_new)).clamp(0.0, 1.0)


def flow_contraction(grid: GridStep, signal_fraction: torch.Tensor, ab_ref: float) -> torch.Tensor:
    """k + c J_eff [B,C,H,W]: d x_prev / d x_t of the step's deterministic part, per pixel."""
    c = grid.coefficients
    return c.x_coef + c.eps_coef * effective_slope(grid, signal_fraction, ab_ref)
