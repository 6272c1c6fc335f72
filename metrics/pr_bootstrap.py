"""Intervals of improved precision, recall and F1 (Kynkaanniemi et al. 2019) over the generated set (and the real set
if asked), by m-out-of-n subsampling (the default) or the classic bootstrap, with the draws and the interval of
metrics.bootstrap (`SCHEMES`, `scheme_interval`).

What the intervals cover (real set fixed, the protocols' use): precision_M, recall_M and F1_M of M generated
samples are random through the draw of those M samples; the intervals cover their expectations at this size M
against the fixed real set, E[precision_M], E[recall_M] and E[F1_M]. Not the limit M -> inf: the k-NN manifold of
the generated set depends on M, so recall_M and F1_M carry a size bias. Precision against a fixed real manifold has
none: it is the share of M independent draws inside a fixed set, Binomial(M, p) / M exactly, so its interval is the
Wilson score interval of p (`wilson_interval`; replicates of a share of 0.8 M rows are too discrete at small M).

Why subsamples. A replicate of m = 0.8 M rows drawn WITHOUT replacement is a generated set of exactly m distinct
points: its manifold is that of an m-set, the same in every replicate, so the replicates' spread around their mean
rescaled by sqrt(m / (M - m)) estimates the spread of recall_M around E[recall_M] and the interval
    value + sqrt(m / (M - m)) (q_{alpha/2, 1-alpha/2}(replicates) - mean(replicates))        (scheme_interval)
is centred on the observed value. A with-replacement resample has only ~0.632 M distinct points, a manifold of
fewer, larger balls: its recall is systematically off (measured: the observed recall sat at 22 % of its percentile
interval on average, and the `(random K)` row of the demo fell outside its own interval). bench/pr_interval_bench.py
measures the coverage of both schemes against E[.] computed by brute force (results/bench/pr_intervals.md).

Each replicate builds the generated manifold from its distinct drawn rows and weights evaluated rows by their
counts (a row drawn twice is one ball: a copy is not its own neighbour at distance 0). With the real set fixed and
N M + M^2 distances fitting MAX_CACHED_DISTANCES, the distances are computed once (`SubsetManifolds`, the same bits as
metrics.precision_recall) and a replicate is a k-th-smallest selection and a comparison; otherwise each replicate
recomputes its manifolds in chunks.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from statistics import NormalDist

import numpy as np
import torch

from benchmark.errors import ConfigError
from metrics.bootstrap import SCHEMES, ConfidenceInterval, _check_bootstrap_args, scheme_interval
from metrics.precision_recall import (
    DEFAULT_CHUNK_SIZE,
    f1_score,
    fixed_set_radii,
    inside_manifold,
    knn_squared_radii,
    real_and_fake_tensors,
    squared_distances,
)

#: entries (float32) of the cached real-generated and generated-generated distance matrices, at most (256 MiB)
MAX_CACHED_DISTANCES = 2**26


@dataclass
class PrecisionRecallCI:
    """Intervals of improved precision, recall and their F1 (what each covers: module doc)."""

    precision: ConfidenceInterval
    recall: ConfidenceInterval
    f1: ConfidenceInterval


class SubsetManifolds:
    """Recall of count-weighted subsets of a generated set [M, D] against a fixed real set [N, D], with the distances
    computed once: d_jl = ||f_j - f_l||^2 (d_jj = inf) and e_ij = ||r_i - f_j||^2. A subset S (rows with count > 0)
    has the squared k-NN radii and recall
        rho_j = k-th smallest of d_jl over l in S          (j in S)
        recall(S) = (1/N) sum_i 1[exists j in S: e_ij <= rho_j]
    which is metrics.precision_recall's recall of the rows S, to the bit (same distance entries, same comparison)."""

    def __init__(self, real: torch.Tensor, fake: torch.Tensor, k: int, chunk_size: int) -> None:
        if not isinstance(k, int) or k < 1 or k >= fake.shape[0]:
            raise ConfigError("k", k, f"an integer in [1, {fake.shape[0] - 1}] (smaller than the set of "
                                      f"{fake.shape[0]} points)")
        self.k = k
        self.between = squared_distances(fake, fake, chunk_size).numpy()
        np.fill_diagonal(self.between, np.inf)
        self.real_to_fake = squared_distances(real, fake, chunk_size).numpy()

    @staticmethod
    def fits(real_rows: int, fake_rows: int) -> bool:
        return real_rows * fake_rows + fake_rows * fake_rows <= MAX_CACHED_DISTANCES

    def recall(self, fake_counts: np.ndarray) -> float:
        drawn = np.flatnonzero(fake_counts)
        if drawn.size <= self.k:
            raise ConfigError("subset size", int(drawn.size), f"more than k = {self.k} distinct rows in every replicate")
        radii = np.partition(self.between[np.ix_(drawn, drawn)], self.k - 1, axis=1)[:, self.k - 1]
        return float((self.real_to_fake[:, drawn] <= radii).any(axis=1).mean())


def _weighted_precision_recall(real: torch.Tensor, real_counts: np.ndarray, fake: torch.Tensor,
                               fake_counts: np.ndarray, k: int, chunk_size: int,
                               precision_inside: torch.Tensor | None) -> tuple[float, float]:
    """P and R of a resample, recomputed in chunks: manifolds from the DISTINCT drawn points, evaluated points
    weighted by counts. `precision_inside` [M] reuses the membership of every fake row when the real set is fixed."""
    if precision_inside is None:
        drawn_real = torch.from_numpy(np.flatnonzero(real_counts))
        centres = real[drawn_real]
        precision_inside = inside_manifold(fake, centres, knn_squared_radii(centres, k, chunk_size), chunk_size)
    drawn_fake = torch.from_numpy(np.flatnonzero(fake_counts))
    centres = fake[drawn_fake]
    recall_inside = inside_manifold(real, centres, knn_squared_radii(centres, k, chunk_size), chunk_size)
    precision = float(fake_counts @ precision_inside.numpy()) / fake_counts.sum()
    recall = float(real_counts @ recall_inside.numpy()) / real_counts.sum()
    return precision, recall


def wilson_interval(successes: int, n: int, alpha: float) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion p from `successes` of n independent draws (Wilson 1927): with
    p_hat = successes / n and z = Phi^-1(1 - alpha / 2),
        (p_hat + z^2 / (2n) -/+ z sqrt(p_hat (1 - p_hat) / n + z^2 / (4 n^2))) / (1 + z^2 / n)
    inside [0, 1], and never empty at p_hat = 0 or 1."""
    z = NormalDist().inv_cdf(1.0 - alpha / 2.0)
    share = successes / n
    centre = share + z * z / (2.0 * n)
    half = z * float(np.sqrt(share * (1.0 - share) / n + z * z / (4.0 * n * n)))
    scale = 1.0 + z * z / n
    return max(0.0, (centre - half) / scale), min(1.0, (centre + half) / scale)


def _unit_interval(ci: ConfidenceInterval) -> ConfidenceInterval:
    """The interval cut to [0, 1], where the three metrics live (a rescaled subsampling interval can leave it;
    cutting never drops a value in [0, 1])."""
    return replace(ci, low=max(0.0, ci.low), high=min(1.0, ci.high))


def precision_recall_bootstrap(real_features, fake_features, k: int = 3, n_boot: int = 200, seed: int = 0,
                               alpha: float = 0.05, *, resample_real: bool = False,
                               chunk_size: int = DEFAULT_CHUNK_SIZE, interval: str = "shifted",
                               scheme: str = "subsample") -> PrecisionRecallCI:
    """Improved precision / recall / F1 of fake_features [M, D] against real_features [N, D] with intervals.

    scheme: "subsample" (default; m = 0.8 M rows without replacement per replicate, `scheme_interval`; covers
    E[metric_M] at this size, module doc; precision against the fixed real set: the Wilson interval) or "replacement" (the classic bootstrap, `interval` "percentile" or
    "shifted"; biased for recall and F1, kept for comparison). Replicate r draws the generated rows' counts (then the
    real rows' when resample_real) from the r-th draw of `numpy.random.default_rng(seed)`. With resample_real the
    real rows are drawn by the same scheme and the spread is rescaled by the generated set's factor (both sets are
    subsampled at the same fraction).
    """
    if scheme not in SCHEMES:
        raise ConfigError("scheme", scheme, f"one of {sorted(SCHEMES)}")
    _check_bootstrap_args(n_boot, alpha, interval)
    draw = SCHEMES[scheme][0]
    real, fake = real_and_fake_tensors(real_features, fake_features, "cpu")
    all_real, all_fake = np.ones(real.shape[0], dtype=np.int64), np.ones(fake.shape[0], dtype=np.int64)
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        fixed_inside = inside_manifold(fake, real, fixed_set_radii(real, k, chunk_size), chunk_size)
        if not resample_real and SubsetManifolds.fits(real.shape[0], fake.shape[0]):
            manifolds, inside = SubsetManifolds(real, fake, k, chunk_size), fixed_inside.numpy().astype(np.float64)

            def measure(fake_counts: np.ndarray, real_counts: np.ndarray) -> tuple[float, float]:
                return float(fake_counts @ inside) / fake_counts.sum(), manifolds.recall(fake_counts)
        else:
            def measure(fake_counts: np.ndarray, real_counts: np.ndarray) -> tuple[float, float]:
                return _weighted_precision_recall(real, real_counts, fake, fake_counts, k, chunk_size,
                                                  None if resample_real else fixed_inside)
        precision, recall = measure(all_fake, all_real)
        replicates = []
        for _ in range(n_boot):
            fake_counts = draw(rng, fake.shape[0])
            replicates.append(measure(fake_counts, draw(rng, real.shape[0]) if resample_real else all_real))
    values = np.asarray(replicates)
    f1_values = [f1_score(p, r) for p, r in replicates]
    rows = fake.shape[0]
    precision_ci = scheme_interval(precision, values[:, 0], alpha, scheme, rows, interval)
    if scheme == "subsample" and not resample_real:  # Binomial(M, p) / M given the real set: the exact model
        low, high = wilson_interval(int(fixed_inside.sum()), rows, alpha)
        precision_ci = replace(precision_ci, low=low, high=high, method="wilson")
    return PrecisionRecallCI(
        precision=_unit_interval(precision_ci),
        recall=_unit_interval(scheme_interval(recall, values[:, 1], alpha, scheme, rows, interval)),
        f1=_unit_interval(scheme_interval(f1_score(precision, recall), f1_values, alpha, scheme, rows, interval)))
