"""Simulation of `regress --mode errors` (benchmark.publish.regress_errors) on synthetic metric tables with a known
answer (used by tests/test_regress_errors.py).

A run's table: M metrics of known true values mu_j and standard errors se_j; a run reports value = mu_j + se_j Z and
the 95 % interval value ± 1.96 se_j (what a bootstrap interval of a normal estimate gives), so its se read back from
the interval is se_j. A rerun with another seed draws new Z's around the same mu (no change: any flag is a false
alarm); a planted regression moves the first `shifted` metrics by `shift` standard errors of the change,
sqrt(se_base² + se_run²) = sqrt(2) se_j, towards worse. Each metric's practical threshold is its kind's cross-machine
tolerance (benchmark.publish.regression.kind_tolerance), well below its standard error here, as at the smoke and demo
sizes; `practical=False` sets it to 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmark.publish.regress_errors import Z95, judge_arrays, standard_errors
from benchmark.publish.regression import kind_tolerance
from benchmark.report.metric_info import direction

#: (metric, true value, standard error): FID 50 ± 5, AUSE 0.3 ± 0.03, ... (directions from metric_info)
KINDS = (("ause", 0.3, 0.03), ("aurg", 0.2, 0.03), ("fid_kept[classifier]", 50.0, 5.0),
         ("precision[classifier]", 0.7, 0.04), ("auroc_lowest_10pct_density", 0.6, 0.05))


@dataclass(frozen=True)
class Case:
    metrics: int = 30  # rows of a run
    shift: float = 0.0  # in standard errors of the change
    shifted: int = 0  # how many metrics (the first ones) carry the shift
    method: str = "holm"
    practical: bool = True  # False: no practical threshold


@dataclass(frozen=True)
class Rates:
    any_flag: float  # share of reruns with at least one flag (a false alarm when nothing was shifted)
    shifted_flagged: float  # share of shifted metrics flagged (per-metric power)
    reps: int


def flag_rate(case: Case, reps: int, seed: int = 0) -> Rates:
    rng = np.random.default_rng(seed)
    kinds = [KINDS[j % len(KINDS)] for j in range(case.metrics)]
    mu = np.array([k[1] for k in kinds])
    se = np.array([k[2] for k in kinds])
    sign = np.array([direction(k[0]) for k in kinds])
    tol = [kind_tolerance(k[0], (0.05, 0.05)) for k in kinds]
    threshold = np.array([a + r * abs(m) for (a, r), m in zip(tol, mu)]) if case.practical else np.zeros(case.metrics)
    offset = np.zeros(case.metrics)
    offset[:case.shifted] = -sign[:case.shifted] * case.shift * np.sqrt(2.0) * se[:case.shifted]
    any_flag = hits = 0
    for _ in range(reps):
        base = mu + se * rng.standard_normal(case.metrics)
        run = mu + offset + se * rng.standard_normal(case.metrics)
        se_base = standard_errors(base - Z95 * se, base + Z95 * se)  # read back from the intervals, as regress does
        se_run = standard_errors(run - Z95 * se, run + Z95 * se)
        flagged = judge_arrays(base, run, se_base, se_run, threshold, sign, method=case.method).status != "ok"
        any_flag += bool(flagged.any())
        hits += int(flagged[:case.shifted].sum())
    return Rates(any_flag / reps, hits / max(reps * case.shifted, 1), reps)
