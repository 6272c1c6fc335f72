"""Weight draws held fixed over a whole trajectory: the brute-force target of epistemic estimators.

An epistemic estimator (BayesDiff, MC-Dropout) approximates the spread of the generated x0 over the
posterior of the network's weights theta. Its brute-force ground truth (issue 11 item 2) regenerates the same
x_T with S weight draws theta_1..theta_S, each SHARED by every network call of its trajectory:
    x0^s = Sampler(x_T; eps_{theta_s}),     target map = Var_s[x0^s] (unbiased, per pixel),  score = its sum.
The models here evaluate S draws in one batch: a batch of S*B rows is draw-major (rows s*B .. s*B + B - 1 are
draw s), so `benchmark.sampling.sample(model, x_T.repeat(S, 1, 1, 1), ...)` runs all S regenerations at once.
- `LaplaceDrawModel`: theta_s = (W, b) ~ N(theta_MAP, diag(1 / P)) of the last-layer Laplace posterior (one
  draw per s for the whole batch: a weight draw is one network); the body's features are computed once per
  call and each draw's last layer is applied to its block of rows; its output is mapped to eps as the model's
  prediction type says (eps = c_x x_t + c_t output, exact per timestep).
- `DropoutDrawModel`: theta_s = one dropout mask per (draw, sample), seeded by (seed, s, sample index); every
  call of the trajectory redraws it from the same seed, so the mask is the same at every step.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch.func import functional_call

from benchmark.models.base import DiffusionModel
from benchmark.seeding import derive_seed
from estimators.dropout_masks import per_sample_masks


class SharedDrawModel(DiffusionModel):
    """Base of the draw models: `base`'s schedule, shape and labels; `draws` blocks of rows per call."""

    def __init__(self, base: DiffusionModel, draws: int) -> None:
        super().__init__(alphas_cumprod=base.alphas_cumprod, sample_shape=base.sample_shape,
                         num_classes=base.num_classes)
        self.base, self.draws = base, int(draws)
        self.autocast = getattr(base, "autocast", "off")  # run.autocast: the base network's calls run under it

    def blocks(self, x: torch.Tensor) -> int:
        """Rows per draw (B) of a draw-major batch x [S*B, ...]."""
        if x.shape[0] % self.draws:
            raise ValueError(f"a batch of {x.shape[0]} rows is not {self.draws} draws of equal blocks")
        return x.shape[0] // self.draws


class LaplaceDrawModel(SharedDrawModel):
    """eps under S last-layer weight draws of a fitted `LastLayerLaplace` (seeded by `seed`)."""

    def __init__(self, base: DiffusionModel, laplace, draws: int, seed: int) -> None:
        super().__init__(base, draws)
        self.laplace = laplace
        self.weights = laplace_weight_draws(laplace, draws, seed)

    def predict_eps(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """eps of draw s on its block of rows: the model's own map of the drawn layer's output to eps
        (LastLayerLaplace.eps_from_output: eps = c_x x_t + c_t output for v- and x0-prediction)."""
        self.blocks(x)
        features = self.base.predict_features(x, t, y)
        rows = features.shape[0] // self.draws  # feature rows per draw (2 per sample under guidance)
        outs = [functional_call(self.laplace.layer, self.weights[s], (features[s * rows:(s + 1) * rows],))
                for s in range(self.draws)]
        return self.laplace.eps_from_output(torch.cat(outs), x, t)


def laplace_weight_draws(laplace, draws: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """S draws {parameter name: theta_MAP + z / sqrt(P)}, z ~ N(0, I) from a generator seeded by `seed`."""
    generator = torch.Generator(device="cpu").manual_seed(int(seed))  # drawn on the CPU: the same on any device
    params = dict(laplace.layer.named_parameters())
    precision = laplace.posterior_precision
    out = []
    for _ in range(draws):
        draw = {}
        for name, value in params.items():
            z = torch.randn(value.shape, generator=generator, dtype=torch.float64, device="cpu")
            draw[name] = (value.detach().double().cpu() + z / precision[name].double().cpu().sqrt()).to(
                value.device, value.dtype)
        out.append(draw)
    return out


class DropoutDrawModel(SharedDrawModel):
    """eps under S dropout masks per sample, each fixed for the whole trajectory.

    `indices` [B] are the samples' global indices (row s*B + b is draw s of sample indices[b]).
    """

    def __init__(self, base: DiffusionModel, draws: int, seed: int, indices: Sequence[int]) -> None:
        super().__init__(base, draws)
        self.seeds = [derive_seed(int(seed), "shared-theta-dropout", s, int(i)) for s in range(draws) for i in indices]

    def predict_eps(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if x.shape[0] != len(self.seeds):
            raise ValueError(f"a batch of {x.shape[0]} rows; this model draws {len(self.seeds)} (draws x samples)")
        with self.base.dropout_active(), per_sample_masks(self.base.dropout_modules(), self.seeds, 1, x.device):
            return self.base.predict_eps(x, t, y)


__all__ = ["DropoutDrawModel", "LaplaceDrawModel", "SharedDrawModel", "laplace_weight_draws"]
