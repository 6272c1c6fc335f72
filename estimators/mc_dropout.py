"""`mc_dropout`: per-pixel variance of eps over M forward passes with dropout on (Gal & Ghahramani 2016).

At a step t in the window, with e_i = eps_theta(x_t, t; dropout mask i), i = 1..M:
    U_t = 1/(M-1) sum_i (e_i - e_bar)^2,  e_bar = 1/M sum_i e_i        (unbiased, per pixel)
Only the model's dropout layers run in training mode (`DiffusionModel.dropout_active`); every other
layer stays in eval mode. Pixel map and score are summed over the window like `sensitivity`.

Reproducibility: dropout layers draw their masks from torch's global RNG, so one batched call of all
samples' copies would give sample b masks that depend on its row in the batch and on the batch size,
breaking the suite's "same sample index, same map" rule. Drawing the masks ourselves would need a hook per
dropout variant (Dropout2d drops channels, AlphaDropout is affine). Instead each sample's M copies go
through the network as one call of M rows (M NFEs per sample per step, as for a fully batched call) inside
`torch.random.fork_rng`, with the global RNG seeded from (seed, sample index, step): the masks are then a
function of the sample alone, and the caller's RNG state is restored afterwards. The masks depend on the
device type (CPU and CUDA generators differ), as any dropout draw does.
"""
from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Iterator, Sequence

import torch

from benchmark.errors import CapabilityError, ConfigError
from benchmark.seeding import derive_seed
from estimators.registry import register
from estimators.windowed import WindowedVarianceEstimator, sample_variance, stack_copies

if TYPE_CHECKING:
    from benchmark.models.base import DiffusionModel
    from benchmark.sampling.context import BatchInfo, StepContext


@contextlib.contextmanager
def seeded_global_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's global RNG of `device` (CPU, or the accelerator's) for the block; restore it afterwards."""
    if device.type == "cpu":
        with torch.random.fork_rng(devices=[]):
            torch.random.default_generator.manual_seed(seed)
            yield
        return
    module = torch.get_device_module(device.type)
    index = device.index if device.index is not None else module.current_device()
    with torch.random.fork_rng(devices=[index], device_type=device.type):
        with module.device(index):
            module.manual_seed(seed)
        yield


def mc_dropout_variance(
    model: "DiffusionModel",
    x_t: torch.Tensor,
    t: int,
    m: int,
    seeds: Sequence[int],
    y: torch.Tensor | None = None,
) -> torch.Tensor:
    """U_t [B,C,H,W]: unbiased variance over M dropout passes of eps_theta(x_t, t) for x_t [B,C,H,W].

    Sample b's M passes are one network call of M rows with the global RNG seeded by seeds[b].
    """
    if len(seeds) != x_t.shape[0]:
        raise ConfigError("seeds", len(seeds), f"one seed per sample ({x_t.shape[0]})")
    maps = []
    for b, seed in enumerate(seeds):
        copies = stack_copies(x_t[b:b + 1], m)  # [M,C,H,W]
        labels = None if y is None else y[b:b + 1].repeat(m)
        with seeded_global_rng(int(seed), x_t.device), model.dropout_active():
            draws = model.eps(copies, t, labels)  # [M,C,H,W]
        maps.append(sample_variance(draws))
    return torch.stack(maps)


@register("mc_dropout")
class MCDropoutEstimator(WindowedVarianceEstimator):
    """MC-Dropout on the steps of `window`; pixel map and score summed over them.

    Args:
        m: dropout passes per step.
        window: half-open window of step indices of a 50-step run, scaled to other step counts.
        keep_steps: keep the per-step maps {t: U_t}.
    Needs a model with dropout layers (p > 0); checked in `begin`, before any sampling work.
    """

    def __init__(self, m: int = 5, window: tuple[int, int] = (45, 49), keep_steps: bool = False) -> None:
        super().__init__(m=m, window=window, keep_steps=keep_steps)

    def begin(self, batch: "BatchInfo") -> None:
        if not batch.model.has_dropout:
            raise CapabilityError(
                f"estimator {self.name!r} needs a model with dropout layers (nn.Dropout* with p > 0), but "
                f"{type(batch.model).__name__} has none. Fix: use a model trained with dropout (e.g. a DiffusersUNet "
                f"built with dropout > 0, as the built-in presets are) or drop {self.name!r} from the estimators.")
        super().begin(batch)

    def step_variance(self, step: "StepContext") -> torch.Tensor:
        seeds = [derive_seed(step.seed, self.name, index, step.index) for index in step.indices.tolist()]
        return mc_dropout_variance(step.model, step.x_t, step.t, self.m, seeds, step.y)
