"""FID split into its terms, and a kept set's terms against random subsets of the same pool.

The Fréchet distance of a set k (mean mu_k, covariance S_k) to a reference r (mu_r, S_r) is a sum of four terms:

    FID(k, r) = ||mu_k - mu_r||^2  +  tr(S_k)  +  tr(S_r)  -  2 tr((S_k S_r)^{1/2})
              =     mean term      + trace term + reference   +    cross term

- the mean term moves with the set's centre: a filter that removes samples far from the real data moves the kept
  set's centre towards the real one (fidelity: "removes bad samples");
- the trace term tr(S_k) is the kept set's total variance: a filter that keeps a narrower set lowers it, and so
  lowers FID, even with the centre unchanged (diversity: "removes spread");
- the cross term -2 tr((S_k S_r)^{1/2}) couples the two covariances (more negative when S_k grows along the
  reference's directions); tr(S_r) is the same for every set compared with one reference.

A filter's kept K is compared with R random K-subsets j of the same pool (`terms_delta`):

    Δ_term = term(kept) - (1/R) sum_j term(random j),   term in {mean, trace, cross}
    Δ_mean + Δ_trace + Δ_cross = FID(kept) - (1/R) sum_j FID(random j) = delta_vs_random

(tr(S_r) cancels). The FIDs of the protocol evaluate these terms on count vectors without D x D products
(metrics.count_weighted.FixedReferenceFID.terms); `fid_terms` is the same split from two FeatureStats.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from metrics.frechet import FeatureStats, trace_sqrt_product

#: the terms a filter's ΔFID is split into (FIDTerms attributes; tr(S_r) cancels in a difference)
DELTA_TERMS = ("mean", "trace", "cross")


@dataclass(frozen=True)
class FIDTerms:
    """mean = ||mu_k - mu_r||^2, trace = tr(S_k), reference_trace = tr(S_r), cross = -2 tr((S_k S_r)^{1/2});
    FID = their sum (`total`)."""

    mean: float
    trace: float
    reference_trace: float
    cross: float

    @property
    def total(self) -> float:
        """mean + tr(S_r) + tr(S_k) + cross: the FID (summed in the order of frechet.frechet_distance)."""
        return self.mean + self.reference_trace + self.trace + self.cross


def fid_terms(stats: FeatureStats, reference: FeatureStats) -> FIDTerms:
    """The four terms of FID(stats, reference) (module doc); the reference's covariance factor is cached on it."""
    gap = np.asarray(stats.mu, dtype=np.float64) - np.asarray(reference.mu, dtype=np.float64)
    root = trace_sqrt_product(reference.sigma, stats.sigma, reference.factor)
    return FIDTerms(mean=float(gap @ gap), trace=float(np.trace(stats.sigma)),
                    reference_trace=float(np.trace(reference.sigma)), cross=-2.0 * root)


def term_values(terms: Sequence[FIDTerms], name: str) -> np.ndarray:
    """[R] values of one term (an FIDTerms attribute) over a list of sets."""
    return np.array([getattr(t, name) for t in terms], dtype=np.float64)


def terms_delta(kept: FIDTerms, null: Sequence[FIDTerms]) -> dict[str, float]:
    """{term: term(kept) - mean over `null` of term} for the DELTA_TERMS; their sum is FID(kept) - mean FID(null)."""
    return {name: float(getattr(kept, name) - term_values(null, name).mean()) for name in DELTA_TERMS}
