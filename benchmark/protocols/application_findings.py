"""Findings lines of the guidance, augmentation and rectification protocols, generated from metrics.csv rows only.

Each line compares an estimator with its baseline on a paired difference row (`delta_vs_<baseline>...`). Rows
with a p-value (paired t-test of mean 0, or the paired FID difference's normal test) form one family whose
p-values are adjusted by Holm (family-wise error <= 5 % over every application comparison of the run): such a row
is significant when its adjusted p <= 5 %; a row without a p-value falls back to its 95 % interval excluding 0.
"better" or "worse" then follows the metric's direction.
"""
from __future__ import annotations

import math

import pandas as pd

from metrics.significance import adjust

# metric (after the `delta_vs_<baseline>.` prefix, without the feature space) -> +1 higher is better, -1 lower
AUGMENTATION_DIRECTIONS = {"vendi": +1, "diversity_distance": +1, "precision": +1, "class_agreement": +1,
                           "mode_agreement": +1}
RECTIFICATION_DIRECTIONS = {"fid": -1, "precision": +1}


def judge(value: float, low: float, high: float, direction: int, adjusted_p: float = math.nan) -> str:
    """'better' / 'worse' when the adjusted p-value is <= 5 % (or, without one, when [low, high] excludes 0), by
    `direction`, else 'not significant'."""
    if math.isfinite(adjusted_p):
        if adjusted_p > 0.05:
            return "not significant"
    elif any(math.isnan(v) for v in (low, high)) or low <= 0 <= high:
        return "not significant"
    return "better" if (value > 0) == (direction > 0) else "worse"


def _adjusted(rows: pd.DataFrame) -> dict[int, float]:
    """Holm-adjusted p-values of the rows that have one, by row index."""
    if "p_value" not in rows.columns:
        return {}
    tested = rows[rows.p_value.astype(float).notna()]
    return dict(zip(tested.index, adjust(tested.p_value.astype(float).to_numpy(), "holm")))


def _base(metric: str) -> str:
    return metric.split("[", 1)[0]


def _lines(rows: pd.DataFrame, directions: dict[str, int], title: str, adjusted: dict[int, float]) -> list[str]:
    lines = []
    for row in rows.itertuples():
        head, _, rest = row.metric.partition("delta_vs_")
        baseline, _, metric = rest.partition(".")
        direction = directions.get(_base(metric))
        if direction is None:
            continue
        p = adjusted.get(row.Index, math.nan)
        verdict = judge(row.value, row.ci_low, row.ci_high, direction, p)
        procedure = f" {head.rstrip('.')}" if head else ""
        shown = f", adjusted p = {p:.2g}" if math.isfinite(p) else ""
        lines.append(f"- {title}{procedure}: {row.estimator} vs {baseline}: difference in {metric} {row.value:.4g} "
                     f"[{row.ci_low:.4g}, {row.ci_high:.4g}]{shown} -> {verdict}")
    return lines


def application_findings(frame: pd.DataFrame) -> list[str]:
    """Markdown bullet lines: does each variance source / trigger beat its equal-cost baseline?"""
    paired = frame[frame.metric.str.contains("delta_vs_", regex=False)]
    family = paired[paired.protocol.isin(["augmentation", "rectification"])]
    adjusted = _adjusted(family)
    lines = _lines(paired[paired.protocol == "augmentation"], AUGMENTATION_DIRECTIONS, "augmentation", adjusted)
    lines += _lines(paired[paired.protocol == "rectification"], RECTIFICATION_DIRECTIONS, "rectification", adjusted)
    if adjusted:
        lines.append(f"  (Holm over the run's {len(adjusted)} application comparisons with a p-value: the chance of "
                     "any false 'better' / 'worse' among them is <= 5 %.)")
    return _guidance_lines(paired[paired.protocol == "guidance"]) + lines


def _guidance_lines(rows: pd.DataFrame) -> list[str]:
    """Guided vs its placebo (same NFEs, mask permuted within each image): what the uncertainty map itself does."""
    lines = []
    for row in rows[rows.metric.str.startswith("delta_vs_placebo")].itertuples():
        verdict = judge(row.value, row.ci_low, row.ci_high, -1)
        p = "" if math.isnan(getattr(row, "p_value", math.nan)) else f", p = {row.p_value:.2g}"
        lines.append(f"- guidance: {row.estimator} vs placebo (same NFEs, random mask): ΔFID "
                     f"{row.metric.partition('[')[2].rstrip(']') or ''} {row.value:.4g} [{row.ci_low:.4g}, "
                     f"{row.ci_high:.4g}]{p} -> {verdict}")
    return lines
