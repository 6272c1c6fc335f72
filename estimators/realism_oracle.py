"""`realism_oracle`: a reference-aware ceiling — minus the realism score of Kynkäänniemi et al. (2019).

Kynkäänniemi, Karras, Laine, Lehtinen, Aila, "Improved Precision and Recall Metric for Assessing Generative
Models" (NeurIPS 2019), Sec. 5: with real features phi_r,j, their k-NN radii r_j = ||phi_r,j - NN_k(phi_r,j)||
(k = 3, self excluded) and a generated sample's features phi_g,
    R(phi_g) = max_j  r_j / ||phi_g - phi_r,j||                                   (realism score)
R >= 1 exactly when phi_g lies inside some real k-NN hypersphere (the improved-precision manifold); larger R
means deeper inside. As in the paper, the hyperspheres of the real samples with the largest radii are left
out (outliers would make huge spheres): only radii at or below the `prune_percentile` percentile (50 = the
median, the paper's choice) are used; prune_percentile = 100 keeps them all.
Score = -R (higher = less realistic = less trusted, the suite's convention).

This is NOT an uncertainty estimator: it knows the real test data that FID and precision are measured
against, so it is an oracle (kind "oracle", reference_row: reported beside the `random` floor, never ranked).
It makes no network calls during sampling (0 extra NFEs; the features are the run's own, computed once).
Its score exists only after generation: the runner calls `score_features(fake, real)` with the features of
the generated samples and of the real test images (benchmark/runner/feature_scores.py); until then its score
and map are zeros. It has no pixel map (`has_pixel_map = False`: pixel protocols skip it).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from benchmark.errors import ConfigError
from estimators.base import EstimatorResult, UncertaintyEstimator
from estimators.registry import register
from metrics.precision_recall import knn_squared_radii

FEATURE_SPACES = ("classifier", "inception")
DISTANCE_FLOOR = 1e-12  # a generated sample equal to a real one: realism = r_j / 1e-12 (finite)


def realism_scores(real: torch.Tensor, fake: torch.Tensor, k: int = 3, prune_percentile: float = 50.0,
                   chunk_size: int = 1024) -> torch.Tensor:
    """R(phi_g) [Q] = max_j r_j / ||phi_g - phi_r,j|| for fake [Q, D] against real [N, D] (float64).

    r_j: distance of real j to its k-th nearest other real sample; only the real samples whose r_j is at or
    below the `prune_percentile` percentile of all radii enter the maximum.
    """
    real, fake = real.to(torch.float64), fake.to(torch.float64)
    radii = knn_squared_radii(real, k).sqrt()
    keep = radii <= torch.quantile(radii, prune_percentile / 100.0)
    centres, radii = real[keep], radii[keep]
    out = torch.empty(fake.shape[0], dtype=torch.float64)
    for start in range(0, fake.shape[0], chunk_size):
        dist = torch.cdist(fake[start:start + chunk_size], centres).clamp_min(DISTANCE_FLOOR)  # [q, N_kept]
        out[start:start + chunk_size] = (radii.unsqueeze(0) / dist).max(dim=1).values
    return out


@register("realism_oracle")
class RealismOracle(UncertaintyEstimator):
    """-R(phi_g) against the real test features (an oracle; reference row, never ranked).

    Args:
        features: feature space of the score: "classifier" (the preset's domain classifier) or "inception".
        k: neighbourhood size of the real radii (paper: 3).
        prune_percentile: real hyperspheres with radius above this percentile are dropped (paper: 50).
    """

    kind = "oracle"
    reference_row = True
    uses_network = False
    has_pixel_map = False
    nfe_formula = "0 (scored after generation from the run's features)"
    paper = "Kynkaanniemi et al., NeurIPS 2019 (realism score)"
    needs = "the real test images' features (oracle)"

    def __init__(self, features: str = "classifier", k: int = 3, prune_percentile: float = 50.0) -> None:
        if features not in FEATURE_SPACES:
            raise ConfigError("features", features, f"one of {', '.join(FEATURE_SPACES)}")
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ConfigError("k", k, "an integer >= 1 (paper: 3)")
        if (isinstance(prune_percentile, bool) or not isinstance(prune_percentile, (int, float))
                or not math.isfinite(prune_percentile) or not 0 < prune_percentile <= 100):
            raise ConfigError("prune_percentile", prune_percentile, "a percentile in (0, 100] (paper: 50)")
        self.features, self.k, self.prune_percentile = features, k, float(prune_percentile)

    def observe(self, step) -> None:  # noqa: D102 - scored after generation
        return None

    def result(self) -> EstimatorResult:
        zeros = torch.zeros(self.batch.size, *self.batch.sample_shape, device=self.batch.device)
        return EstimatorResult(pixel=zeros, score=zeros.flatten(1).sum(1))

    def score_features(self, fake: np.ndarray, real: np.ndarray) -> np.ndarray:
        """Scores [N] = -R of the generated features fake [N, D] against the real features real [M, D]."""
        if real.shape[0] <= self.k:
            raise ConfigError("realism_oracle.k", self.k, f"smaller than the {real.shape[0]} real samples")
        scores = realism_scores(torch.as_tensor(real), torch.as_tensor(fake), self.k, self.prune_percentile)
        return (-scores).numpy()


__all__ = ["RealismOracle", "realism_scores"]
