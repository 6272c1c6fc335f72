"""The sampling loop: one trajectory, observed by every estimator, with NFE and time accounting."""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Iterable, Sequence

import torch

from benchmark.errors import ConfigError
from benchmark.sampling.context import BatchInfo, StepContext
from benchmark.sampling.schedule import build_grid
from benchmark.seeding import per_sample_randint, per_sample_randn

if TYPE_CHECKING:
    from benchmark.models.base import DiffusionModel
    from estimators.base import EstimatorResult, UncertaintyEstimator


@dataclass
class SampleResult:
    """x0 [B,C,H,W]; per-estimator results; the sampler's own NFEs per sample and wall-clock."""

    x0: torch.Tensor
    uncertainty: dict[str, "EstimatorResult"] = field(default_factory=dict)
    nfe: float = 0.0
    seconds: float = 0.0
    guidance_nfe: float = 0.0
    guidance_seconds: float = 0.0
    #: grid step index -> x_t [B,C,H,W] before that step, for the indices asked for with `keep_states`
    states: dict[int, torch.Tensor] = field(default_factory=dict)


def initial_noise(seed: int, indices: Sequence[int] | torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """x_T [len(indices), *shape]: row i is N(0, I) seeded by (seed, indices[i]) alone."""
    return per_sample_randn(seed, indices, shape, stream="x_T")


def initial_labels(seed: int, indices: Sequence[int] | torch.Tensor, num_classes: int | None) -> torch.Tensor | None:
    """Class labels [len(indices)], uniform over num_classes, seeded by (seed, index) alone; None for an
    unconditional model (num_classes None), so `sample(..., y=initial_labels(...))` serves both kinds."""
    if num_classes is None:
        return None
    return per_sample_randint(seed, indices, num_classes, stream="labels")


def condition_labels(model: "DiffusionModel", seed: int, indices: Sequence[int] | torch.Tensor) -> torch.Tensor | None:
    """The condition of each sample index: None for an unconditional model; i mod P for a model that cycles its
    P prompts over sample indices (`cycled_conditions`, text-conditioned models); else `initial_labels`."""
    if not model.num_classes:
        return None
    if getattr(model, "cycled_conditions", False):
        return torch.as_tensor(indices, dtype=torch.long, device="cpu").flatten() % int(model.num_classes)
    return initial_labels(seed, indices, int(model.num_classes))


def sample(
    model: "DiffusionModel",
    x_T: torch.Tensor,
    *,
    sampler: str = "ddim",
    steps: int = 50,
    estimators: Iterable["UncertaintyEstimator | str"] = (),
    y: torch.Tensor | None = None,
    guidance: object | None = None,
    generator: torch.Generator | None = None,
    seed: int = 0,
    indices: Sequence[int] | torch.Tensor | None = None,
    start_index: int = 0,
    keep_states: Iterable[int] = (),
) -> SampleResult:
    """Run `sampler` for `steps` steps from x_T [B,C,H,W]; every estimator observes the same trajectory.

    DDPM noise (and every estimator draw) is seeded per sample by (seed, sample index, step), so results do
    not depend on the batch size; pass `generator` to draw the DDPM noise batch-wise from it instead.
    `indices` are the global sample indices of the rows of x_T (default 0..B-1). `start_index` > 0 starts
    part-way (x_T is then x_t at grid step `start_index`, e.g. a noised real image); step indices keep their
    meaning in the full grid, so estimator windows are unchanged. `keep_states` lists grid step indices whose
    state x_t (before the step) is returned in `SampleResult.states`: starting another `sample` there with
    `start_index` continues the same trajectory (e.g. the guided pass, which differs only from its window on).
    """
    from estimators import create

    batch = x_T.shape[0]
    if tuple(x_T.shape[1:]) != tuple(model.sample_shape):
        raise ConfigError("x_T", tuple(x_T.shape), f"shape [B, {', '.join(map(str, model.sample_shape))}]")
    grid = build_grid(sampler, model.alphas_cumprod, steps)
    if not 0 <= start_index < len(grid):
        raise ConfigError("start_index", start_index, f"a step index in [0, {len(grid) - 1}]")
    grid = grid[start_index:]
    idx = (torch.arange(batch, device="cpu") if indices is None  # CPU: seeds derive from the indices
           else torch.as_tensor(indices, dtype=torch.long, device="cpu").flatten())
    if idx.numel() != batch:
        raise ConfigError("indices", idx.numel(), f"one index per row of x_T ({batch})")
    ests = [create(e) if isinstance(e, str) else e for e in estimators]
    names = [e.name for e in ests]
    if len(set(names)) != len(names):
        raise ConfigError("estimators", names, "distinct names (create two instances under different names)")
    info = BatchInfo(idx, int(seed), tuple(model.sample_shape), sampler, steps, x_T.device, model, y)
    seconds = {name: 0.0 for name in names}
    for est in ests:
        est.begin(info)
    # estimators that read last-layer features at the trajectory state get them from the sampler's own call
    share_features = model.shares_features and any(getattr(e, "wants_step_features", False) for e in ests)
    model.reset_nfe()
    start = time.perf_counter()
    x = x_T
    keep, states = set(int(i) for i in keep_states), {}
    for g in grid:
        if g.index in keep:
            states[g.index] = x.detach().clone()
        with torch.no_grad(), model.attribute_to("sampler"):
            eps, features = model.eps_and_features(x, g.t, y) if share_features else (model.eps(x, g.t, y), None)
            ctx = StepContext(g.index, steps, sampler, g, x, eps, eps, model, y, idx, int(seed), features)
            ctx.eps_eff, ctx.mid_features = ctx.midpoint(x, eps, y, with_features=share_features)
        for est in ests:
            tick = time.perf_counter()
            with torch.no_grad(), model.attribute_to(est.name):
                est.observe(ctx)
            seconds[est.name] += time.perf_counter() - tick
        eps_update = ctx.eps_eff
        if guidance is not None and guidance.active(g.index, steps):
            tick = time.perf_counter()
            with model.attribute_to("guidance"):
                eps_update = guidance.guide(ctx)
            seconds["guidance"] = seconds.get("guidance", 0.0) + time.perf_counter() - tick
        c = g.coefficients
        with torch.no_grad():
            x = c.x_coef * x + c.eps_coef * eps_update
            if c.noise_std > 0:
                noise = (torch.randn(x.shape, generator=generator, dtype=x.dtype, device=generator.device).to(x.device)
                         if generator is not None
                         else per_sample_randn(seed, idx, x.shape[1:], stream="ddpm-noise", step=g.index,
                                               device=x.device, dtype=x.dtype))
                x = x + c.noise_std * noise
    total = time.perf_counter() - start
    spent_in_loop = sum(seconds.values())  # estimators' observe() and guidance, inside `total`
    results = {}
    for est in ests:
        tick = time.perf_counter()
        with torch.no_grad():
            res = est.final_result()  # result() with the common options (negate) applied
        seconds[est.name] += time.perf_counter() - tick
        results[est.name] = replace(res, nfe=model.nfe_counter[est.name] / batch, seconds=seconds[est.name])
    return SampleResult(
        x0=x, uncertainty=results, nfe=model.nfe_counter["sampler"] / batch, seconds=total - spent_in_loop,
        guidance_nfe=model.nfe_counter["guidance"] / batch, guidance_seconds=seconds.get("guidance", 0.0),
        states=states)
