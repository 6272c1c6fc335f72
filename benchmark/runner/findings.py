"""The report's "findings": which estimators beat the `random` floor with significance, which are worse.

Generated from the numbers only. On each quality metric of the headline table an estimator is
- *better than random* when its 95 % interval lies entirely on the better side of random's interval, or,
  for a paired difference against random (`delta_vs_random`), when that difference's interval excludes 0
  on the better side;
- *worse than random* in the mirror case;
- not distinguishable otherwise.
Cost metrics are not verdicts and are left out.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from benchmark.runner import metric_info, ranking
from benchmark.runner.report_tables import FLOOR, Column, Roles, headline_columns


@dataclass
class Verdicts:
    """Per estimator: (metric label, evidence text) lists by outcome."""

    better: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    worse: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    unclear: dict[str, list[str]] = field(default_factory=dict)


def is_paired_vs_floor(metric: str) -> bool:
    return "vs_random" in metric_info.parse(metric).base


def verdict(column: Column, estimator: str) -> tuple[int, str]:
    """(+1 better / -1 worse / 0 not distinguishable from random, evidence)."""
    sign = metric_info.direction(column.metric)
    value, low, high = column.values[estimator]
    shown = metric_info.format_value(value, low, high)
    if is_paired_vs_floor(column.metric):
        return ranking.compare(value, low, high, 0.0, math.nan, math.nan, sign > 0), shown
    if FLOOR not in column.values:
        return 0, shown
    floor = column.values[FLOOR]
    return (ranking.compare(value, low, high, *floor, sign > 0),
            f"{shown} vs {metric_info.format_value(*floor)}")


def collect(frame: pd.DataFrame, roles: Roles, spaces: list[str]) -> Verdicts:
    out = Verdicts()
    for column in headline_columns(frame, spaces):
        if metric_info.direction(column.metric) == 0 or metric_info.is_cost(column.metric):
            continue
        if FLOOR not in column.values and not is_paired_vs_floor(column.metric):
            continue
        label = metric_info.label(column.metric)
        for name in roles.order(column.values):
            if roles.is_reference(name):
                continue
            outcome, evidence = verdict(column, name)
            if outcome > 0:
                out.better.setdefault(name, []).append((label, evidence))
            elif outcome < 0:
                out.worse.setdefault(name, []).append((label, evidence))
            else:
                out.unclear.setdefault(name, []).append(label)
    return out


def findings_lines(frame: pd.DataFrame, roles: Roles, spaces: list[str], negatable: set[str] = frozenset()) -> list[str]:
    """Markdown bullet lines, one per ranked estimator, plus how to read them."""
    found = collect(frame, roles, spaces)
    judged = {*found.better, *found.worse, *found.unclear}
    names = [n for n in dict.fromkeys(frame.estimator) if n in judged]  # the run's order
    if not names:
        return ["No ranked estimator has a quality metric that can be compared with the `random` floor."]
    lines = []
    for name in names:
        better, worse, unclear = found.better.get(name, []), found.worse.get(name, []), found.unclear.get(name, [])
        if better and not worse:
            head = "**beats random**"
        elif worse and not better:
            head = "**worse than random**"
        elif better and worse:
            head = "mixed"
        else:
            head = "not distinguishable from random"
        parts = []
        if better:
            parts.append("better on " + "; ".join(f"{m}: {e}" for m, e in better))
        if worse:
            parts.append("worse on " + "; ".join(f"{m}: {e}" for m, e in worse))
        if unclear:
            parts.append("no significant difference on " + ", ".join(unclear))
        line = f"- `{name}` {head} — " + "; ".join(parts) + "."
        if worse and not better and name in negatable:
            line += (" Its score may be ordered the other way round from what the protocols assume: test the "
                     "inverted score as its own row (`negate = true` in a separate `[estimators.<name>]` table).")
        lines.append(line)
    lines.append("")
    lines.append("Better/worse: 95 % intervals that do not overlap random's (for paired differences against random: "
                 "an interval that excludes 0); evidence shows the estimator's value, then random's.")
    return lines
