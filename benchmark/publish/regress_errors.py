"""`regress --mode errors`: judge each metric's change by the two runs' own standard errors.

The rule (stated in every report this mode writes, `RULE`):
- each row's standard error comes from its 95 % interval: se = (ci_high - ci_low) / (2 * 1.96);
- the change Δ = run - baseline is tested with z = Δ / sqrt(se_run² + se_base²). A regression is a change for the
  worse: a metric with a direction (benchmark.report.metric_info.direction) is tested one-sided towards worse,
  p = 1 - Φ(±z); a metric without one two-sided, p = 2 (1 - Φ(|z|));
- the p-values of all compared metrics form one family, adjusted by Holm (family-wise error rate, default) or
  Benjamini-Hochberg (false discovery rate), `--multiplicity`;
- a metric is flagged when its adjusted p < alpha (default 0.05) *and* |Δ| exceeds the practical threshold, the
  cross-machine tolerance of its kind (abs_tol + rel_tol · |baseline|: the baseline file's columns when it has
  them, else benchmark.publish.regression.KIND_TOLERANCES), so a change another CPU's rounding could make is never
  flagged, however narrow the intervals;
- a row without an interval (or with a zero-width one) on both sides is exact only where its kind's tolerance is 0
  (counts: NFEs): then any change is flagged; otherwise it has no error to be judged by and is reported as
  "untested", never flagged (a sampled value without an interval, e.g. a pooled AUSE, moves with the seed: judged as
  exact it raised false alarms on reruns); `--mode tolerance` judges those;
- a metric of the baseline missing from the run is flagged; timing metrics (seconds, time ratios) are left out:
  they measure the machine.

tests/test_regress_errors.py measures, by simulation (tests/regress_simulation.py), the false-alarm rate on reruns
with other seeds (Holm over 30 metrics: 4.9 %, the theory's 1 - (1 - 0.05/30)^30) and the power against planted
shifts of 3 standard errors of the change (one metric alone: 91 %; one estimator's 5 metrics among 30: 98 %; a lone
metric among 30: about 51 %, the price of controlling 30 tests).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.errors import ConfigError
from benchmark.publish.regress_report import MetricChange, RegressResult
from benchmark.publish.regression import KEY, TIMING_METRICS, check_unique_keys, kind_tolerance

Z95 = 1.959963984540054  # the two-sided 95 % normal quantile the intervals were built with
RULE = ("se = (ci_high - ci_low) / (2 · 1.96) per row; z = Δ / sqrt(se_run² + se_base²), "
        "one-sided towards worse for metrics with a direction, two-sided otherwise; p-values adjusted over all "
        "compared metrics by {method}; flagged when adjusted p < {alpha:g} and |Δ| > the metric kind's cross-machine "
        "tolerance (abs_tol + rel_tol · |baseline|); rows without intervals: exact kinds (tolerance 0) flagged on any "
        "change, others untested")


def standard_errors(ci_low: np.ndarray, ci_high: np.ndarray) -> np.ndarray:
    """se from 95 % intervals: (high - low) / (2 · 1.96); 0 where a row has no interval (NaN)."""
    width = np.asarray(ci_high, dtype=float) - np.asarray(ci_low, dtype=float)
    return np.where(np.isfinite(width), np.maximum(width, 0.0), 0.0) / (2.0 * Z95)


def upper_tail(x: np.ndarray) -> np.ndarray:
    """P(Z > x) of a standard normal."""
    from scipy.special import erfc

    return 0.5 * erfc(np.asarray(x, dtype=float) / math.sqrt(2.0))


@dataclass(frozen=True)
class Tests:
    """Per metric: z, p, adjusted p and status (ok, untested, missing, regressed, changed), in input order."""

    z: np.ndarray
    p: np.ndarray
    p_adjusted: np.ndarray
    status: np.ndarray


def judge_arrays(base: np.ndarray, run: np.ndarray, se_base: np.ndarray, se_run: np.ndarray, threshold: np.ndarray,
                 direction: np.ndarray, *, alpha: float = 0.05, method: str = "holm") -> Tests:
    """The module's rule on arrays (one entry per metric): z-test of run - base against sqrt(se_base² + se_run²),
    one-sided towards worse where `direction` is ±1, two-sided where 0; se = 0 on both sides: p = 0 for a change, 1
    for none; p-values adjusted over the family by `method`; flagged beyond `threshold` only."""
    from metrics.significance import adjust

    base, run = np.asarray(base, dtype=float), np.asarray(run, dtype=float)
    delta, se = run - base, np.hypot(se_base, se_run)
    direction = np.asarray(direction)
    missing = np.isnan(delta)
    untested = ~missing & (se == 0) & (np.asarray(threshold) > 0)  # no interval, not an exact kind
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, delta / np.where(se > 0, se, 1.0), np.where(delta == 0, 0.0, np.sign(delta) * np.inf))
    p = np.where(direction == 0, 2.0 * upper_tail(np.abs(z)), upper_tail(-z * direction))
    p = np.where(missing | untested, np.nan, p)
    z = np.where(missing | untested, np.nan, z)
    p_adj = adjust(p, method)
    flagged = (p_adj < alpha) & (np.abs(delta) > threshold)
    status = np.where(missing, "missing", np.where(untested, "untested", np.where(
        flagged, np.where(direction == 0, "changed", "regressed"), "ok")))
    return Tests(z, p, p_adj, status)


def judge(baseline: pd.DataFrame, run: pd.DataFrame, *, alpha: float = 0.05, method: str = "holm",
          default_tolerance: tuple[float, float] = (0.05, 0.05)) -> list[MetricChange]:
    """Every baseline metric's change (the module's rule). Both frames have KEY + value, ci_low, ci_high; the
    baseline may carry abs_tol, rel_tol (the practical threshold of its row)."""
    from benchmark.report.metric_info import direction

    base = baseline[~baseline.metric.isin(TIMING_METRICS)]
    merged = base.merge(run[KEY + ["value", "ci_low", "ci_high"]], on=KEY, how="left", suffixes=("_base", "_run"))
    merged = merged[merged.value_base.notna() | merged.value_run.notna()].reset_index(drop=True)
    kind = [kind_tolerance(m, default_tolerance) for m in merged.metric]
    abs_tol = np.array([t[0] for t in kind], dtype=float)
    rel_tol = np.array([t[1] for t in kind], dtype=float)
    if "abs_tol" in merged.columns:  # the baseline's own tolerances where it has them
        given = np.isfinite(merged.abs_tol.to_numpy(dtype=float))
        abs_tol = np.where(given, merged.abs_tol.to_numpy(dtype=float), abs_tol)
        rel_tol = np.where(given, merged.rel_tol.to_numpy(dtype=float), rel_tol)
    b, v = merged.value_base.to_numpy(dtype=float), merged.value_run.to_numpy(dtype=float)
    threshold = abs_tol + rel_tol * np.abs(np.nan_to_num(b))
    se_b = standard_errors(merged.ci_low_base, merged.ci_high_base)
    se_r = standard_errors(merged.ci_low_run, merged.ci_high_run)
    found = judge_arrays(b, v, se_b, se_r, threshold, np.array([direction(m) for m in merged.metric]),
                         alpha=alpha, method=method)
    return [MetricChange(row.protocol, row.estimator, row.metric, b[i], v[i], float(threshold[i]), float(se_b[i]),
                         float(se_r[i]), float(found.z[i]), float(found.p[i]), float(found.p_adjusted[i]),
                         str(found.status[i])) for i, row in enumerate(merged.itertuples(index=False))]


def read_with_intervals(path: Path, field_name: str) -> pd.DataFrame:
    """A metrics table with intervals: a run folder (its metrics.csv) or a CSV with value, ci_low, ci_high (a run's
    metrics.csv, or a baseline written by `regress --write-baseline`, which keeps the intervals)."""
    from benchmark.report.metrics_file import KEY_COLUMNS, read_table

    path = Path(path)
    table = path / "metrics.csv" if path.is_dir() else path
    fix = ("give a run folder, its metrics.csv, or a baseline written by `regress --write-baseline` (which keeps "
           "ci_low and ci_high); for a baseline without intervals use --mode tolerance")
    if path.is_dir() and not table.is_file():
        raise ConfigError(field_name, str(path), "a run folder with a metrics.csv", fix)
    frame = read_table(table, KEY_COLUMNS + ["value", "ci_low", "ci_high"], field_name, fix=fix)
    check_unique_keys(frame, field_name, str(table), "remove the repeated line, or " + fix)
    return frame


def regress_by_errors(baseline_path: Path, run_dir: Path, *, alpha: float = 0.05, method: str = "holm",
                      default_tolerance: tuple[float, float] = (0.05, 0.05)) -> RegressResult:
    """`regress --mode errors`: the run folder's metrics against the baseline's, by the module's rule."""
    if not Path(run_dir).is_dir():
        raise ConfigError("--run", str(run_dir), "a finished run folder", "run the config first")
    baseline = read_with_intervals(baseline_path, "--baseline")
    run = read_with_intervals(run_dir, "--run")
    from metrics.significance import MULTIPLICITY

    rule = RULE.format(method=f"{method} ({MULTIPLICITY[method]})", alpha=alpha)
    changes = judge(baseline, run, alpha=alpha, method=method, default_tolerance=default_tolerance)
    return RegressResult("errors", rule, str(baseline_path), str(run_dir), changes)
