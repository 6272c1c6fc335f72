"""`python -m benchmark regress --baseline FILE --run DIR`: compare a run's metrics with a committed baseline.

The baseline is a CSV with columns protocol, estimator, metric, value, abs_tol, rel_tol. A metric regresses
when it is missing from the run, or when |run - baseline| > abs_tol + rel_tol * |baseline|.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from benchmark.errors import ConfigError

KEY = ["protocol", "estimator", "metric"]


@dataclass(frozen=True)
class Regression:
    protocol: str
    estimator: str
    metric: str
    baseline: float
    value: float
    tolerance: float

    def describe(self) -> str:
        if math.isnan(self.value):
            return f"{self.protocol}/{self.estimator}/{self.metric}: missing from the run (baseline {self.baseline:.6g})"
        return (f"{self.protocol}/{self.estimator}/{self.metric}: {self.value:.6g} vs baseline {self.baseline:.6g} "
                f"(|diff| {abs(self.value - self.baseline):.3g} > tolerance {self.tolerance:.3g})")


def compare(baseline: pd.DataFrame, run: pd.DataFrame) -> list[Regression]:
    merged = baseline.merge(run[KEY + ["value"]], on=KEY, how="left", suffixes=("_base", "_run"))
    found = []
    for row in merged.itertuples(index=False):
        tolerance = float(row.abs_tol) + float(row.rel_tol) * abs(float(row.value_base))
        value = float(row.value_run)
        if math.isnan(value) and math.isnan(float(row.value_base)):
            continue
        if math.isnan(value) or abs(value - float(row.value_base)) > tolerance:
            found.append(Regression(row.protocol, row.estimator, row.metric, float(row.value_base), value, tolerance))
    return found


def load_baseline(path: Path) -> pd.DataFrame:
    """The baseline CSV, checked (benchmark.runner.metrics_file): bad files are ConfigError (exit 2)."""
    from benchmark.runner.metrics_file import read_baseline

    return read_baseline(Path(path))


def make_baseline(run: pd.DataFrame, tolerances: dict[str, tuple[float, float]], default: tuple[float, float]) -> pd.DataFrame:
    """A baseline from a run: tolerances per protocol (abs_tol, rel_tol), else `default`."""
    frame = run[KEY + ["value"]].copy()
    frame["abs_tol"] = [tolerances.get(p, default)[0] for p in frame.protocol]
    frame["rel_tol"] = [tolerances.get(p, default)[1] for p in frame.protocol]
    return frame


def regress(baseline_path: Path, run_dir: Path) -> tuple[int, str]:
    """(exit code, readable text): 0 when every baseline metric is within tolerance, 1 when one is not (the only
    case of exit 1: unreadable inputs raise ConfigError, exit 2; a crash is a fault, exit 3)."""
    from benchmark.runner.metrics_file import REGRESS_COLUMNS, read_metrics

    if not Path(run_dir).is_dir():
        raise ConfigError("--run", str(run_dir), "a finished run folder", "run the config first")
    baseline = load_baseline(Path(baseline_path))
    found = compare(baseline, read_metrics(Path(run_dir), columns=REGRESS_COLUMNS))
    if not found:
        return 0, f"OK: {len(baseline)} metrics within tolerance of {baseline_path}"
    lines = [f"REGRESSION: {len(found)} of {len(baseline)} metrics outside tolerance of {baseline_path}:"]
    lines += [f"  - {r.describe()}" for r in found]
    return 1, "\n".join(lines)
