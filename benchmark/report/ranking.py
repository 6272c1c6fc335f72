"""CI-aware comparisons of estimators on one metric, and which rows are references (never ranked).

Entry i is *significantly better* than entry j when i's whole 95 % interval lies on the better side of
j's whole interval (no overlap). An entry without an interval is its own interval [value, value].
"""
from __future__ import annotations

import math
from typing import Iterable

import pandas as pd

#: the floor's instance name: the `random` estimator, the one reference row every verdict is read against
FLOOR = "random"
#: rows the runner and the protocols write that are not estimators: what each one is, in one line (which estimators
#: are references comes from the estimators themselves: `reference_row`, recorded in the manifest)
RUNNER_ROWS = {
    "(all)": "all N samples, unfiltered",
    "(random K)": "a random subset of K samples (the equal-size comparison for a kept set)",
    "(sampler)": "plain sampling without any estimator (the cost baseline)",
    "plain": "the guidance protocol's pass without guidance",
    "guided": "the same pass from the same x_T with uncertainty guidance (Alg. 2)",
    "(placebo)": "the guided pass with its mask permuted within each image: same NFEs and guided pixel count, no "
                 "information from the map (guided vs placebo is the guidance verdict)",
    "(plain, matched NFE)": "plain sampling from the same x_T with more steps, as many NFEs per sample as the guided "
                            "pass (guided vs it: do the extra calls beat more steps?)",
}
ORACLE_EXPLANATION = ("an oracle: uses information a real estimator does not have (a ceiling only of the metric it "
                      "optimises, see its card)")


def is_runner_row(name: str) -> bool:
    """A row the runner or a protocol writes that is no estimator ((all), (random K), plain, guided, ...)."""
    return name in RUNNER_ROWS or name.startswith("(")


def is_reference(estimator: str, reference_names: Iterable[str] = ()) -> bool:
    """Reference rows are never ranked: the runner's own rows, the `random` floor, and every estimator whose class
    says `reference_row = True` (passed in `reference_names`, e.g. from the manifest)."""
    return is_runner_row(estimator) or estimator == FLOOR or estimator in set(reference_names)


def explain_reference(estimator: str, kind: str | None = None, configured=None, explanation: str = "") -> str:
    """One line saying what a reference row is: the runner's rows by name, an estimator by its class's
    `explanation` (benchmark.report.manifest.class_explanation) or kind (`configured`: the run's estimator
    instances, if known)."""
    if is_runner_row(estimator) and estimator in RUNNER_ROWS:
        return RUNNER_ROWS[estimator]
    if explanation:
        return explanation
    if estimator == FLOOR:
        import estimators

        return estimators.get_class(FLOOR).reference_explanation
    if kind == "oracle":
        return ORACLE_EXPLANATION
    if configured is not None and estimator not in configured:
        return "a baseline row of the protocol, not a configured estimator"
    return "a reference row (never ranked)"


def _bounds(values: pd.Series, lows: pd.Series, highs: pd.Series) -> tuple[pd.Series, pd.Series]:
    lo = lows.where(lows.notna() & highs.notna(), values)
    hi = highs.where(lows.notna() & highs.notna(), values)
    return lo, hi


def ci_aware_ranks(values: pd.Series, lows: pd.Series, highs: pd.Series, higher_is_better: bool) -> pd.Series:
    """1 + the number of entries whose interval lies entirely on the better side of this entry's interval.

    Entries whose intervals overlap share a rank; NaN values get no rank (NaN in the result).
    """
    valid = values.notna()
    lo, hi = _bounds(values[valid], lows[valid], highs[valid])
    ranks = {}
    for key in values.index:
        if not valid[key]:
            ranks[key] = math.nan
            continue
        better = (lo > hi[key]).sum() if higher_is_better else (hi < lo[key]).sum()
        ranks[key] = 1 + int(better)
    return pd.Series(ranks, dtype=float)


def significantly_best(values: pd.Series, lows: pd.Series, highs: pd.Series, higher_is_better: bool) -> str | None:
    """The entry significantly better than every other entry (its interval clear of all others), else None."""
    valid = values.dropna().index
    if len(valid) < 2:
        return None
    lo, hi = _bounds(values[valid], lows[valid], highs[valid])
    for key in valid:
        others = [k for k in valid if k != key]
        if higher_is_better and all(lo[key] > hi[k] for k in others):
            return key
        if not higher_is_better and all(hi[key] < lo[k] for k in others):
            return key
    return None


def compare(value: float, low: float, high: float, ref_value: float, ref_low: float, ref_high: float,
            higher_is_better: bool) -> int:
    """+1 when the entry is significantly better than the reference, -1 significantly worse, 0 otherwise."""
    lo, hi = (low, high) if not (math.isnan(low) or math.isnan(high)) else (value, value)
    rlo, rhi = (ref_low, ref_high) if not (math.isnan(ref_low) or math.isnan(ref_high)) else (ref_value, ref_value)
    if math.isnan(value) or math.isnan(ref_value):
        return 0
    if lo > rhi:
        return 1 if higher_is_better else -1
    if hi < rlo:
        return -1 if higher_is_better else 1
    return 0
