"""Fidelity or diversity: what a filter's kept K-subset changes, beside its ΔFID (issue 31, point 2).

A lower FID of the kept set can mean that the filter removes bad samples (the kept set's centre moves towards the
real data) or that it removes spread (a narrower kept set has a smaller tr(S) and a lower FID at the same centre).
Per filter and feature space, against the same R random K-subsets as `delta_vs_random` (fid_utils.RandomBaseline:
computed once per space, shared by every filter), each row is the kept set's value minus the mean over the R
subsets, with the randomization test of metrics.significance.randomization_test (H0: the kept set is a random
K-subset of the pool):

- `fid_mean_term_delta_vs_random`, `fid_trace_term_delta_vs_random`, `fid_cross_term_delta_vs_random`: FID split
  into ||mu_k - mu_r||^2, tr(S_k) and -2 tr((S_k S_r)^{1/2}) (metrics.fid_decomposition); the three sum to
  `delta_vs_random`;
- `kid_delta_vs_random`: KID of the kept set against the real test features (metrics.kid: unbiased, so no size
  bias; tested on the linear scale, as KID can be negative);
- `density_delta_vs_random`, `coverage_delta_vs_random`: Naeem et al. (ICML 2020) with k = REAL_SET_K against the
  real test features (metrics.density_coverage): density rises when the kept samples sit where real samples are
  dense (fidelity), coverage falls when the kept set leaves parts of the real data without a sample (diversity).

The last three need the real test set's features themselves (ProtocolInputs.real_features; filtered_fid declares
(space, real_test) in `features_read`). A space with only committed statistics (the fashion preset's Inception
space) has none: a "(not run)" row says so. benchmark.report.filter_character reads the rows into one sentence.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Callable

import numpy as np

from benchmark.protocols.fid_utils import RandomBaseline
from benchmark.protocols.table import MetricRow, row_from_ci
from metrics.density_coverage import DEFAULT_K, SubsetDensityCoverage
from metrics.kid import SubsetKID

REAL_SET_K = DEFAULT_K  # density/coverage's k: Naeem et al.'s recommended 5
#: FID term (metrics.fid_decomposition.DELTA_TERMS) -> its row's metric name
TERM_METRICS = {"mean": "fid_mean_term_delta_vs_random", "trace": "fid_trace_term_delta_vs_random",
                "cross": "fid_cross_term_delta_vs_random"}
#: statistics of a subset against the real features -> their row's metric name
REAL_SET_METRICS = {"kid": "kid_delta_vs_random", "density": "density_delta_vs_random",
                    "coverage": "coverage_delta_vs_random"}
#: the NOT_RUN reason of a space without real features (benchmark.protocols.table.NOT_RUN_REASONS)
NO_REAL_FEATURES = "no_real_features_kid_coverage"


@dataclass
class RealSetJudges:
    """KID and density/coverage of subsets of one pool [N, D] against the real test features [M, D] of a space,
    each built on first use (a part that needs none of them pays nothing)."""

    pool: np.ndarray
    real: np.ndarray
    k: int = REAL_SET_K

    @cached_property
    def kid(self) -> SubsetKID:
        return SubsetKID(self.pool, self.real)

    @cached_property
    def density_coverage(self) -> SubsetDensityCoverage:
        return SubsetDensityCoverage(self.pool, self.real, self.k)

    def statistics(self) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
        """name -> statistic of boolean masks [R, N] -> [R]. KID leaves out its real-real term, the same for every
        subset (metrics.kid.SubsetKID.relative): a difference and its linear-scale test do not depend on it."""
        return {"kid": lambda masks: self.kid.relative(masks),
                "density": lambda masks: self.density_coverage.density(masks),
                "coverage": lambda masks: self.density_coverage.coverage(masks)}


def character_rows(protocol: str, baseline: RandomBaseline, judges: RealSetJudges | None, mask: np.ndarray,
                   name: str, space: str, seed: int) -> list[MetricRow]:
    """The module doc's rows of filter `name` (kept `mask` [N] of the pool) in `space`; without real features
    (judges None) the FID terms only."""
    keep = int(np.sum(mask))
    rows = [row_from_ci(protocol, name, f"{TERM_METRICS[term]}[{space}]", ci, keep, seed)
            for term, ci in baseline.terms_cis(mask).items()]
    if judges is not None:
        rows += [row_from_ci(protocol, name, f"{REAL_SET_METRICS[stat]}[{space}]",
                             baseline.statistic_ci(stat, statistic, mask), keep, seed)
                 for stat, statistic in judges.statistics().items()]
    return rows
