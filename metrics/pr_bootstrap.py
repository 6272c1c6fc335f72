"""Bootstrap intervals of improved precision, recall and F1 (Kynkaanniemi et al. 2019) over resamples of the
generated set (and the real set if asked), with the manifold of each resample built from its distinct rows.
Replicates are drawn as in metrics.bootstrap (counts from `resample_counts`)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from metrics.bootstrap import ConfidenceInterval, _check_bootstrap_args, percentile_interval, resample_counts
from metrics.precision_recall import (
    DEFAULT_CHUNK_SIZE,
    f1_score,
    fixed_set_radii,
    inside_manifold,
    knn_squared_radii,
    real_and_fake_tensors,
)


@dataclass
class PrecisionRecallCI:
    """Bootstrap intervals of improved precision, recall and their F1."""

    precision: ConfidenceInterval
    recall: ConfidenceInterval
    f1: ConfidenceInterval



def _weighted_precision_recall(real: torch.Tensor, real_counts: np.ndarray, fake: torch.Tensor,
                               fake_counts: np.ndarray, k: int, chunk_size: int,
                               precision_inside: torch.Tensor | None) -> tuple[float, float]:
    """P and R of a resample: manifolds from the DISTINCT drawn points, evaluated points weighted by counts.

    A point drawn twice is one ball (a copy is not its own neighbour at distance 0).
    `precision_inside` [M] reuses the membership of every fake row when the real set is fixed.
    """
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


def precision_recall_bootstrap(real_features, fake_features, k: int = 3, n_boot: int = 200, seed: int = 0,
                               alpha: float = 0.05, *, resample_real: bool = False,
                               chunk_size: int = DEFAULT_CHUNK_SIZE, interval: str = "shifted") -> PrecisionRecallCI:
    """Improved precision / recall / F1 with bootstrap intervals over resamples of the fake set (and real).

    Each replicate costs about one precision_recall call on the drawn rows (the fixed real manifold's
    membership tests are reused when resample_real is False).
    """
    _check_bootstrap_args(n_boot, alpha, interval)
    real, fake = real_and_fake_tensors(real_features, fake_features, "cpu")
    all_real, all_fake = np.ones(real.shape[0], dtype=np.int64), np.ones(fake.shape[0], dtype=np.int64)
    with torch.no_grad():
        fixed_inside = inside_manifold(fake, real, fixed_set_radii(real, k, chunk_size), chunk_size)
        precision, recall = _weighted_precision_recall(real, all_real, fake, all_fake, k, chunk_size, fixed_inside)
        rng = np.random.default_rng(seed)
        replicates = []
        for _ in range(n_boot):
            fake_counts = resample_counts(rng, fake.shape[0])
            real_counts = resample_counts(rng, real.shape[0]) if resample_real else all_real
            replicates.append(_weighted_precision_recall(real, real_counts, fake, fake_counts, k, chunk_size,
                                                         None if resample_real else fixed_inside))
    values = np.asarray(replicates)
    f1_values = [f1_score(p, r) for p, r in replicates]
    return PrecisionRecallCI(precision=percentile_interval(precision, values[:, 0], alpha, interval),
                             recall=percentile_interval(recall, values[:, 1], alpha, interval),
                             f1=percentile_interval(f1_score(precision, recall), f1_values, alpha, interval))
