"""What every reported metric means: which direction is better and what its interval covers.

`METRIC_INFO[name] = MetricInfo(direction, interval)` for the metric names of `metrics.csv` without their
feature-space suffix (`fid_kept[inception]` -> `fid_kept`); `metric_info(name)` resolves a full name
(suffix, `_at_keep_0.50` fractions and `auroc_lowest_10pct_density`-style parameters included).
direction: "lower" or "higher" is better, "none" for reference figures that rank nothing.
interval: one sentence on what the 95% interval of the row is an interval for (printed by the report).

The two FID interval kinds (metrics/bootstrap.py):
- FID_N's "shifted" bootstrap covers E[FID_N], the expected FID of N samples against the fixed reference
  (it keeps the replicates' spread and removes their small-sample offset). It does NOT cover the Fréchet
  distance between the two distributions: FID_N is biased upwards by about c / N.
- FID∞ (Chong & Forsyth 2020) extrapolates FID_n to 1/n = 0; its percentile interval covers the Fréchet
  distance between the generated distribution and the (fixed, finite) reference statistics.
Equal-size paired differences (kept K vs random K) cover the difference of expected FIDs at that size;
both sets carry the same size bias, so 0 inside the interval means "no better than chance".
"""
from __future__ import annotations

import re
from typing import NamedTuple


class MetricInfo(NamedTuple):
    direction: str  # "lower" | "higher" | "none"
    interval: str  # what the row's 95% interval covers ("" when the row has no interval)


_FID_N = ("shifted bootstrap over the samples: covers E[FID_N] at this sample size against the fixed reference, "
          "not the distance between the distributions (FID_N is biased upwards by ~c/N)")
_DELTA = ("paired bootstrap (one resample of the pool shared by both sets of equal size): covers the difference "
          "of expected FIDs at this size; excludes 0 = significant at 5%")
_FID_INF = ("shifted bootstrap of the 1/n extrapolation: covers the Fréchet distance between the generated "
            "distribution and the fixed reference statistics (sample-size bias removed)")
_PR = "shifted bootstrap over the generated samples (real manifold fixed): covers the expected value at this size"
_MEAN = "percentile bootstrap over images/samples: covers the mean over the population of images"
_RANK = "percentile bootstrap over samples: covers the population rank statistic"

METRIC_INFO: dict[str, MetricInfo] = {
    # filtered_fid (equal-size comparisons; `(all)` rows are reference figures, never compared)
    "fid_all": MetricInfo("none", _FID_N),
    "fid_kept": MetricInfo("lower", _FID_N),
    "fid_random": MetricInfo("none", _FID_N),
    "delta_vs_random": MetricInfo("lower", _DELTA),
    "delta_vs_random_at_keep": MetricInfo("lower", _DELTA),
    "fid_infinity_all": MetricInfo("none", _FID_INF),
    "fid_infinity_kept": MetricInfo("lower", _FID_INF),
    # precision_recall
    "precision": MetricInfo("higher", _PR),
    "recall": MetricInfo("higher", _PR),
    "f1": MetricInfo("higher", _PR),
    # sparsification
    "ause": MetricInfo("lower", _MEAN),
    "aurg": MetricInfo("higher", _MEAN),
    "ause_pooled": MetricInfo("lower", ""),
    "aurg_pooled": MetricInfo("higher", ""),
    "rmse": MetricInfo("none", ""),
    "start_timestep": MetricInfo("none", ""),
    # guidance
    "fid": MetricInfo("lower", _FID_N),
    "delta_vs_plain": MetricInfo("lower", _DELTA.replace("pool shared by both sets", "sample indices shared by "
                                                         "the guided and plain sets")),
    "mean_abs_change_x0": MetricInfo("none", ""),
    "fraction_changed": MetricInfo("none", ""),
    # cost
    "nfe_per_sample": MetricInfo("none", ""),
    "extra_nfe_per_sample": MetricInfo("lower", ""),
    "nfe_ratio": MetricInfo("lower", ""),
    "seconds_per_sample": MetricInfo("lower", ""),
    "time_ratio": MetricInfo("lower", ""),
    # ground truth
    "spearman_pixel_vs_true_var": MetricInfo("higher", _MEAN),
    "spearman_score_vs_neg_log_density": MetricInfo("higher", _RANK),
    "auroc_lowest_density": MetricInfo("higher", _RANK),
    "auroc_between_mode": MetricInfo("higher", _RANK),
    "auroc_off_mode": MetricInfo("higher", _RANK),
}

_SUFFIX = re.compile(r"\[[^\]]*\]$")
_AT_KEEP = re.compile(r"_at_keep_[0-9.]+$")
_PERCENT = re.compile(r"_\d+pct")


def base_metric_name(name: str) -> str:
    """`delta_vs_random_at_keep_0.50[inception]` -> `delta_vs_random_at_keep`; `auroc_lowest_10pct_density`
    -> `auroc_lowest_density` (the feature space, kept fraction and percent parameters removed)."""
    stripped = _SUFFIX.sub("", name)
    if _AT_KEEP.search(stripped):
        stripped = _AT_KEEP.sub("", stripped) + "_at_keep"
    return _PERCENT.sub("", stripped)


def metric_info(name: str) -> MetricInfo | None:
    """The MetricInfo of a full metric name of metrics.csv, or None for a metric this table does not know."""
    return METRIC_INFO.get(base_metric_name(name))
