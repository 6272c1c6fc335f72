"""What the sampling engine shows estimators: the batch, and each step with its coefficients."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from benchmark.sampling.schedule import GridStep, StepCoefficients
from benchmark.seeding import per_sample_randn

if TYPE_CHECKING:
    from benchmark.models.base import DiffusionModel


@dataclass(frozen=True)
class BatchInfo:
    """The batch an estimator is about to observe."""

    indices: torch.Tensor  # [B] global sample indices (seeds derive from them)
    seed: int
    sample_shape: tuple[int, int, int]
    sampler: str
    num_steps: int
    device: torch.device
    model: "DiffusionModel"
    y: torch.Tensor | None = None

    @property
    def size(self) -> int:
        return int(self.indices.numel())


@dataclass
class StepContext:
    """One sampler step t -> t_prev as estimators see it.

    x_t [B,C,H,W] is the current sample, eps = eps(x_t, t) [B,C,H,W] the network's prediction and
    eps_eff the prediction that enters the update x_prev = x_coef x_t + eps_coef eps_eff + noise_std z
    (eps_eff == eps for DDIM and DDPM).
    """

    index: int
    num_steps: int
    sampler: str
    grid: GridStep
    x_t: torch.Tensor
    eps: torch.Tensor
    eps_eff: torch.Tensor
    model: "DiffusionModel"
    y: torch.Tensor | None
    indices: torch.Tensor
    seed: int
    features: torch.Tensor | None = None  # last-layer input at (x_t, t), when an estimator asked for it
    mid_features: torch.Tensor | None = None  # DPM-Solver-2: last-layer input at (u, t_mid), likewise

    @property
    def t(self) -> int:
        return self.grid.t

    @property
    def t_prev(self) -> int:
        return self.grid.t_prev

    @property
    def ab_t(self) -> float:
        return self.grid.ab_t

    @property
    def ab_prev(self) -> float:
        return self.grid.ab_prev

    @property
    def coefficients(self) -> StepCoefficients:
        return self.grid.coefficients

    def randn(self, stream: str, shape_per_sample: tuple[int, ...] | None = None) -> torch.Tensor:
        """Per-sample N(0, I) draws [B, *shape] seeded by (seed, stream, sample index, step index)."""
        shape = tuple(shape_per_sample) if shape_per_sample is not None else tuple(self.x_t.shape[1:])
        return per_sample_randn(self.seed, self.indices, shape, stream=stream, step=self.index,
                                device=self.x_t.device, dtype=self.x_t.dtype)

    def repeat_labels(self, copies: int) -> torch.Tensor | None:
        """Labels for `copies` stacked copies of the batch (copy-major, as `x.repeat(copies, 1, 1, 1)`)."""
        return None if self.y is None else self.y.repeat(copies)

    def effective_eps(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """eps_eff of this step's update evaluated at arbitrary states x [N,C,H,W] (N a multiple of B).

        One network call per stage (DPM-Solver-2: two). Counted as the calling estimator's NFEs.
        """
        if y is None and self.y is not None:
            y = self.y.repeat(x.shape[0] // self.y.shape[0])
        eps = self.model.eps(x, self.t, y)
        return self.combine_midpoint(x, eps, y)

    def combine_midpoint(self, x: torch.Tensor, eps: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """For DPM-Solver-2: (1 - w) eps + w eps(u, t_mid), u the first-stage state; identity otherwise."""
        return self.midpoint(x, eps, y)[0]

    def midpoint(self, x: torch.Tensor, eps: torch.Tensor, y: torch.Tensor | None, *, with_features: bool = False
                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(eps_eff, last-layer features at the midpoint or None): one network call for DPM-Solver-2, none
        otherwise; `with_features` takes the features from that same call (model.eps_and_features)."""
        g = self.grid
        if g.t_mid is None:
            return eps, None
        u = g.mid_x_coef * x + g.mid_eps_coef * eps
        if with_features:
            eps_mid, features = self.model.eps_and_features(u, g.t_mid, y)
        else:
            eps_mid, features = self.model.eps(u, g.t_mid, y), None
        return (1.0 - g.mid_weight) * eps + g.mid_weight * eps_mid, features
