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


def row_from_ci(protocol: str, estimator: str, metric: str, ci, n: int, seed: int) -> MetricRow:
    """A row from a metrics.ConfidenceInterval (value, low, high)."""
    return MetricRow(protocol, estimator, metric, float(ci.value), float(ci.low), float(ci.high), int(n), int(seed))


def to_frame(rows: list[MetricRow]) -> pd.DataFrame:
    return pd.DataFrame([asdict(r) for r in rows], columns=COLUMNS)
