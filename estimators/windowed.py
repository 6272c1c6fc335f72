"""Shared machinery of per-step variance estimators that are active on a window of sampler steps.

Sensitivity (De Vita & Belagiannis, Alg. 1) and MC-Dropout both compute one uncertainty map U_t
[B,C,H,W] per step inside a window and aggregate them the same way (the paper's Sec. 4.1):
    pixel map  = sum_{t in window} U_t                      [B,C,H,W]
    score      = sum_{t in window} sum_{pixels} U_t          [B]
This module holds that bookkeeping, the window arithmetic (also used by uncertainty guidance) and the
Monte-Carlo variance both estimators use.
"""
from __future__ import annotations

import abc
from typing import TYPE_CHECKING

import torch

from benchmark.errors import ConfigError
from estimators.base import EstimatorResult, UncertaintyEstimator, scale_window, validate_m, validate_window

if TYPE_CHECKING:
    from benchmark.sampling.context import BatchInfo, StepContext


def window_steps(window: tuple[int, int], num_steps: int) -> range:
    """Step indices (0 = first denoising step) covered by `window`, a half-open window of a 50-step run.

    The window covers the same fraction of the trajectory at every step count (see `scale_window`):
    (45, 49) is steps 45..48 of a 50-step run, 22..23 of a 25-step run, 18 of a 20-step run; the final
    step is never included unless the window ends at 50.
    """
    start, stop = scale_window(window, num_steps)
    return range(start, stop)


def sample_variance(draws: torch.Tensor) -> torch.Tensor:
    """Unbiased per-element variance over the first dimension: [M, ...] -> [...].

    Var = 1/(M-1) sum_i (e_i - e_bar)^2, e_bar = 1/M sum_i e_i  (Bessel-corrected, so that its expectation
    is the variance of a single draw whatever M is).
    """
    if draws.shape[0] < 2:
        raise ConfigError("m", draws.shape[0], "an integer >= 2 (a variance needs at least two draws)")
    return draws.var(dim=0, unbiased=True)


def stack_copies(x: torch.Tensor, copies: int) -> torch.Tensor:
    """[B,C,H,W] -> [copies*B,C,H,W], copy-major (row m*B + b is copy m of sample b), like `x.repeat`."""
    return x.repeat(copies, *([1] * (x.ndim - 1)))


def unstack_copies(x: torch.Tensor, copies: int) -> torch.Tensor:
    """Inverse of `stack_copies` for per-copy outputs: [copies*B, ...] -> [copies, B, ...]."""
    return x.reshape(copies, x.shape[0] // copies, *x.shape[1:])


def validate_flag(value: object, field_name: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(field_name, value, "True or False")
    return value


class WindowedVarianceEstimator(UncertaintyEstimator):
    """Base class: compute U_t [B,C,H,W] on the steps of `window`, sum them into the pixel map and score.

    Args:
        m: Monte-Carlo draws per step (>= 2).
        window: half-open window (start, stop) of step indices of a 50-step run, scaled to other step
            counts; (45, 49) = steps 45..48 (the paper's setting).
        keep_steps: keep every U_t as `EstimatorResult.per_step` {diffusion timestep t: [B,C,H,W]}.
    """

    def __init__(self, m: int = 5, window: tuple[int, int] = (45, 49), keep_steps: bool = False) -> None:
        self.m = validate_m(m)
        self.window = validate_window(window)
        self.keep_steps = validate_flag(keep_steps, "keep_steps")
        self._steps: range = range(0)
        self._total: torch.Tensor | None = None
        self._per_step: dict[int, torch.Tensor] = {}

    @abc.abstractmethod
    def step_variance(self, step: "StepContext") -> torch.Tensor:
        """U_t [B,C,H,W] of one step inside the window (network calls count as this estimator's NFEs)."""

    def begin(self, batch: "BatchInfo") -> None:
        super().begin(batch)
        self._steps = window_steps(self.window, batch.num_steps)
        self._total = None
        self._per_step = {}

    def observe(self, step: "StepContext") -> None:
        if step.index not in self._steps:
            return
        u_t = self.step_variance(step).detach()  # a fresh tensor; nothing below changes it in place
        self._total = u_t if self._total is None else self._total + u_t
        if self.keep_steps:
            self._per_step[step.t] = u_t

    def result(self) -> EstimatorResult:
        if self._total is None:
            raise RuntimeError(
                f"{self.name}: no step of its window {tuple(self.window)} (steps {self._steps.start}.."
                f"{self._steps.stop - 1}) was observed; call begin() and observe() every sampler step first")
        return EstimatorResult(
            pixel=self._total, score=self._total.flatten(1).sum(1),
            per_step=dict(self._per_step) if self.keep_steps else None)
