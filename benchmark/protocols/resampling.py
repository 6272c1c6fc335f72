"""Sampling from an intermediate step, for the protocols that use the uncertainty (augmentation, rectification).

Everything runs through the public engine `benchmark.sampling.sample` (its `start_index`, its observers and its
`guidance` hook, which may replace the eps that enters a step's update):
- `CutProbe` records the state x_t and eps_eff at one grid step (the cut) and lets a wrapped estimator observe
  only the steps before it, so the wrapped estimator's result is its value at the cut state (BayesDiff's map is
  then Var[x_t] at the cut, its NFEs those of the propagation down to the cut).
- `TrajectoryRecorder` records x_t and eps_eff at every step from a start index on.
- `KnownRegionReplacement` is RePaint's replacement (Lugmayr et al. 2022, Eq. 8):
      x_{t-1} = m * x_{t-1}^known + (1 - m) * x_{t-1}^unknown,
  with the known part the original trajectory. Every step is x_prev = k x_t + c eps_eff + n z (the engine's
  coefficients; z seeded per sample index and step, so the same indices draw the same z). Substituting the
  original trajectory's eps_eff on the known pixels makes x_prev there k x_t^orig + c eps_t^orig + n z^orig, the
  original trajectory's x_prev, computed by the same floating-point operations: the known pixels stay equal to
  it at every step, and no extra network call is made.
- `renoise`: x_k = a_k x0 + s_k z (the forward process from a clean sample to step k).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from benchmark.errors import ConfigError
from benchmark.sampling import build_grid, sample
from benchmark.sampling.engine import SampleResult
from estimators.base import EstimatorResult, UncertaintyEstimator

REFERENCE_STEPS = 50


def step_index_from_end(remaining: int, steps: int, field: str, reference: int = REFERENCE_STEPS) -> int:
    """Grid index of the step with `remaining` steps of a `reference`-step run left, scaled to `steps` steps.

    remaining = 40 of 50 (the public BayesDiff `--cut`) is index 10 of 50 and index 4 of 20. The index lies in
    [1, steps - 1]: at least one step before it and one after it.
    """
    if isinstance(remaining, bool) or not isinstance(remaining, int) or not 1 <= remaining <= reference - 1:
        raise ConfigError(field, remaining, f"an integer in [1, {reference - 1}] (steps left of a {reference}-step "
                          "run, counted from the end; scaled to the run's steps)")
    if steps < 2:
        raise ConfigError("run.steps", steps, f"at least 2 steps for {field} (one before and one after it)")
    index = int(round((reference - remaining) * steps / reference))
    return min(max(index, 1), steps - 1)


def renoise(x0: torch.Tensor, ab_k: float, noise: torch.Tensor) -> torch.Tensor:
    """x_k = sqrt(ab_k) x0 + sqrt(1 - ab_k) z  [B,C,H,W] (DDPM forward process, Ho et al. 2020 Eq. 4)."""
    return math.sqrt(ab_k) * x0 + math.sqrt(1.0 - ab_k) * noise


class CutProbe(UncertaintyEstimator):
    """Observer (not registered): x_t and eps_eff at grid step `cut_index`; a wrapped estimator sees the steps
    before it only. Its result is the wrapped estimator's (zeros without one). Its NFEs are the wrapped
    estimator's calls, attributed to the probe's name by the engine."""

    uses_network = False

    def __init__(self, cut_index: int, inner: UncertaintyEstimator | None = None) -> None:
        if cut_index < 1 and inner is not None:
            raise ConfigError("cut_index", cut_index, "an index >= 1 (the wrapped estimator sees the steps before it)")
        self.cut_index, self.inner = int(cut_index), inner
        self.name = f"_cut[{inner.name}]" if inner is not None else "_cut"
        # the engine hands last-layer features from its own call to an estimator that wants them
        self.wants_step_features = bool(getattr(inner, "wants_step_features", False))

    def begin(self, batch) -> None:
        super().begin(batch)
        self.x_cut: torch.Tensor | None = None
        self.eps_cut: torch.Tensor | None = None
        if self.inner is not None:
            self.inner.begin(batch)

    def observe(self, step) -> None:
        if step.index < self.cut_index and self.inner is not None:
            self.inner.observe(step)
        elif step.index == self.cut_index:
            self.x_cut, self.eps_cut = step.x_t.clone(), step.eps_eff.clone()

    def result(self) -> EstimatorResult:
        if self.inner is not None:
            return self.inner.result()
        zeros = torch.zeros(self.batch.size, *self.batch.sample_shape, device=self.batch.device)
        return EstimatorResult(pixel=zeros, score=zeros.flatten(1).sum(1))


class TrajectoryRecorder(UncertaintyEstimator):
    """Observer (not registered): {step index: x_t} and {step index: eps_eff} for every step index >= start."""

    uses_network = False

    def __init__(self, start_index: int = 0, name: str = "_trajectory") -> None:
        self.start_index, self.name = int(start_index), name

    def begin(self, batch) -> None:
        super().begin(batch)
        self.states: dict[int, torch.Tensor] = {}
        self.eps: dict[int, torch.Tensor] = {}

    def observe(self, step) -> None:
        if step.index >= self.start_index:
            self.states[step.index] = step.x_t.clone()
            self.eps[step.index] = step.eps_eff.clone()

    def result(self) -> EstimatorResult:
        zeros = torch.zeros(self.batch.size, *self.batch.sample_shape, device=self.batch.device)
        return EstimatorResult(pixel=zeros, score=zeros.flatten(1).sum(1))


@dataclass
class KnownRegionReplacement:
    """Engine guidance hook: on the steps of `known_eps` the eps that enters the update is the original
    trajectory's eps_eff on the known pixels (resample_mask False) and the model's own elsewhere.

    known_eps: {step index: eps_eff of the original trajectory [B,C,H,W]}; resample_mask [B,C,H,W] bool."""

    known_eps: dict[int, torch.Tensor]
    resample_mask: torch.Tensor

    def active(self, index: int, steps: int) -> bool:
        return index in self.known_eps

    def guide(self, step) -> torch.Tensor:
        return torch.where(self.resample_mask, step.eps_eff, self.known_eps[step.index])


def region_resample(model, known_states: dict[int, torch.Tensor], known_eps: dict[int, torch.Tensor],
                    resample_mask: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor, *, start_index: int,
                    sampler: str, steps: int, seed: int, indices: torch.Tensor, y: torch.Tensor | None = None,
                    estimators=()) -> SampleResult:
    """Resample the pixels of `resample_mask` [B,C,H,W] from grid step `start_index`; the others follow the
    original trajectory, given by its states and eps_eff {step index: [B,C,H,W]} from `start_index` on (a
    `TrajectoryRecorder`'s) and its x0, generated with the same `indices` and `seed`.

    The start state is renoise(x0, ab_k, noise) on the mask and the original x_k elsewhere. Costs
    (steps - start_index) sampler calls per sample (DPM-Solver-2: twice that), plus the estimators' own.
    """
    grid = build_grid(sampler, model.alphas_cumprod, steps)
    if sorted(known_eps) != list(range(start_index, steps)) or start_index not in known_states:
        raise ConfigError("known_eps", sorted(known_eps), f"a trajectory recorded from step {start_index} on")
    x_start = torch.where(resample_mask, renoise(x0, grid[start_index].ab_t, noise), known_states[start_index])
    hook = KnownRegionReplacement(known_eps, resample_mask)
    return sample(model, x_start, sampler=sampler, steps=steps, estimators=estimators, y=y, seed=seed,
                  indices=indices, start_index=start_index, guidance=hook)
