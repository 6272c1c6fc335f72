"""Coverage simulation of the precision / recall / F1 intervals (metrics.pr_bootstrap) on Gaussians, with the
answer computed by brute force: shared by tests/test_pr_intervals.py (a small case) and bench/pr_interval_bench.py
(the full simulation, results/bench/pr_intervals.md).

The case: a fixed real set of N draws of N(0, I_D); generated sets of M draws of N(shift, scale^2 I_D). The
quantities the intervals claim to cover (real set fixed) are E[precision_M], E[recall_M] and E[F1_M] over the draw of
the generated set; the truth is their mean over `truth_draws` independent generated sets, each measured by a float64
numpy brute force (full distance matrices, np.partition), not by the code under test.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

METRICS = ("precision", "recall", "f1")


@dataclass(frozen=True)
class GaussianCase:
    dim: int
    real_rows: int
    fake_rows: int
    shift: float = 0.2
    scale: float = 1.0
    k: int = 3

    def real(self, seed: int) -> np.ndarray:
        return np.random.default_rng([seed, 0]).normal(size=(self.real_rows, self.dim))

    def fakes(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """count generated sets [count, M, D]."""
        return self.shift + self.scale * rng.normal(size=(count, self.fake_rows, self.dim))


@dataclass(frozen=True)
class Coverage:
    """Per metric (precision, recall, f1): the share of intervals that contain the truth, the mean position
    (value - low) / (high - low) of the point estimate in its interval, and the mean width; `trials` intervals."""

    truth: tuple[float, float, float]
    coverage: tuple[float, float, float]
    position: tuple[float, float, float]
    width: tuple[float, float, float]
    trials: int


def squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """||a_i - b_j||^2 for a [..., n, D], b [..., m, D] -> [..., n, m] (float64)."""
    gram = a @ np.swapaxes(b, -1, -2)
    return np.maximum((a * a).sum(-1)[..., :, None] + (b * b).sum(-1)[..., None, :] - 2.0 * gram, 0.0)


def kth_radii(points: np.ndarray, k: int) -> np.ndarray:
    """Squared distance of each point [..., n, D] to its k-th nearest other point -> [..., n]."""
    own = squared_distances(points, points)
    own[..., np.arange(points.shape[-2]), np.arange(points.shape[-2])] = np.inf
    return np.partition(own, k - 1, axis=-1)[..., k - 1]


def brute_force_precision_recall(real: np.ndarray, fakes: np.ndarray, k: int) -> np.ndarray:
    """[precision, recall, f1] [T, 3] of each generated set fakes[t] [M, D] against real [N, D] (Kynkaanniemi et
    al. 2019, Eq. 1-2), all sets at once."""
    to_real = squared_distances(fakes, real[None])  # [T, M, N]
    precision = (to_real <= kth_radii(real, k)[None, None, :]).any(axis=2).mean(axis=1)
    recall = (to_real <= kth_radii(fakes, k)[:, :, None]).any(axis=1).mean(axis=1)
    total = precision + recall
    f1 = np.where(total > 0, 2.0 * precision * recall / np.where(total > 0, total, 1.0), 0.0)
    return np.stack([precision, recall, f1], axis=1)


def expected_values(case: GaussianCase, real: np.ndarray, draws: int, seed: int, chunk: int = 100) -> np.ndarray:
    """[E precision_M, E recall_M, E F1_M] against the fixed real set: the mean over `draws` generated sets."""
    rng = np.random.default_rng([seed, 1])
    values = [brute_force_precision_recall(real, case.fakes(rng, min(chunk, draws - start)), case.k)
              for start in range(0, draws, chunk)]
    return np.concatenate(values).mean(axis=0)


def simulate(case: GaussianCase, trials: int, *, scheme: str, interval: str = "percentile", n_boot: int = 100,
             truth_draws: int = 2000, seed: int = 0) -> Coverage:
    """`trials` independent generated sets, each with its 95 % intervals from precision_recall_bootstrap
    (`scheme`, `interval`), against the brute-force truth."""
    from metrics import precision_recall_bootstrap

    real = case.real(seed)
    truth = expected_values(case, real, truth_draws, seed)
    rng = np.random.default_rng([seed, 2])
    hits, positions, widths = np.zeros(3), np.zeros(3), np.zeros(3)
    for trial in range(trials):
        fake = case.fakes(rng, 1)[0]
        ci = precision_recall_bootstrap(real.astype(np.float32), fake.astype(np.float32), k=case.k, n_boot=n_boot,
                                        seed=trial, scheme=scheme, interval=interval)
        for j, name in enumerate(METRICS):
            one = getattr(ci, name)
            hits[j] += one.low <= truth[j] <= one.high
            widths[j] += one.high - one.low
            positions[j] += (one.value - one.low) / (one.high - one.low) if one.high > one.low else 0.5
    return Coverage(truth=tuple(truth), coverage=tuple(hits / trials), position=tuple(positions / trials),
                    width=tuple(widths / trials), trials=trials)
