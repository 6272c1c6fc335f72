"""Replicates of one config pooled over their seeds: the spread of every metric and the pooled verdict of every test.

Each seed's run is a complete run with its own family of tests against the floor (benchmark.report.verdicts). Here:
- `metric_spread`: per (protocol, estimator, metric), mean, sd (n - 1), min and max of the value over the seeds;
- `pool_family`: per test of the family, the seeds' two-sided p-values combined by Stouffer's method on signed
  z-scores (metrics.combine: Z = sum_i s_i Phi^-1(1 - p_i / 2) / sqrt(k), p = 2 Phi(-|Z|), with s_i = +1 when
  seed i's effect lies on the metric's better side); the combined p-values are adjusted over the pooled family
  by the run's multiplicity method, and the pooled outcome is sign(Z) where the adjusted p <= ALPHA. A test is
  *stable across seeds* when every seed's own verdict (adjusted within that seed's family) is the same, and
  *flips with the seed* otherwise. The `random` row's tests are pooled too, as checks outside the family.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np
import pandas as pd

from benchmark.protocols.table import NOT_RUN
from benchmark.report import verdicts
from metrics.combine import stouffer
from metrics.significance import adjust

STABLE, FLIPS = "stable across seeds", "flips with the seed"
KEY = ("protocol", "estimator", "metric")
SPREAD_COLUMNS = [*KEY, "mean", "sd", "min", "max", "n_seeds"]


@dataclass(frozen=True)
class PooledVerdict:
    """One test over the seeds: each seed's value, raw p-value and own verdict (+1 better, -1 worse, 0 not
    distinguishable), Stouffer's Z, the combined and adjusted p-values and the pooled outcome."""

    protocol: str
    estimator: str
    metric: str
    seeds: tuple[int, ...]
    values: tuple[float, ...]
    p_values: tuple[float, ...]
    outcomes: tuple[int, ...]
    z: float
    combined_p: float
    adjusted_p: float
    outcome: int

    @property
    def stable(self) -> bool:
        return len(set(self.outcomes)) == 1

    @property
    def stability(self) -> str:
        return STABLE if self.stable else FLIPS

    @property
    def mean_value(self) -> float:
        return float(np.mean(self.values))


@dataclass(frozen=True)
class PooledFamily:
    """The pooled family (tests of ranked estimators, adjusted together) and the floor's pooled checks (raw p)."""

    verdicts: tuple[PooledVerdict, ...]
    method: str
    seeds: tuple[int, ...]
    floor_checks: tuple[PooledVerdict, ...] = ()

    @property
    def size(self) -> int:
        return len(self.verdicts)

    def stable(self) -> tuple[PooledVerdict, ...]:
        return tuple(v for v in self.verdicts if v.stable)

    def flipping(self) -> tuple[PooledVerdict, ...]:
        return tuple(v for v in self.verdicts if not v.stable)


def metric_spread(frames: Mapping[int, pd.DataFrame]) -> pd.DataFrame:
    """Per (protocol, estimator, metric): mean, sd (ddof 1; NaN with one seed), min, max of the finite values over
    the seeds, and how many seeds gave one (n_seeds). Rows of measurements that did not run are left out."""
    rows = pd.concat([f.assign(seed=seed) for seed, f in frames.items()], ignore_index=True)
    rows = rows[(rows.estimator != NOT_RUN) & np.isfinite(rows.value.astype(float))]
    spread = rows.groupby(list(KEY), sort=False).value.agg(["mean", "std", "min", "max", "count"]).reset_index()
    return spread.rename(columns={"std": "sd", "count": "n_seeds"})[SPREAD_COLUMNS]


def pool_family(frames: Mapping[int, pd.DataFrame], is_reference: Callable[[str], bool],
                method: str = "holm") -> PooledFamily:
    """The pooled verdicts of the seeds' metrics tables (seed -> metrics.csv frame), as in the module docstring.
    A test is pooled over the seeds whose family holds it (n_seeds may be below the seeds' count)."""
    seeds = tuple(frames)
    families = {s: verdicts.family(f, is_reference, method) for s, f in frames.items()}
    sides = {s: _sides(f, is_reference) for s, f in frames.items()}
    members = _combined(families, sides, "verdicts")
    adjusted = adjust([c.p_value for _, _, c in members], method) if members else np.array([])
    pooled = tuple(_pooled(key, found, combined, float(p)) for (key, found, combined), p in zip(members, adjusted))
    checks = tuple(_pooled(key, found, combined, combined.p_value)
                   for key, found, combined in _combined(families, sides, "floor_checks"))
    return PooledFamily(pooled, method, seeds, checks)


def _key(v) -> tuple[str, str, str]:
    return v.protocol, v.estimator, v.metric


def _sides(frame: pd.DataFrame, is_reference) -> dict[tuple[str, str, str], int]:
    """Per test, the side its effect lies on (+1 better, -1 worse, 0 at the floor): the family's own outcome rule
    (verdicts.family) at p = 0, so the side follows the family's directions and floors (an AUROC's is 0.5)."""
    tests = frame.p_value.notna()
    certain = verdicts.family(frame.assign(p_value=frame.p_value.where(~tests, 0.0)), is_reference, "none")
    return {_key(v): v.outcome for v in (*certain.verdicts, *certain.floor_checks)}


def _combined(families: Mapping[int, verdicts.Family], sides: Mapping[int, dict], attr: str):
    """[(key, [(seed, Verdict)], CombinedTest)] for every test in some seed's `attr` (verdicts or floor_checks)."""
    found: dict[tuple[str, str, str], list] = {}
    for seed, fam in families.items():
        for v in getattr(fam, attr):
            found.setdefault(_key(v), []).append((seed, v))
    return [(key, items, stouffer([v.p_value for _, v in items], [sides[s][key] for s, _ in items]))
            for key, items in found.items()]


def _pooled(key, found, combined, adjusted_p: float) -> PooledVerdict:
    outcome = combined.side if math.isfinite(adjusted_p) and adjusted_p <= verdicts.ALPHA else 0
    return PooledVerdict(*key, seeds=tuple(s for s, _ in found), values=tuple(v.value for _, v in found),
                         p_values=tuple(v.p_value for _, v in found), outcomes=tuple(v.outcome for _, v in found),
                         z=combined.z, combined_p=combined.p_value, adjusted_p=adjusted_p, outcome=outcome)


def pooled_table(family: PooledFamily) -> pd.DataFrame:
    """pooled_verdicts.csv: one row per pooled test (the family's, then the floor's checks), per seed its value,
    raw p-value and own outcome, then Z, the combined and adjusted p-values, the pooled outcome and stability."""
    rows = []
    for role, members in (("family", family.verdicts), ("floor check", family.floor_checks)):
        for v in members:
            per_seed = {}
            for seed, value, p, outcome in zip(v.seeds, v.values, v.p_values, v.outcomes):
                per_seed |= {f"value_seed_{seed}": value, f"p_seed_{seed}": p, f"outcome_seed_{seed}": outcome}
            rows.append({"protocol": v.protocol, "estimator": v.estimator, "metric": v.metric, "role": role,
                         "n_seeds": len(v.seeds), "mean_value": v.mean_value, **per_seed, "z": v.z,
                         "combined_p": v.combined_p, "adjusted_p": v.adjusted_p, "outcome": v.outcome,
                         "stability": v.stability})
    per_seed = [f"{what}_seed_{s}" for s in family.seeds for what in ("value", "p", "outcome")]
    return pd.DataFrame(rows, columns=[*KEY, "role", "n_seeds", "mean_value", *per_seed, "z", "combined_p",
                                       "adjusted_p", "outcome", "stability"])
