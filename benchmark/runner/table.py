"""The tidy metrics table: one row per (protocol, estimator, metric)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import pandas as pd

COLUMNS = ["protocol", "estimator", "metric", "value", "ci_low", "ci_high", "n", "seed"]


@dataclass(frozen=True)
class MetricRow:
    protocol: str
    estimator: str
    metric: str
    value: float
    ci_low: float = math.nan
    ci_high: float = math.nan
    n: int = 0
    seed: int = 0


#: estimator name of rows that record a configured measurement that could not be made, and why
NOT_RUN = "(not run)"
#: metric base name of a NOT_RUN row -> the reason shown in the report
NOT_RUN_REASONS = {
    "no_real_features": "only reference statistics of the real images are committed for this feature space, and "
                        "precision/recall needs the real features themselves. Fix: give the real images through a "
                        "[data] section, or use a feature space with real features (e.g. classifier)",
}


def not_run_row(protocol: str, reason: str, space: str, seed: int = 0) -> MetricRow:
    """A metrics.csv row saying that `protocol` did not run in feature space `space` (value NaN, n = 0)."""
    if reason not in NOT_RUN_REASONS:
        raise KeyError(f"unknown not-run reason {reason!r}")
    return MetricRow(protocol, NOT_RUN, f"{reason}[{space}]", math.nan, n=0, seed=seed)


def not_run_lines(frame: pd.DataFrame) -> list[str]:
    """One report line per NOT_RUN row: the protocol, the feature space and the reason."""
    lines = []
    for row in frame[frame.estimator == NOT_RUN].itertuples():
        reason, _, space = str(row.metric).partition("[")
        lines.append(f"- `{row.protocol}` in the `{space.rstrip(']')}` space did not run: {NOT_RUN_REASONS[reason]}.")
    return lines


def row_from_ci(protocol: str, estimator: str, metric: str, ci, n: int, seed: int) -> MetricRow:
    """A row from a metrics.ConfidenceInterval (value, low, high)."""
    return MetricRow(protocol, estimator, metric, float(ci.value), float(ci.low), float(ci.high), int(n), int(seed))


def to_frame(rows: list[MetricRow]) -> pd.DataFrame:
    return pd.DataFrame([asdict(r) for r in rows], columns=COLUMNS)
