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


def real_ball_membership(real, generated, k: int = DEFAULT_K, chunk_size: int = DEFAULT_CHUNK_SIZE) -> np.ndarray:
    """bool [n, m]: entry (j, i) is ||X_i - Y_j|| < r_j, the k-NN radius of real point Y_j (module doc)."""
    real_t, gen_t = real_and_fake_tensors(real, generated, "cpu")
    with torch.no_grad():
        radii = knn_squared_radii(real_t, k, chunk_size)
        real_norms, gen_norms = (real_t * real_t).sum(dim=1), (gen_t * gen_t).sum(dim=1)
        inside = torch.zeros(real_t.shape[0], gen_t.shape[0], dtype=torch.bool)
        for start in range(0, real_t.shape[0], chunk_size):
            stop = min(start + chunk_size, real_t.shape[0])
            for col in range(0, gen_t.shape[0], chunk_size):
                col_stop = min(col + chunk_size, gen_t.shape[0])
                block = _squared_distance_block(real_t[start:stop], real_norms[start:stop], gen_t[col:col_stop],
                                                gen_norms[col:col_stop])
                inside[start:stop, col:col_stop] = block < radii[start:stop].unsqueeze(1)
    return inside.numpy()


class SubsetDensityCoverage:
    """Density and coverage of subsets of a pool [N, d] against a real set [n, d]; subsets are boolean masks
    [R, N] (module doc)."""

    def __init__(self, pool, real, k: int = DEFAULT_K) -> None:
        self.k = int(k)
        self.inside = real_ball_membership(real, pool, self.k).astype(np.float32)  # [n, N]
        self.balls_holding = self.inside.sum(axis=0, dtype=np.float64)  # [N]: real balls holding each pool row

    def density(self, masks: np.ndarray) -> np.ndarray:
        w = np.atleast_2d(np.asarray(masks, dtype=np.float64))
        return (w @ self.balls_holding) / (self.k * w.sum(axis=1))

    def coverage(self, masks: np.ndarray) -> np.ndarray:
        w = np.atleast_2d(np.asarray(masks, dtype=np.float32))
        return ((self.inside @ w.T) > 0).mean(axis=0, dtype=np.float64)


def density_coverage(real, generated, k: int = DEFAULT_K) -> DensityCoverage:
    """Density and coverage of generated [m, d] against real [n, d] (module doc)."""
    subsets = SubsetDensityCoverage(generated, real, k)
    every = np.ones((1, subsets.inside.shape[1]), dtype=bool)
    return DensityCoverage(float(subsets.density(every)[0]), float(subsets.coverage(every)[0]))
