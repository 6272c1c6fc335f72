"""One test repeated over independent replicates (seeds), pooled: Stouffer's method on signed z-scores.

Replicate i gives a two-sided p-value p_i and the side s_i in {+1, -1, 0} its effect lies on (+1: the better
side, -1: the worse side, 0: exactly at the null value). Its signed z-score is the one-sided z for "better":

    z_i = s_i * Phi^-1(1 - p_i / 2)                (= s_i * isf(p_i / 2); p_i = 1 or s_i = 0 give z_i = 0)

and the pooled statistic and two-sided p-value are (equal weights: the replicates have the same size)

    Z = sum_i z_i / sqrt(k),        p = 2 * Phi(-|Z|),        pooled side = sign(Z).

Why this test. Under H0 (the estimator carries no information) each seed's p_i is uniform and its side is +1 or -1
with probability 1/2 independently of p_i (a symmetric null), so z_i ~ N(0, 1). Seeds that differ only in their
randomness (initial noise, random subsets, bootstrap draws) are independent given what they share (the model, the
real images): H0 holds given those, so the z_i are independent N(0, 1) given them and Z ~ N(0, 1) exactly, at any
number of seeds k. The signs make opposite results cancel: a seed better by z and another worse by z give Z = 0,
so a pooled verdict needs the effect on one side in the seeds taken together. Fisher's method (-2 sum log p_i ~
chi2_{2k}) reads two-sided p-values without their side and would count "better in one seed, worse in another" as
evidence; run on each one-sided side it is dominated by one extreme seed. Z is also the z of the mean effect when
each seed's statistic is normal with a common variance, the natural pooled estimate for replicates of one size.

`stouffer` equals scipy.stats.combine_pvalues(q, method="stouffer") on the one-sided p-values for "better",
q_i = Phi(-z_i): that returns Phi(-Z), and p = 2 min(Phi(-Z), 1 - Phi(-Z)).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

#: the smallest p-value read as given: below it isf(p / 2) would be infinite (and +inf - inf undefined)
P_FLOOR = 1e-300


@dataclass(frozen=True)
class CombinedTest:
    """Stouffer's pooled test of k replicates: the signed z-scores, Z, its two-sided p-value and side."""

    z_scores: tuple[float, ...]
    z: float
    p_value: float

    @property
    def side(self) -> int:
        """+1 when the replicates together lie on the better side, -1 on the worse, 0 at the null."""
        return int(np.sign(self.z))

    @property
    def size(self) -> int:
        return len(self.z_scores)


def signed_z(p_value: float, side: int) -> float:
    """z_i = s_i * Phi^-1(1 - p_i / 2) of a two-sided p-value and its side (module docstring)."""
    if not 0.0 <= p_value <= 1.0:
        raise ValueError(f"p-value {p_value!r} is not in [0, 1]")
    if side not in (-1, 0, 1):
        raise ValueError(f"side {side!r} is not -1, 0 or +1")
    return float(side * stats.norm.isf(max(p_value, P_FLOOR) / 2.0))


def stouffer(p_values: Sequence[float], sides: Sequence[int]) -> CombinedTest:
    """Z = sum_i z_i / sqrt(k) over k >= 1 replicates' two-sided p-values and sides, p = 2 Phi(-|Z|)."""
    if len(p_values) != len(sides) or not len(p_values):
        raise ValueError(f"{len(p_values)} p-values and {len(sides)} sides: give one side per p-value, at least one")
    z_scores = tuple(signed_z(float(p), int(s)) for p, s in zip(p_values, sides))
    z = math.fsum(z_scores) / math.sqrt(len(z_scores))
    return CombinedTest(z_scores, z, float(min(1.0, 2.0 * stats.norm.sf(abs(z)))))
