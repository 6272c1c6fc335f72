"""`realism_oracle`: the oracle reference rows of filtered-set FID, which know the real test features.

objective = "fid" (default): a ceiling of filtered FID in its `features` space. With the reference statistics
(mu_r, S_r) of the real features it is given and a kept set S of n generated features (mean mu_S, covariance S_S,
ddof = 1),
    FID(S) = ||mu_S - mu_r||^2 + tr S_S + tr S_r - 2 tr (S_r^(1/2) S_S S_r^(1/2))^(1/2)
and the score is the order of a greedy backward elimination: starting from all N samples, remove the sample whose
removal lowers FID(S) the most, and repeat down to 2 samples; score = the size of S when the sample was removed
(the first one removed scores N; the last two score 2 and 1). Keeping the K lowest scores keeps the greedy K-set,
for every K at once (the sets are nested). Each step ranks all candidates by FID after removal with the mean and
trace terms exact and the cross term to first order (`first_order_fids`), then evaluates the `candidates` best of
that ranking exactly and removes the best (`removal_fids`); candidates >= N is the exact greedy, and so is every
step on a kept set of at most EXACT_POOL samples (where one sample is a large part of the covariance and the first
order misjudges it). Pools above 2 * BATCH_DIVISOR samples remove the n // BATCH_DIVISOR best-evaluated candidates
per step (small batches). Cost (one CPU thread): 4 s for N = 600 in 128-d classifier features, 14 s for N = 300
in 2048-d Inception features.
A greedy set is no guaranteed optimum, but it is what a filter with the real features could reach: it scores
far below random K-subsets of the same pool (tests/test_realism_oracle_fid_ceiling.py checks it against all K-subsets).
It is a ceiling of FID against the statistics of the real features the runner hands it (the run's reference when
the reference is computed from them; a preset's committed reference statistics may come from other images), in
its own feature space; in another space, and for precision / recall, it is only a reference row.

objective = "realism": minus the realism score of Kynkäänniemi et al. (2019). A realism oracle, NOT a ceiling of
FID: keeping the most realistic samples keeps the densest region and costs diversity, which FID punishes (in the
demo it did worse than the random floor, classifier ΔFID +4.87).
Kynkäänniemi, Karras, Laine, Lehtinen, Aila, "Improved Precision and Recall Metric for Assessing Generative
Models" (NeurIPS 2019), Sec. 5: with real features phi_r,j, their k-NN radii r_j = ||phi_r,j - NN_k(phi_r,j)||
(k = 3, self excluded) and a generated sample's features phi_g,
    R(phi_g) = max_j  r_j / ||phi_g - phi_r,j||                                   (realism score)
R >= 1 exactly when phi_g lies inside some real k-NN hypersphere (the improved-precision manifold); larger R
means deeper inside. As in the paper, the hyperspheres of the real samples with the largest radii are left
out (outliers would make huge spheres): only radii at or below the `prune_percentile` percentile (50 = the
median, the paper's choice) are used; prune_percentile = 100 keeps them all. Score = -R (higher = less
realistic = less trusted, the suite's convention).

Neither is an uncertainty estimator: both know the real test data that FID and precision are measured against,
so the row is an oracle (kind "oracle", reference_row: reported beside the `random` floor, never ranked).
It makes no network calls during sampling (0 extra NFEs; the features are the run's own, computed once).
Its score exists only after generation: the runner calls `score_features(fake, real)` with the features of
the generated samples and of the real test images (benchmark/execution/feature_scores.py); until then its score
and map are zeros. It has no pixel map (`has_pixel_map = False`: pixel protocols skip it).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from benchmark.errors import ConfigError
from estimators.base import EstimatorResult, UncertaintyEstimator
from estimators.registry import register
from metrics.frechet import FeatureStats, feature_statistics
from metrics.precision_recall import knn_squared_radii

FEATURE_SPACES = ("classifier", "inception")
OBJECTIVES = ("fid", "realism")
DISTANCE_FLOOR = 1e-12  # a generated sample equal to a real one: realism = r_j / 1e-12 (finite)
BATCH_DIVISOR = 200  # a pool of n > 2 * BATCH_DIVISOR removes n // BATCH_DIVISOR samples per greedy step
EXACT_POOL = 64  # kept sets of at most this size evaluate every removal exactly (first order misleads there)


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
    out = torch.empty(fake.shape[0], dtype=torch.float64, device=fake.device)
    for start in range(0, fake.shape[0], chunk_size):
        dist = torch.cdist(fake[start:start + chunk_size], centres).clamp_min(DISTANCE_FLOOR)  # [q, N_kept]
        out[start:start + chunk_size] = (radii.unsqueeze(0) / dist).max(dim=1).values
    return out


@dataclass
class KeptSet:
    """The FID terms of a kept set S (rows `rows` of the pool) that every removal candidate shares.

    centred [n, D]: phi_i - mu_S; gap [D]: mu_r - mu_S; projected [n, r]: (phi_i - mu_S) B with S_r = B B^T, so
    that the eigenvalues of (B^T S_S B) are those of Y^T Y / (n - 1) = Y Y^T / (n - 1) (`gram`: the smaller).
    """

    rows: np.ndarray
    centred: np.ndarray
    gap: np.ndarray
    projected: np.ndarray
    gram: np.ndarray
    reference_trace: float

    @classmethod
    def of(cls, pool: np.ndarray, projected_pool: np.ndarray, reference: FeatureStats, rows: np.ndarray) -> "KeptSet":
        x, y = pool[rows], projected_pool[rows]
        centred, projected = x - x.mean(0), y - y.mean(0)
        gram = projected.T @ projected if projected.shape[0] > projected.shape[1] else projected @ projected.T
        return cls(rows, centred, reference.mu - x.mean(0), projected, gram, float(np.trace(reference.sigma)))

    @property
    def size(self) -> int:
        return int(self.rows.size)

    def mean_and_trace_after_removal(self) -> np.ndarray:
        """||mu_r - mu_(S-i)||^2 + tr S_(S-i) [n], exact, for every i: with d_i = phi_i - mu_S,
        mu_(S-i) = mu_S - d_i / (n - 1) and (n - 2) tr S_(S-i) = sum_j ||d_j||^2 - n / (n - 1) ||d_i||^2."""
        n = self.size
        squared = np.einsum("ij,ij->i", self.centred, self.centred)
        gap = self.gap @ self.gap + 2.0 * (self.centred @ self.gap) / (n - 1) + squared / (n - 1) ** 2
        return gap + (squared.sum() - n / (n - 1) * squared) / (n - 2)


def first_order_fids(kept: KeptSet) -> np.ndarray:
    """FID(S - i) [n] for every i: mean and trace terms exact, the cross term to first order.

    With Y = U diag(s) V^T (thin SVD of the centred projected rows), removing row i leaves the scatter
    Y^T Y - n / (n - 1) y_i y_i^T, and d tr(M^(1/2)) = tr(M^(-1/2) dM) / 2 gives
        tr (B^T S_(S-i) B)^(1/2) ~= (sum_k s_k - n / (2 (n - 1)) sum_k U_ik^2 s_k) / sqrt(n - 2).
    """
    n = kept.size
    values, vectors = np.linalg.eigh(kept.gram)
    singular = np.sqrt(np.clip(values, 0.0, None))
    if kept.gram.shape[0] == n:  # Y Y^T = U diag(s^2) U^T
        leverage = (vectors**2) @ singular
    else:  # Y^T Y = V diag(s^2) V^T and U_ik s_k = (Y V)_ik
        along = (kept.projected @ vectors) ** 2
        leverage = along @ np.divide(1.0, singular, out=np.zeros_like(singular), where=singular > 1e-12)
    cross = (singular.sum() - n / (2.0 * (n - 1)) * leverage) / math.sqrt(n - 2)
    return kept.mean_and_trace_after_removal() + kept.reference_trace - 2.0 * cross


def removal_fids(kept: KeptSet, positions: np.ndarray) -> np.ndarray:
    """FID(S - i) [len(positions)], exact, for the rows at `positions` of S (Frechet distance as metrics.frechet).

    Cross term: Y^T Y - n / (n - 1) y_i y_i^T (r x r), or, with fewer rows than r, the Gram matrix of the
    re-centred remaining rows y_j + y_i / (n - 1): G_jk + (G_ji + G_ik) / (n - 1) + G_ii / (n - 1)^2.
    """
    n = kept.size
    terms = kept.mean_and_trace_after_removal()[positions] + kept.reference_trace
    out = np.empty(len(positions))
    for slot, i in enumerate(positions):
        if kept.gram.shape[0] != n:
            scatter = kept.gram - n / (n - 1) * np.outer(kept.projected[i], kept.projected[i])
        else:
            rest = np.delete(np.arange(n), i)
            column = kept.gram[rest, i]
            scatter = (kept.gram[np.ix_(rest, rest)] + (column[:, None] + column[None, :]) / (n - 1)
                       + kept.gram[i, i] / (n - 1) ** 2)
        cross = np.sqrt(np.clip(np.linalg.eigvalsh(scatter) / (n - 2), 0.0, None)).sum()
        out[slot] = terms[slot] - 2.0 * cross
    return out


def greedy_fid_scores(fake: np.ndarray, real: np.ndarray, candidates: int = 8) -> np.ndarray:
    """Scores [N]: the greedy FID-optimal removal order of fake [N, D] against the statistics of real [M, D]
    (module docstring): score = the kept set's size when the sample was removed; the last two score 2 and 1."""
    pool = np.asarray(fake, dtype=np.float64)
    reference = feature_statistics(np.asarray(real, dtype=np.float64))
    projected_pool = pool @ reference.factor  # [N, r]
    scores = np.zeros(pool.shape[0])
    rows = np.arange(pool.shape[0])
    while rows.size >= 3:
        kept = KeptSet.of(pool, projected_pool, reference, rows)
        batch = rows.size // BATCH_DIVISOR if rows.size > 2 * BATCH_DIVISOR else 1
        if rows.size <= EXACT_POOL:
            shortlist = np.arange(rows.size)
        else:
            shortlist = np.argsort(first_order_fids(kept), kind="stable")[:max(candidates, batch)]
        exact = removal_fids(kept, shortlist)
        removed = shortlist[np.argsort(exact, kind="stable")[:batch]]
        scores[rows[removed]] = rows.size - np.arange(batch)
        rows = np.delete(rows, removed)
    scores[rows] = np.arange(1, rows.size + 1)
    return scores


@register("realism_oracle")
class RealismOracle(UncertaintyEstimator):
    """An oracle of filtered FID from the real test features (reference row, never ranked; module docstring).

    Args:
        features: feature space of the score: "classifier" (the preset's domain classifier) or "inception".
        objective: "fid" (a ceiling of filtered FID in `features`: greedy FID-optimal removal) or "realism"
            (minus the realism score: a realism oracle, not a ceiling of FID).
        k: neighbourhood size of the real radii (paper: 3); objective "realism" only.
        prune_percentile: real hyperspheres with radius above this percentile are dropped (paper: 50); objective
            "realism" only.
        candidates: removal candidates evaluated exactly per greedy step (>= the pool size: exact greedy);
            objective "fid" only.
    """

    kind = "oracle"
    reference_row = True
    uses_network = False
    has_pixel_map = False
    nfe_formula = "0 (scored after generation from the run's features)"
    paper = "greedy FID-optimal removal (objective fid); Kynkaanniemi et al., NeurIPS 2019 realism score (realism)"
    needs = "the real test images' features (oracle)"

    def __init__(self, features: str = "classifier", objective: str = "fid", k: int = 3,
                 prune_percentile: float = 50.0, candidates: int = 8) -> None:
        if features not in FEATURE_SPACES:
            raise ConfigError("features", features, f"one of {', '.join(FEATURE_SPACES)}")
        if objective not in OBJECTIVES:
            raise ConfigError("objective", objective, f"one of {', '.join(OBJECTIVES)} (fid: a ceiling of filtered "
                                                      "FID; realism: the realism score, not a ceiling of FID)")
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ConfigError("k", k, "an integer >= 1 (paper: 3)", "set k = 3")
        if (isinstance(prune_percentile, bool) or not isinstance(prune_percentile, (int, float))
                or not math.isfinite(prune_percentile) or not 0 < prune_percentile <= 100):
            raise ConfigError("prune_percentile", prune_percentile, "a percentile in (0, 100] (paper: 50)")
        if not isinstance(candidates, int) or isinstance(candidates, bool) or candidates < 1:
            raise ConfigError("candidates", candidates, "an integer >= 1 (exact removals evaluated per greedy step)")
        self.features, self.objective, self.k = features, objective, k
        self.prune_percentile, self.candidates = float(prune_percentile), candidates

    def observe(self, step) -> None:  # noqa: D102 - scored after generation
        return None

    def result(self) -> EstimatorResult:
        zeros = torch.zeros(self.batch.size, *self.batch.sample_shape, device=self.batch.device)
        return EstimatorResult(pixel=zeros, score=zeros.flatten(1).sum(1))

    def score_features(self, fake: np.ndarray, real: np.ndarray) -> np.ndarray:
        """Scores [N] of the generated features fake [N, D] against the real features real [M, D]: the greedy
        removal order (objective "fid") or -R (objective "realism")."""
        if self.objective == "fid":
            if real.shape[0] < 2:
                raise ConfigError("realism_oracle.features", self.features,
                                  f"a space with at least 2 real samples (got {real.shape[0]})")
            return greedy_fid_scores(fake, real, self.candidates)
        if real.shape[0] <= self.k:
            raise ConfigError("realism_oracle.k", self.k, f"smaller than the {real.shape[0]} real samples")
        scores = realism_scores(torch.as_tensor(real), torch.as_tensor(fake), self.k, self.prune_percentile)
        return (-scores).numpy()


__all__ = ["KeptSet", "RealismOracle", "first_order_fids", "greedy_fid_scores", "realism_scores", "removal_fids"]
