"""Density and coverage (Naeem et al., ICML 2020): fidelity and diversity of a generated set against real features.

With the real points Y_1..Y_n, r_j the distance of Y_j to its k-th nearest neighbour among the other real points,
and the generated points X_1..X_m:

    density  = 1/(k m) sum_{i=1}^{m} sum_{j=1}^{n} 1[ ||X_i - Y_j|| < r_j ]     (Eq. 3: how many real balls hold
                                                                                  a generated point, / k; ~1 when
                                                                                  the two laws are equal)
    coverage = 1/n sum_{j=1}^{n} 1[ exists i: ||X_i - Y_j|| < r_j ]            (Eq. 4: share of real balls that
                                                                                  hold a generated point)
The balls are the real points' own (unlike improved precision/recall, no ball around a generated outlier), and
"inside" is strict, as in the authors' code (clovaai/generative-evaluation-prdc, `compute_prdc`). k = 5 is the
paper's recommendation. Distances are computed as in metrics.precision_recall (float32 on torch, in blocks, one
formula for the radii and the membership tests).

`SubsetDensityCoverage` evaluates many subsets of one generated pool: the membership matrix B_ji = 1[X_i in ball j]
[n, N] is computed once, then for a subset with 0/1 weights w (m = sum w)
    density(w) = (sum_j B_j.) . w / (k m),     coverage(w) = share of j with (B w)_j > 0.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from metrics.precision_recall import (
    DEFAULT_CHUNK_SIZE,
    _squared_distance_block,
    knn_squared_radii,
    real_and_fake_tensors,
)

DEFAULT_K = 5  # Naeem et al.'s recommended neighbourhood size


@dataclass(frozen=True)
class DensityCoverage:
    density: float  # >= 0, ~1 for a generated set drawn like the real one
    coverage: float  # in [0, 1]


def _membership_blocks(real: torch.Tensor, generated: torch.Tensor, k: int, chunk_size: int
                       ) -> Iterator[tuple[slice, slice, torch.Tensor]]:
    """(real rows, generated columns, bool block [rows, columns] of ||X_i - Y_j|| < r_j) over chunk_size blocks of the
    real [n, d] x generated [m, d] pairs, one block in memory at a time (O(chunk_size^2), never O(n m))."""
    radii = knn_squared_radii(real, k, chunk_size)
    real_norms, gen_norms = (real * real).sum(dim=1), (generated * generated).sum(dim=1)
    for start in range(0, real.shape[0], chunk_size):
        rows = slice(start, min(start + chunk_size, real.shape[0]))
        for col in range(0, generated.shape[0], chunk_size):
            cols = slice(col, min(col + chunk_size, generated.shape[0]))
            block = _squared_distance_block(real[rows], real_norms[rows], generated[cols], gen_norms[cols])
            yield rows, cols, block < radii[rows].unsqueeze(1)


def real_ball_membership(real, generated, k: int = DEFAULT_K, chunk_size: int = DEFAULT_CHUNK_SIZE) -> np.ndarray:
    """bool [n, m]: entry (j, i) is ||X_i - Y_j|| < r_j, the k-NN radius of real point Y_j (module doc)."""
    real_t, gen_t = real_and_fake_tensors(real, generated, "cpu")
    inside = torch.zeros(real_t.shape[0], gen_t.shape[0], dtype=torch.bool)
    with torch.no_grad():
        for rows, cols, block in _membership_blocks(real_t, gen_t, k, chunk_size):
            inside[rows, cols] = block
    return inside.numpy()


class SubsetDensityCoverage:
    """Density and coverage of subsets of a pool [N, d] against a real set [n, d]; subsets are boolean masks
    [R, N] (module doc). The membership matrix is held as bool (n N bytes) and multiplied in row blocks."""

    def __init__(self, pool, real, k: int = DEFAULT_K) -> None:
        self.k = int(k)
        self.inside = real_ball_membership(real, pool, self.k)  # bool [n, N]
        self.balls_holding = self.inside.sum(axis=0, dtype=np.float64)  # [N]: real balls holding each pool row

    def density(self, masks: np.ndarray) -> np.ndarray:
        w = np.atleast_2d(np.asarray(masks, dtype=np.float64))
        return (w @ self.balls_holding) / (self.k * w.sum(axis=1))

    def coverage(self, masks: np.ndarray) -> np.ndarray:
        """Share of real balls holding a kept row, per mask: sum_j 1[(B w)_j > 0] / n, B in float32 row blocks
        (integer counts below 2^24, so exact)."""
        w = np.atleast_2d(np.asarray(masks, dtype=np.float32))
        covered = np.zeros(w.shape[0], dtype=np.int64)
        for start in range(0, self.inside.shape[0], DEFAULT_CHUNK_SIZE):
            block = self.inside[start:start + DEFAULT_CHUNK_SIZE].astype(np.float32)
            covered += ((block @ w.T) > 0).sum(axis=0)
        return covered / np.float64(self.inside.shape[0])


def density_coverage(real, generated, k: int = DEFAULT_K, chunk_size: int = DEFAULT_CHUNK_SIZE) -> DensityCoverage:
    """Density and coverage of generated [m, d] against real [n, d] (module doc), streamed over distance blocks:
    per generated row the count of real balls holding it, per real ball whether any generated row is inside
    (memory O(n + m + chunk_size^2); the same integer counts as SubsetDensityCoverage with every row kept)."""
    real_t, gen_t = real_and_fake_tensors(real, generated, "cpu")
    held = torch.zeros(gen_t.shape[0], dtype=torch.int64)  # real balls holding each generated row
    covered = torch.zeros(real_t.shape[0], dtype=torch.bool)
    with torch.no_grad():
        for rows, cols, block in _membership_blocks(real_t, gen_t, int(k), chunk_size):
            held[cols] += block.sum(dim=0)
            covered[rows] |= block.any(dim=1)
    density = float(held.sum().item()) / (int(k) * gen_t.shape[0])
    return DensityCoverage(density, float(covered.sum().item()) / real_t.shape[0])
