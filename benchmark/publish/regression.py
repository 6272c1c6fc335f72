"""`python -m benchmark regress --baseline FILE --run DIR`: compare a run's metrics with a committed baseline.

The baseline is a CSV with columns protocol, estimator, metric, value, abs_tol, rel_tol. A metric regresses
when it is missing from the run, or when |run - baseline| > abs_tol + rel_tol * |baseline|.

`--write-baseline` sets each row's tolerance by metric kind (`KIND_TOLERANCES`): the spread the same code gives on
another x86-64 CPU model, where oneDNN/BLAS kernels round differently. Measured (issue 27): the committed demo re-run
on an AMD EPYC differed from the Intel reference in 46 of 260 non-timing metrics, max abs 0.002, all precision/recall
flips of one sample of K = 500 (1/K); features differ from the 7th digit. So counting metrics (NFEs) must match
exactly, share-of-samples metrics (precision, recall, AUROC, class shares) may move by a few samples at the smoke
sizes (K = 100: 0.01 a sample), and FIDs by 5 % (the score of a sample at the keep boundary may tie differently,
swapping one sample of the kept set).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from benchmark.errors import ConfigError

KEY = ["protocol", "estimator", "metric"]
#: wall-clock metrics: they measure the machine, never compared by `regress` nor written to a baseline
TIMING_METRICS = ("seconds_per_sample", "time_ratio")


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
    """The baseline CSV, checked (benchmark.report.metrics_file): bad files are ConfigError (exit 2)."""
    from benchmark.report.metrics_file import read_baseline

    frame = read_baseline(Path(path))
    fix = "point --baseline at a file written by `regress --write-baseline` (see results/baselines/)"
    for column in ("abs_tol", "rel_tol"):
        negative = frame.index[frame[column].astype(float) < 0]
        if len(negative):
            line = int(negative[0]) + 2  # the header is line 1
            raise ConfigError("--baseline", str(path), f"tolerances >= 0, but line {line} has {column} = "
                              f"{float(frame[column].iloc[negative[0]]):g}", f"set {column} >= 0 on line {line}, or {fix}")
    check_unique_keys(frame, "--baseline", str(path), f"remove the repeated line, or {fix}")
    return frame


def check_unique_keys(frame: pd.DataFrame, field: str, path: str, fix: str) -> None:
    """One row per (protocol, estimator, metric): a repeated key would be compared twice with different values."""
    repeated = frame.index[frame.duplicated(KEY, keep="first")]
    if len(repeated):
        row = frame.loc[repeated[0]]
        first = int(frame.index[(frame[KEY] == row[KEY]).all(axis=1)][0]) + 2
        raise ConfigError(field, path, f"one row per protocol, estimator, metric, but lines {first} and "
                          f"{int(repeated[0]) + 2} are both {row.protocol}/{row.estimator}/{row.metric}", fix)


#: (first word(s) of the metric's base name, (abs_tol, rel_tol)): the cross-machine tolerance of a metric kind (see the
#: module doc); the first match wins, `default` of make_baseline otherwise
KIND_TOLERANCES: tuple[tuple[tuple[str, ...], tuple[float, float]], ...] = (
    (("nfe_per_sample", "extra_nfe_per_sample", "nfe_ratio", "decoder_calls_per_sample", "start_timestep"), (0.0, 0.0)),
    (("precision", "recall", "f1", "auroc", "removed_share", "removed_class", "fraction_changed"), (0.03, 0.0)),
    (("fid", "delta", "fid_infinity", "fid_random_mean"), (0.05, 0.05)),
    (("ause", "aurg", "rmse", "spearman", "calibration_ratio", "mean_abs_change"), (0.01, 0.02)),
)


def kind_tolerance(metric: str, default: tuple[float, float]) -> tuple[float, float]:
    """(abs_tol, rel_tol) of a metric by its kind (KIND_TOLERANCES), else `default`."""
    from metrics.info import base_metric_name

    base = base_metric_name(metric)
    for prefixes, tolerance in KIND_TOLERANCES:
        if base in prefixes or base.startswith(tuple(p + "_" for p in prefixes)):
            return tolerance
    return default


def make_baseline(run: pd.DataFrame, tolerances: dict[str, tuple[float, float]], default: tuple[float, float]) -> pd.DataFrame:
    """A baseline from a run: tolerances per protocol (abs_tol, rel_tol) when given, else by metric kind
    (`kind_tolerance`), else `default`; the run's intervals (ci_low, ci_high) are kept where it has them, so that one
    baseline serves both modes of `regress` (tolerance, and errors: benchmark.publish.regress_errors)."""
    frame = run[KEY + ["value"] + [c for c in ("ci_low", "ci_high") if c in run.columns]].copy()  # errors mode
    chosen = [tolerances[p] if p in tolerances else kind_tolerance(m, default)
              for p, m in zip(frame.protocol, frame.metric)]
    frame["abs_tol"] = [t[0] for t in chosen]
    frame["rel_tol"] = [t[1] for t in chosen]
    return frame


def regress(baseline_path: Path, run_dir: Path) -> tuple[int, str]:
    """(exit code, readable text): 0 when every baseline metric is within tolerance, 1 when one is not (the only
    case of exit 1: unreadable inputs raise ConfigError, exit 2; a crash is a fault, exit 3)."""
    from benchmark.report.metrics_file import REGRESS_COLUMNS, read_metrics

    if not Path(run_dir).is_dir():
        raise ConfigError("--run", str(run_dir), "a finished run folder", "run the config first")
    baseline = load_baseline(Path(baseline_path))
    run = read_metrics(Path(run_dir), columns=REGRESS_COLUMNS)
    check_unique_keys(run, "--run", str(Path(run_dir) / "metrics.csv"), "give a finished run folder (its metrics.csv "
                      "is written once per run; rerun the config if it was edited)")
    found = compare(baseline, run)
    if not found:
        return 0, f"OK: {len(baseline)} metrics within tolerance of {baseline_path}"
    lines = [f"REGRESSION: {len(found)} of {len(baseline)} metrics outside tolerance of {baseline_path}:"]
    lines += [f"  - {r.describe()}" for r in found]
    return 1, "\n".join(lines)


def regress_by_tolerance(baseline_path: Path, run_dir: Path) -> "RegressResult":
    """`regress --mode tolerance` (the default, the cross-machine mode) as a RegressResult, for the JSON / JUnit /
    Markdown reports: every baseline metric, flagged ("changed" or "missing") as `regress` flags it."""
    from benchmark.publish.regress_report import MetricChange, RegressResult
    from benchmark.report.metrics_file import REGRESS_COLUMNS, read_metrics

    if not Path(run_dir).is_dir():
        raise ConfigError("--run", str(run_dir), "a finished run folder", "run the config first")
    baseline = load_baseline(Path(baseline_path))
    run = read_metrics(Path(run_dir), columns=REGRESS_COLUMNS)
    check_unique_keys(run, "--run", str(Path(run_dir) / "metrics.csv"), "give a finished run folder")
    flagged = {(r.protocol, r.estimator, r.metric): r for r in compare(baseline, run)}
    values = run.set_index(KEY).value
    changes = []
    for row in baseline.itertuples(index=False):
        key = (row.protocol, row.estimator, row.metric)
        value = float(values.get(key, math.nan))
        if math.isnan(value) and math.isnan(float(row.value)):
            continue
        found = flagged.get(key)
        status = "ok" if found is None else ("missing" if math.isnan(value) else "changed")
        changes.append(MetricChange(*key, float(row.value), value,
                                    float(row.abs_tol) + float(row.rel_tol) * abs(float(row.value)), status=status))
    rule = ("flagged when |run - baseline| > abs_tol + rel_tol · |baseline| (the baseline's per-row tolerances: the "
            "spread of the metric's kind across machines), or when the metric is missing from the run")
    return RegressResult("tolerance", rule, str(baseline_path), str(run_dir), changes)
