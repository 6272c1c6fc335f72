"""The tidy metrics table: one row per (protocol, estimator, metric)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import pandas as pd

COLUMNS = ["protocol", "estimator", "metric", "value", "ci_low", "ci_high", "n", "seed", "p_value", "detectable_effect"]
#: the columns of runs written before `detectable_effect` (still valid to read, validate and put on a board)
LEGACY_COLUMNS = COLUMNS[:-1]


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
    p_value: float = math.nan  # two-sided p of the row's test against the floor (unadjusted); NaN: not a test
    #: the smallest |effect| the row's test detects with 80 % power at the raw 5 % level (metrics.significance
    #: .detectable_effect, from the test's own null spread); NaN: not a test
    detectable_effect: float = math.nan


#: estimator name of rows that record a configured measurement that could not be made, and why
NOT_RUN = "(not run)"
#: metric base name of a NOT_RUN row -> the reason shown in the report
NOT_RUN_REASONS = {
    "fid_infinity_unsound": "FID∞ is shown only where its 1/n fit is sound: every fitted subset of the kept K must "
                            "hold at least 10 rows per feature dimension (metrics.fid_infinity.is_sound); below that "
                            "it is biased (on identical 128-d Gaussians with N = 500 it gave -1.82 for a true 0), "
                            "and a fit that extrapolates to <= 0 is shown as –. Fix: more samples, or read the FID "
                            "of the kept set",
    "no_real_features": "only reference statistics of the real images are committed for this feature space, and "
                        "precision/recall needs the real features themselves. Fix: give the real images through a "
                        "[data] section, or use a feature space with real features (e.g. classifier)",
    "no_real_features_kid_coverage": "only reference statistics of the real images are committed for this feature "
                                     "space, and KID, density and coverage need the real features themselves (the "
                                     "FID terms are reported). Fix: give the real images through a [data] section, "
                                     "or read them in a feature space with real features (e.g. classifier)",
    "no_hallucinations": "no sample of this sampler and step count is a hallucination (every one lies within k sigma "
                         "of a mode), so no score can be judged on detecting them: the hallucination rate row says "
                         "how many samples were drawn. Fix: more samples (num_samples), a smaller k_sigma, or a "
                         "model that hallucinates",
    "no_in_support": "every sample of this sampler and step count is a hallucination, so there is nothing to tell "
                     "them from. Fix: a better-trained model, or a larger k_sigma",
    "no_failures": "no generated sample fails (none is off the real manifold or misclassified for its condition), "
                   "so no score can be judged on finding failures. Fix: more samples, or a smaller k",
    "no_successes": "every generated sample fails, so there is nothing to tell failures from. Fix: a larger k",
    "no_interval_scale": "the estimator's pixel map has negative values (e.g. `negate = true`: a ranking, not a "
                         "scale), or the calibration half is too small for the quantile, so it gives no interval "
                         "+- q u(x). Fix: read its sparsification rows, or use more sparsification images",
}


#: what part of the protocol a NOT_RUN reason concerns (shown after the protocol's name), when not all of it
NOT_RUN_SUBJECTS = {"fid_infinity_unsound": "'s FID∞ rows", "no_hallucinations": "'s AUROC/AUPRC rows",
                    "no_in_support": "'s AUROC/AUPRC rows", "no_failures": "'s AUROC/AUPRC rows",
                    "no_successes": "'s AUROC/AUPRC rows",
                    "no_real_features_kid_coverage": "'s KID, density and coverage rows",
                    "no_interval_scale": "'s pixel intervals"}
#: how the bracket of a NOT_RUN row reads when it is not a feature space (default: "in the `x` space")
NOT_RUN_SCOPES = {"no_interval_scale": "for `{}`", "no_hallucinations": "at `{}`", "no_in_support": "at `{}`"}


def not_run_row(protocol: str, reason: str, space: str, seed: int = 0) -> MetricRow:
    """A metrics.csv row saying that `protocol` (or the part of it the reason names) did not run in feature space
    `space` (value NaN, n = 0)."""
    if reason not in NOT_RUN_REASONS:
        raise KeyError(f"unknown not-run reason {reason!r}")
    return MetricRow(protocol, NOT_RUN, f"{reason}[{space}]", math.nan, n=0, seed=seed)


def not_run_records(frame: pd.DataFrame) -> list[dict[str, str]]:
    """The NOT_RUN rows of `frame` as the manifest records them: protocol, feature space, reason and why."""
    records = []
    for row in frame[frame.estimator == NOT_RUN].itertuples():
        reason, _, space = str(row.metric).partition("[")
        records.append({"protocol": str(row.protocol), "space": space.rstrip("]"), "reason": reason,
                        "why": NOT_RUN_REASONS[reason]})
    return records


def not_run_lines(frame: pd.DataFrame) -> list[str]:
    """One report line per NOT_RUN row: the protocol, the feature space and the reason."""
    return [f"- `{r['protocol']}`{NOT_RUN_SUBJECTS.get(r['reason'], '')} "
            f"{NOT_RUN_SCOPES.get(r['reason'], 'in the `{}` space').format(r['space'])} did not run: {r['why']}."
            for r in not_run_records(frame)]


def measured(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of `frame` that hold a measured value: what metrics.csv holds (a tidy table; what did not run is
    in the manifest's `not_run` and the report)."""
    return frame[frame.estimator != NOT_RUN].reset_index(drop=True)


def row_from_ci(protocol: str, estimator: str, metric: str, ci, n: int, seed: int) -> MetricRow:
    """A row from a metrics.ConfidenceInterval (value, low, high, and its p_value where it is a test)."""
    return MetricRow(protocol, estimator, metric, float(ci.value), float(ci.low), float(ci.high), int(n), int(seed),
                     float(getattr(ci, "p_value", math.nan)), float(getattr(ci, "detectable", math.nan)))


def to_frame(rows: list[MetricRow]) -> pd.DataFrame:
    return pd.DataFrame([asdict(r) for r in rows], columns=COLUMNS)
