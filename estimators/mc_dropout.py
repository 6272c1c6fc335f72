"""`mc_dropout`: per-pixel variance of eps over M forward passes with dropout on (Gal & Ghahramani 2016).

At a step t in the window, with e_i = eps_theta(x_t, t; dropout mask i), i = 1..M:
    U_t = 1/(M-1) sum_i (e_i - e_bar)^2,  e_bar = 1/M sum_i e_i        (unbiased, per pixel)
Only the model's dropout layers are stochastic (masks drawn as below); every other layer stays in eval
mode. Pixel map and score are summed over the window like `sensitivity`.

Reproducibility and cost: all samples' M copies go through the network as ONE call of M x B rows, with
every dropout layer drawing sample b's masks from a generator seeded by (seed, sample index, step) alone
(`estimators.dropout_masks.per_sample_masks`): sample b's map is the same whatever else is in the batch,
torch's global RNG is untouched, and the cost is the M x B rows of a fully batched call. The masks depend on
the device type (CPU and CUDA generators differ), as any dropout draw does.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import torch

from benchmark.errors import CapabilityError, ConfigError
from benchmark.seeding import derive_seed
from estimators.dropout_masks import per_sample_masks
from estimators.registry import register
from estimators.requirements import Requirements
from estimators.windowed import WindowedVarianceEstimator, sample_variance, stack_copies, unstack_copies

if TYPE_CHECKING:
    from benchmark.models.base import DiffusionModel
    from benchmark.sampling.context import BatchInfo, StepContext


def mc_dropout_variance(
    model: "DiffusionModel",
    x_t: torch.Tensor,
    t: int,
    m: int,
    seeds: Sequence[int],
    y: torch.Tensor | None = None,
) -> torch.Tensor:
    """U_t [B,C,H,W]: unbiased variance over M dropout passes of eps_theta(x_t, t) for x_t [B,C,H,W].

    One network call of M*B rows (copy-major); sample b's dropout masks come from seeds[b] alone.
    """
    if len(seeds) != x_t.shape[0]:
        raise ConfigError("seeds", len(seeds), f"one seed per sample ({x_t.shape[0]})")
    copies = stack_copies(x_t, m)  # [M*B,C,H,W]
    labels = None if y is None else y.repeat(m)
    with model.dropout_active(), per_sample_masks(model.dropout_modules(), seeds, m, x_t.device):
        draws = model.eps(copies, t, labels)  # [M*B,C,H,W]
    return sample_variance(unstack_copies(draws, m))


@register("mc_dropout")
class MCDropoutEstimator(WindowedVarianceEstimator):
    """MC-Dropout on the steps of `window`; pixel map and score summed over them.

    Args:
        m: dropout passes per step.
        window: half-open window of step indices of a 50-step run, scaled to other step counts.
        keep_steps: keep the per-step maps {t: U_t}.
    Needs a model with dropout layers (p > 0); checked in `begin`, before any sampling work.
    """

    requires = Requirements(dropout=True)
    kind = "epistemic"

    def __init__(self, m: int = 5, window: tuple[int, int] = (45, 49), keep_steps: bool = False) -> None:
        super().__init__(m=m, window=window, keep_steps=keep_steps)

    def begin(self, batch: "BatchInfo") -> None:
        if not batch.model.has_dropout:
            raise CapabilityError(
                f"estimator {self.name!r} needs a model with dropout layers (nn.Dropout* with p > 0), but "
                f"{type(batch.model).__name__} has none. Fix: use a model trained with dropout (e.g. a DiffusersUNet "
                f"built with dropout > 0, as the built-in presets are) or drop {self.name!r} from the estimators.")
        super().begin(batch)

    def shared_draws_model(self, model, draws: int, seed: int, indices):
        """Dropout masks fixed per (draw, sample) for the whole trajectory (estimators.posterior_draws)."""
        from estimators.posterior_draws import DropoutDrawModel

        return DropoutDrawModel(model, draws, seed, indices)

    def step_variance(self, step: "StepContext") -> torch.Tensor:
        seeds = [derive_seed(step.seed, self.stream, index, step.index) for index in step.indices.tolist()]
        return mc_dropout_variance(step.model, step.x_t, step.t, self.m, seeds, step.y)
