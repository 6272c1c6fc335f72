"""What an estimator's values mean, where the run measured it: a map can rank pixels well while its values are far
from the variance it claims to be.

The ground-truth protocol measures `calibration_ratio[skip=s]` for estimators that propagate a state variance
(BayesDiff): the propagated Var[x0] over the brute-force spread of x0 under the estimator's own posterior (1 =
calibrated, benchmark.protocols.ground_truth). The report states it per estimator and skip beside how well the map
ranks that spread (`spearman_pixel_vs_shared_theta_var`), e.g. "ranks with rho = 0.61; its values are 150x below
the spread it models".
"""
from __future__ import annotations

import math

import pandas as pd

from benchmark.report import metric_info

RATIO = "calibration_ratio"
RANKING = "spearman_pixel_vs_shared_theta_var"
CALIBRATED_WITHIN = 2.0  # a ratio in [1/2, 2] is read as "values on the scale of the spread"


def scale_phrase(ratio: float) -> str:
    """"150× below" / "3× above" / "within 2× of" the spread, for a ratio of sums propagated / true."""
    if not (math.isfinite(ratio) and ratio > 0):
        return "not comparable with"
    if 1 / CALIBRATED_WITHIN <= ratio <= CALIBRATED_WITHIN:
        return f"within {CALIBRATED_WITHIN:g}× of"
    return f"{1 / ratio:.3g}× below" if ratio < 1 else f"{ratio:.3g}× above"


def value_lines(frame: pd.DataFrame) -> list[str]:
    """One markdown line per estimator with a calibration ratio (every skip without a named rule)."""
    part = frame[(frame.protocol == "ground_truth") & frame.metric.str.startswith(RATIO + "[")]
    lines = []
    for name, rows in part.groupby("estimator", sort=False):
        ratios = [(r.metric, float(r.value)) for r in rows.itertuples() if ",rule=" not in r.metric]
        if not ratios:
            continue
        ranking = frame[(frame.protocol == "ground_truth") & (frame.estimator == name) & (frame.metric == RANKING)]
        ranks = (f"ranks the spread of its own posterior with ρ = {float(ranking.value.iloc[0]):.2f} "
                 f"({metric_info.label(RANKING, with_arrow=False)}); " if not ranking.empty else "")
        said = "; ".join(f"{scale_phrase(v)} the spread it models at {m[len(RATIO) + 1:-1]} (ratio {v:.3g})"
                         for m, v in ratios)
        off = any(not (1 / CALIBRATED_WITHIN <= v <= CALIBRATED_WITHIN) for _, v in ratios)
        advice = ": read its map as a ranking, not as a variance" if off else ""
        lines.append(f"- `{name}` {ranks}its values are {said}{advice}.")
    return lines


AGREEMENT = "ensemble_agreement"


def agreement_lines(frame: pd.DataFrame) -> list[str]:
    """One line per epistemic estimator compared with a gold standard (the ensemble_agreement protocol): the rank
    correlation of its scores and of its maps with the gold standard's, with their intervals, and a warning where the
    scores rank the samples the other way round (the interval wholly below 0)."""
    part = frame[frame.protocol == AGREEMENT]
    lines = []
    for name, rows in part.groupby("estimator", sort=False):
        said, reversed_order = [], []
        for row in rows.itertuples():
            what, _, gold = str(row.metric).partition("_spearman_vs_")
            said.append(f"{what}s ρ = {metric_info.format_value(float(row.value), float(row.ci_low), float(row.ci_high))}"
                        f" against `{gold}`")
            if what == "score" and float(row.ci_high) < 0:
                reversed_order.append(gold)
        warning = (f"; it ranks samples in the opposite order to `{', '.join(reversed_order)}`" if reversed_order
                   else "")
        lines.append(f"- `{name}`: " + "; ".join(said) + warning + ".")
    return lines
