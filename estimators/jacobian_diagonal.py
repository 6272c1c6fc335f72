"""The diagonal of a Jacobian from Jacobian-vector products: Hutchinson's estimator.

J is the Jacobian [D,D] of a map f: R^D -> R^D at one point (per sample; a batch holds B independent maps, the
network treats samples independently). `jvp(V)` returns J V for stacked probes V [K,B,C,H,W], `vjp(U)` returns
J^T U likewise (D = C H W).

Hutchinson (Bekas, Kokiopoulou & Saad 2007), K Rademacher probes v_k (entries +-1):
    diag(J) ~= d_hat = 1/K sum_k v_k * (J v_k)                                                    (Eq. H)
It is unbiased, E[v_i v_j] = delta_ij, and since v_i^2 = 1 its variance per entry is
    Var[d_hat_i] = 1/K sum_{j != i} J_ij^2                                                       (Eq. V)
so it is exact for a diagonal J and noisy where J has large off-diagonal entries (e.g. a low-rank term).

Summed over entries it is Hutchinson's trace estimator, with
    Var[sum_i d_hat_i] = 1/K sum_{i != j} (J_ij^2 + J_ij J_ji)                                  (Eq. T)
(Rademacher probes). A deflated form (Diag++, Baston & Nakatsukasa 2022: exact diag(Q Q^T J) on a random sketch's
range plus Hutchinson on the rest) was tried and dropped: for a Jacobian that is a large multiple of the identity
plus a low-rank term (a denoiser's, d eps / d x_t ~ I / s_t) the random sketch moves part of the identity into the
off-diagonal entries of the rest (alpha Q Q^T), and the estimate got worse, not better.
"""
from __future__ import annotations

from typing import Callable

import torch

Products = Callable[[torch.Tensor], torch.Tensor]


def rademacher_like(gaussian: torch.Tensor) -> torch.Tensor:
    """Rademacher probes (+-1) from Gaussian draws of the same shape (their signs; a draw of exactly 0 counts +1)."""
    return torch.where(gaussian >= 0, 1.0, -1.0).to(gaussian.dtype)


def hutchinson_diagonal(jvp: Products, probes: torch.Tensor) -> torch.Tensor:
    """Eq. H: d_hat [B,C,H,W] from probes [K,B,C,H,W] (Rademacher for Eq. V to hold)."""
    return (probes * jvp(probes)).mean(dim=0)


def hutchinson_variance(jacobian: torch.Tensor, probes: int) -> torch.Tensor:
    """Eq. V: the variance [D] of each entry of d_hat with `probes` Rademacher probes, for J [D,D]."""
    squares = jacobian.pow(2)
    return (squares.sum(dim=1) - squares.diagonal()) / probes


def trace_variance(jacobian: torch.Tensor, probes: int) -> float:
    """Eq. T: the variance of sum_i d_hat_i (Hutchinson's trace estimate) with `probes` Rademacher probes."""
    off = jacobian - torch.diag(jacobian.diagonal())
    return float((off.pow(2).sum() + (off * off.T).sum()) / probes)


__all__ = ["hutchinson_diagonal", "hutchinson_variance", "rademacher_like", "trace_variance"]
