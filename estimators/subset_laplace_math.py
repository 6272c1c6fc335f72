"""Pure maths of the diagonal Laplace approximation over a random subset of ALL the network's parameters (FLARE,
Gupta et al., AISTATS 2026, "Quantifying Epistemic Uncertainty in Diffusion Models").

Parameters theta are the network's tensors flattened and concatenated in `named_parameters()` order (global index
g = offset of its tensor + flat index inside it). A subset S of K global indices is drawn uniformly without
replacement with a seeded generator, so every layer is represented in proportion to its size.

Likelihood (eps regression, as for last-layer Laplace): -log p(eps_n | x_t,n) = ||f_n(theta) - eps_n||^2 / (2 sigma^2)
with f the model's eps. Curvature: the diagonal EMPIRICAL FISHER over the subset,
    H_ef[k] = sum_n g_n[k]^2,      g_n = J_n^T r_n = d/d theta_k ||f_n - eps_n||^2 / 2,   r_n = f_n - eps_n,
from per-sample gradients (torch.func: vmap(grad(functional_call))). Posterior on the subset, the rest at the MAP:
    theta_S ~ N(theta_S,MAP, diag(1 / P)),   P = H_ef / sigma^4 + prior_precision,   theta_not-S = theta_MAP.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import torch
from torch.func import functional_call, grad, vmap


@dataclass(frozen=True)
class ParameterSubset:
    """K entries of a network's parameters: `names` and `numels` of its tensors in order, `flat` [K] the sorted global
    indices (the tensors flattened and concatenated)."""

    names: tuple[str, ...]
    numels: tuple[int, ...]
    flat: torch.Tensor  # [K] int64, sorted

    @property
    def size(self) -> int:
        return int(self.flat.numel())

    def local(self) -> dict[str, torch.Tensor]:
        """{tensor name: the flat indices [k_i] inside that tensor} of the tensors the subset touches."""
        offsets = torch.tensor([0, *self.numels], dtype=torch.int64, device=self.flat.device).cumsum(0)
        which = torch.bucketize(self.flat, offsets[1:], right=True)  # tensor i holds offsets[i] <= g < offsets[i+1]
        out = {}
        for i in which.unique().tolist():
            out[self.names[i]] = self.flat[which == i] - offsets[i]
        return out

    def gather(self, tensors: Mapping[str, torch.Tensor], batch_dims: int = 0) -> torch.Tensor:
        """The subset's entries of `tensors` {name: [*batch, *shape]} as [*batch, K] (in global-index order)."""
        parts = [tensors[name].flatten(batch_dims)[..., index.to(tensors[name].device)]
                 for name, index in self.local().items()]
        return torch.cat(parts, dim=-1)

    def replace(self, tensors: Mapping[str, torch.Tensor], values: torch.Tensor) -> dict[str, torch.Tensor]:
        """Copies of the touched tensors with their subset entries set to `values` [K] (untouched tensors left out)."""
        out, start = {}, 0
        for name, index in self.local().items():
            flat = tensors[name].detach().clone().reshape(-1)
            flat[index.to(flat.device)] = values[start:start + index.numel()].to(flat.device, flat.dtype)
            out[name], start = flat.view_as(tensors[name]), start + index.numel()
        return out


def choose_subset(named_sizes: Mapping[str, int], num_params: int, seed: int) -> ParameterSubset:
    """A uniform random subset of `num_params` of the sum(named_sizes) entries (without replacement), seeded by `seed`
    alone: S = sorted(randperm(N)[:K]) with a torch.Generator seeded by `seed`."""
    names, numels = tuple(named_sizes), tuple(int(v) for v in named_sizes.values())
    total = sum(numels)
    if not 1 <= num_params <= total:
        raise ValueError(f"num_params = {num_params}: the network has {total} parameter entries")
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    flat = torch.randperm(total, generator=generator, device="cpu")[:num_params].sort().values
    return ParameterSubset(names, numels, flat)


def per_sample_subset_gradients(predict: Callable, params: dict[str, torch.Tensor],
                                constants: dict[str, torch.Tensor], subset: ParameterSubset, x_t: torch.Tensor,
                                t: torch.Tensor, eps: torch.Tensor, labels: torch.Tensor | None = None
                                ) -> torch.Tensor:
    """g_n restricted to the subset [B, K]: per-sample gradients of ||f_n - eps_n||^2 / 2 w.r.t. `params` (the tensors
    the subset touches; `constants` are the other parameters and buffers), f = functional_call(predict, ...) on one
    sample at a time (vmap(grad)). predict(x [1,C,H,W], t [1], y [1] or None) -> eps [1,C,H,W]."""

    def loss(p: dict[str, torch.Tensor], x: torch.Tensor, step: torch.Tensor, target: torch.Tensor,
             label: torch.Tensor | None) -> torch.Tensor:
        y = None if label is None else label[None]
        out = functional_call(predict, {**constants, **p}, (x[None], step[None], y))
        return 0.5 * (out - target[None]).pow(2).sum()

    label_dim = None if labels is None else 0
    grads = vmap(grad(loss), in_dims=(None, 0, 0, 0, label_dim))(params, x_t, t, eps, labels)
    return subset.gather(grads, batch_dims=1)


def empirical_fisher_diagonal(gradients: torch.Tensor) -> torch.Tensor:
    """H_ef[k] = sum_n g_n[k]^2 for per-sample gradients g [N, K] -> [K] (float64)."""
    return gradients.to(torch.float64).pow(2).sum(0)


def subset_precision(data_term: torch.Tensor, sigma_noise: float, prior_precision: float) -> torch.Tensor:
    """P = H_ef / sigma^4 + prior_precision [K] (the empirical Fisher of a Gaussian likelihood of std sigma)."""
    return data_term / float(sigma_noise) ** 4 + float(prior_precision)


def draw_subset_values(map_values: torch.Tensor, precision: torch.Tensor, draws: int, seed: int) -> torch.Tensor:
    """S posterior draws of the subset [S, K] (float64): theta_S = theta_MAP + z / sqrt(P), z ~ N(0, I) from a
    torch.Generator seeded by `seed` (row s depends only on (seed, s))."""
    generator = torch.Generator(device="cpu").manual_seed(int(seed))  # drawn on the CPU: the same on any device
    z = torch.randn((int(draws), map_values.numel()), generator=generator, dtype=torch.float64, device="cpu")
    return map_values.detach().to("cpu", torch.float64) + z / precision.to("cpu", torch.float64).sqrt()


__all__ = ["ParameterSubset", "choose_subset", "draw_subset_values", "empirical_fisher_diagonal",
           "per_sample_subset_gradients", "subset_precision"]
