"""Report lines of the per-sample truth protocols (issue 32): what each map's conformal intervals are worth, and
the hallucination detector beside the paper's claim. Pure functions of the run's metrics frame.

- `width_ratio_lines(frame)`: per estimator, the conformal width ratio (mean interval width over a constant map's
  at the same alpha; below 1: the map is informative) with its interval and the coverage reached.
- `hallucination_lines(frame)`: per (sampler, steps), the hallucination rate of the learned model and of the
  exact score, and x0_trajectory's share of hallucinations removed at 96 % in-support retention beside Aithal et
  al.'s "removes over 95 % of hallucinations while retaining 96 % of in-support samples".
"""
from __future__ import annotations

import math

import pandas as pd

PAPER_CLAIM = ("Aithal et al. (NeurIPS 2024): the x0 trajectory's variance \"removes over 95 % of hallucinations "
               "while retaining 96 % of in-support samples\" (DDPM, T = 1000, variance over the last 10 steps)")
DETECTOR = "x0_trajectory"


def _interval(row) -> str:
    low, high = float(row.ci_low), float(row.ci_high)
    return f"{float(row.value):.3f} [{low:.3f}, {high:.3f}]" if math.isfinite(low) else f"{float(row.value):.3f}"


def width_ratio_lines(frame: pd.DataFrame) -> list[str]:
    """One line per estimator with a conformal width ratio (none when the run has no conformal rows)."""
    rows = frame[(frame.protocol == "conformal") & frame.metric.str.startswith("pixel_width_ratio")]
    lines = []
    for row in rows.itertuples():
        setting = str(row.metric)[len("pixel_width_ratio"):]
        coverage = frame[(frame.protocol == "conformal") & (frame.estimator == row.estimator)
                         & (frame.metric == f"pixel_coverage{setting}")]
        reached = f", coverage {_interval(coverage.iloc[0])}" if len(coverage) else ""
        verdict = ("narrower than a constant map: informative" if row.ci_high < 1 else
                   "wider than a constant map: its values mislead the interval" if row.ci_low > 1 else
                   "not distinguishable from a constant map")
        lines.append(f"- `{row.estimator}`: conformal width ratio {setting.strip('[]')} {_interval(row)}{reached} "
                     f"— {verdict}.")
    return lines


def hallucination_lines(frame: pd.DataFrame, retention: str = "0.96") -> list[str]:
    """Rates per sampler and step count and the detector at the operating point beside the paper (empty without
    hallucination rows)."""
    rows = frame[frame.protocol == "hallucination"]
    rates = rows[rows.metric.str.startswith("hallucination_rate[")]
    lines = []
    for tag in sorted({str(m)[len("hallucination_rate["):-1] for m in rates.metric}):
        by = {r.estimator: r for r in rates[rates.metric == f"hallucination_rate[{tag}]"].itertuples()}
        text = f"- `{tag}`: hallucination rate {_interval(by['(samples)'])}" if "(samples)" in by else f"- `{tag}`:"
        if "(exact score)" in by:
            text += f" (exact score: {_interval(by['(exact score)'])})"
        removed = rows[(rows.estimator == DETECTOR)
                       & (rows.metric == f"removed_at_retention_{retention}_hallucination[{tag}]")]
        auroc = rows[(rows.estimator == DETECTOR) & (rows.metric == f"auroc_hallucination[{tag}]")]
        if len(removed):
            text += (f"; `{DETECTOR}` removes {_interval(removed.iloc[0])} of the hallucinations at {retention} "
                     f"in-support retention (AUROC {_interval(auroc.iloc[0])})" if len(auroc) else "")
        else:
            text += f"; no AUROC: see the not-run records"
        lines.append(text + ".")
    if lines:
        lines.append(f"- Paper: {PAPER_CLAIM}. Where the shares differ: this preset's score is a small MLP x0 "
                     "predictor trained for minutes on a CPU (results/models.md). It puts most samples within a "
                     "sigma of a mode and hallucinates a few percent with 50 steps (about 1 % or less with 250, "
                     "too few positives for a tight share), so the rates are the paper's kind; but its "
                     "hallucinations are mostly late, small departures that move x0_hat little over the last "
                     "steps, and its windows are 3 or 10 of 50 steps, not 10 of 1000: the 10-step window (20 % of "
                     "the trajectory) mostly measures every sample's legitimate choice of mode and ranks below "
                     "chance. Our labels are exact (k sigma from every mode) where the paper reads "
                     "hallucinations off the plot.")
    return lines
