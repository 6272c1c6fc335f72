"""A finished run's tables as typed pandas DataFrames: the tidy metrics, the family of verdicts, the headline.

Each is computed from the run's metrics.csv and manifest.json by the code that wrote its report
(benchmark.report.verdicts, benchmark.report.tables): the verdicts and the headline here are those of report.md.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from benchmark.protocols.table import NOT_RUN
from benchmark.report import verdicts as report_verdicts
from benchmark.report.tables import FLOOR, Roles, headline_columns, headline_table, winner

KEYS = ("protocol", "estimator", "metric")
INTEGER_COLUMNS = ("n", "seed")
#: the columns of `verdicts_frame`, in order
VERDICT_COLUMNS = ["protocol", "estimator", "metric", "value", "ci_low", "ci_high", "n", "p_value", "adjusted_p",
                   "outcome", "verdict", "detectable_effect", "detectable_at_family_level"]
WORDS = {1: "better", -1: "worse", 0: "not distinguishable"}
#: the second level of the headline's columns
HEADLINE_STATS = ("value", "ci_low", "ci_high", "beats_floor")


def typed_metrics(frame: pd.DataFrame) -> pd.DataFrame:
    """metrics.csv as read by `read_metrics`, typed: keys as str, n and seed as nullable integers (Int64), the
    rest float64 (NaN: no interval, not a test, not recorded)."""
    out = frame.copy()
    for column in out.columns:
        if column in KEYS:
            out[column] = out[column].astype(str)
        elif column in INTEGER_COLUMNS and _integral(out[column]):
            out[column] = out[column].astype("Int64")
        else:
            out[column] = out[column].astype("float64")
    return out.reset_index(drop=True)


def _integral(column: pd.Series) -> bool:
    values = column.dropna().to_numpy(dtype=float)
    return bool(np.all(np.isfinite(values) & (values == np.round(values))))


def roles(manifest: dict[str, Any]) -> Roles:
    """The report's roles of a run's rows (references, kinds, configured instances) from its manifest's estimator
    records (benchmark.report.document.ReportData.roles, from the records the run wrote)."""
    records = manifest.get("estimators") or {}
    references = frozenset({FLOOR} | {n for n, r in records.items() if r.get("reference_row")})
    return Roles(references, {n: r.get("kind") for n, r in records.items()},
                 frozenset(records) if records else None,
                 {n: r["explanation"] for n, r in records.items() if r.get("explanation")})


def method(manifest: dict[str, Any]) -> str:
    """The run's multiplicity adjustment (run.multiplicity; Holm when the config does not say)."""
    return (manifest.get("config") or {}).get("run", {}).get("multiplicity", "holm")


def family(frame: pd.DataFrame, manifest: dict[str, Any]) -> report_verdicts.Family:
    """The run's family of tests, as its report took it."""
    measured = frame[frame.estimator != NOT_RUN]
    return report_verdicts.family(measured, roles(manifest).is_reference, method(manifest))


def verdicts_frame(frame: pd.DataFrame, manifest: dict[str, Any]) -> pd.DataFrame:
    """One row per test of the family: effect and 95 % interval (not adjusted), raw and adjusted p-value, outcome
    (+1 better than the floor, -1 worse, 0 not distinguishable) and its word, the minimum detectable effect (80 %
    power) at the raw 5 % level and at the family's strictest level. `attrs`: method, family_size, description."""
    fam = family(frame, manifest)
    rows = [{"protocol": v.protocol, "estimator": v.estimator, "metric": v.metric, "value": v.value,
             "ci_low": v.ci_low, "ci_high": v.ci_high, "n": v.n, "p_value": v.p_value, "adjusted_p": v.adjusted_p,
             "outcome": v.outcome, "verdict": WORDS[v.outcome], "detectable_effect": v.detectable,
             "detectable_at_family_level": fam.detectable(v)} for v in fam.verdicts]
    table = pd.DataFrame(rows, columns=VERDICT_COLUMNS).astype(
        {"n": "int64", "outcome": "int64", **{c: "float64" for c in ("value", "ci_low", "ci_high", "p_value",
                                                                     "adjusted_p", "detectable_effect",
                                                                     "detectable_at_family_level")}})
    table.attrs.update(method=fam.method, family_size=fam.size, description=fam.description() if fam.size else "")
    return table


def headline_frame(frame: pd.DataFrame, manifest: dict[str, Any]) -> pd.DataFrame:
    """The report's headline table: one row per estimator (ranked first, then reference rows, as in report.md),
    columns (the report's column header, stat) with stat in value, ci_low, ci_high and beats_floor (the report's
    bold: better than the floor after the family's adjustment), and ("reference", "") for reference rows."""
    measured = frame[frame.estimator != NOT_RUN]
    spaces = list((manifest.get("config") or {}).get("run", {}).get("features", []))
    run_roles, fam = roles(manifest), family(frame, manifest)
    _, names = headline_table(measured, run_roles, spaces, fam)
    columns = [c for c in headline_columns(measured, spaces) if c.values]
    data: dict[tuple[str, str], list] = {("reference", ""): [run_roles.is_reference(n) for n in names]}
    for column in columns:
        entries = [column.values.get(n, (math.nan, math.nan, math.nan)) for n in names]
        for i, stat in enumerate(HEADLINE_STATS[:3]):
            data[(column.header, stat)] = [float(e[i]) for e in entries]
        bold = winner(column, run_roles, fam)
        data[(column.header, "beats_floor")] = [n in bold for n in names]
    table = pd.DataFrame(data, index=pd.Index(names, name="estimator"))
    table.columns = pd.MultiIndex.from_tuples(list(data), names=["column", "stat"])
    return table
