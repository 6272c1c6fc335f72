"""What every reported metric means: which direction is better and what its interval covers.

`METRIC_INFO[name] = MetricInfo(direction, interval)` for the metric names of `metrics.csv` without their
feature-space suffix (`fid_kept[inception]` -> `fid_kept`); `metric_info(name)` resolves a full name
(suffix, `_at_keep_0.50` fractions and `auroc_lowest_10pct_density`-style parameters included).
direction: "lower" or "higher" is better, "none" for reference figures that rank nothing.
interval: one sentence on what the 95% interval of the row is an interval for (printed by the report).

The FID interval kinds (metrics/bootstrap.py, metrics/significance.py):
- FID_N's subsampling interval (0.8 N rows without replacement, spread rescaled) covers E[FID_N], the expected FID of N samples against the fixed reference
  (it keeps the replicates' spread and removes their small-sample offset). It does NOT cover the Fréchet
  distance between the two distributions: FID_N is biased upwards by about c / N.
- FID∞ (Chong & Forsyth 2020) extrapolates FID_n to 1/n = 0; its percentile interval covers the Fréchet
  distance between the generated distribution and the (fixed, finite) reference statistics.
- a kept K-subset's ΔFID is tested against R random K-subsets of the same pool (randomization test): both sides
  carry the same size bias, and the p-value's null is "the score carries no information".
Rows with a p_value are the run's tests against the floor; the report adjusts them for multiplicity
(benchmark.report.verdicts).
"""
from __future__ import annotations

import re
from typing import NamedTuple


class MetricInfo(NamedTuple):
    direction: str  # "lower" | "higher" | "none"
    interval: str  # what the row's 95% interval covers ("" when the row has no interval)


_FID_N = ("subsampling interval (0.8 N rows without replacement, spread x sqrt(m/(N-m))): covers E[FID_N] at this size "
          "against the fixed reference, not the distance between the distributions (FID_N is biased upwards by ~c/N)")
_DELTA = ("randomization test against R random subsets of the same size from the same pool: the value is FID(kept) "
          "minus their mean FID; the interval inverts the test under a shift (delta -/+ t sd sqrt(1 + 1/R)) and covers "
          "the filter's expected effect at this size; p_value: H0 = the score carries no information")
_PAIRED_SETS = ("paired subsampling interval (sample indices shared by the two sets of equal size): covers the "
                "difference of expected FIDs at this size; p_value: normal test of 0 with the rescaled spread")
_RANDOM_MEAN = "mean FID of R random K-subsets; the interval is the 2.5-97.5 % range of the R values (not a CI)"
_TERM = ("one term of FID, {}, of the kept K minus its mean over the same R random K-subsets as delta_vs_random "
         "(the mean, trace and cross terms sum to it); interval and p_value: randomization test against those R "
         "values (log scale where the term is positive), covering the filter's expected change of the term")
_REAL_SET = ("{} of the kept K against the real test features minus its mean over the same R random K-subsets as "
             "delta_vs_random; interval and p_value: randomization test against those R values (linear scale), "
             "covering the filter's expected change at this size")
_FID_INF = ("shifted bootstrap of the 1/n extrapolation (fit averaged over 4 subset draws; reported only where "
            "metrics.fid_infinity.is_sound): covers the Fréchet distance between the generated distribution and "
            "the fixed reference statistics")
_PRECISION = ("Wilson score interval (given the fixed real manifold, K x precision is Binomial(K, p)): covers "
              "E[precision_K] = p, the chance that a generated sample lies inside the real manifold")
_PR = ("m-out-of-n subsampling of the generated samples (0.8 K rows without replacement, spread x sqrt(m/(K-m)), cut "
       "to [0, 1]; real set fixed): covers the expected value at this size K against the fixed real set (the k-NN "
       "manifold depends on K: not the limit K -> inf)")
_PR_DELTA = ("precision(kept) - precision(all N) = minus the expected precision of a random K-subset; exact "
             "hypergeometric test of H0 (no information), interval -/+ z times the finite-population sd")
_MEAN = "percentile bootstrap over images/samples: covers the mean over the population of images"
_T_MEAN = ("t interval over images: covers the population mean; p_value: one-sample t-test of 0 (a map without "
           "information has expected AURG 0)")
_T_PAIRED = "paired t interval over the same images: covers the mean difference; p_value: paired t-test of 0"
_RANK = "percentile bootstrap over samples: covers the population rank statistic"
_RANK_TEST = _RANK + "; p_value: the test of no association (Spearman rho = 0, Mann-Whitney AUROC = 0.5)"
_RELIABILITY = ("split-half reliability of the S-draw shared-theta target (Spearman-Brown 2r/(1+r) of the two "
                "half-targets' Spearman); percentile bootstrap over samples: covers it for the population of samples "
                "(not the choice of the draws where one draw serves all samples: Laplace)")
_CORRECTED = ("raw Spearman over sqrt(target reliability), the estimator taken as exact (can exceed 1); percentile "
              "bootstrap over samples recomputing both: covers the disattenuated rank statistic; NaN where the "
              "reliability of a replicate is <= 0 (unbounded)")
_TIME = "t interval over the generation shards: covers the expected ratio on this machine (wall-clock is machine-dependent)"

METRIC_INFO: dict[str, MetricInfo] = {
    # filtered_fid (equal-size comparisons; `(all)` rows are reference figures, never compared)
    "fid_all": MetricInfo("none", _FID_N),
    "fid_kept": MetricInfo("lower", _FID_N),
    "fid_random_mean": MetricInfo("none", _RANDOM_MEAN),
    "delta_vs_random": MetricInfo("lower", _DELTA),
    "delta_vs_random_at_keep": MetricInfo("lower", _DELTA),
    "delta_vs_random_stratified": MetricInfo("lower", _DELTA + "; the kept set is the filter applied within each "
                                                               "class in proportion to its size"),
    "kept_class_tvd": MetricInfo("none", "no interval; p_value: chi-square test of independence of removal and "
                                         "class (metrics.class_balance)"),
    "removed_share_of_class": MetricInfo("none", ""),
    "fid_infinity_all": MetricInfo("none", _FID_INF),
    "fid_infinity_kept": MetricInfo("lower", _FID_INF),
    # filtered_fid: what a filter's ΔFID is made of (benchmark/protocols/fidelity_diversity.py)
    "fid_mean_term_delta_vs_random": MetricInfo("lower", _TERM.format("||mu_kept - mu_real||^2 (fidelity)")),
    "fid_trace_term_delta_vs_random": MetricInfo("none", _TERM.format("tr(S_kept): lower = a narrower kept set")),
    "fid_cross_term_delta_vs_random": MetricInfo("none", _TERM.format("-2 tr((S_kept S_real)^1/2)")),
    "kid_delta_vs_random": MetricInfo("lower", _REAL_SET.format("KID (unbiased MMD², cubic kernel)")),
    "density_delta_vs_random": MetricInfo("higher", _REAL_SET.format("density (Naeem et al. 2020, k = 5)")),
    "coverage_delta_vs_random": MetricInfo("higher", _REAL_SET.format("coverage (Naeem et al. 2020, k = 5)")),
    # precision_recall
    "precision": MetricInfo("higher", _PRECISION),
    "recall": MetricInfo("higher", _PR),
    "f1": MetricInfo("higher", _PR),
    "precision_delta_vs_random": MetricInfo("higher", _PR_DELTA),
    # sparsification
    "ause": MetricInfo("lower", _MEAN),
    "aurg": MetricInfo("higher", _T_MEAN),
    "ause_delta_vs_random": MetricInfo("lower", _T_PAIRED),  # runs written before the trivial-baseline verdicts
    "aurg_mono_uncertainty": MetricInfo("higher", "the published mono-uncertainty AURG (constant random level; a map "
                                        "without information scores > 0): percentile bootstrap over images of the "
                                        "mean; for comparison with papers only, never a verdict"),
    "aurg_pooled_mono_uncertainty": MetricInfo("higher", ""),
    "ause_delta_vs_baseline": MetricInfo("lower", _T_PAIRED),  # ause_delta_vs_<trivial baseline>, one per baseline
    "ause_delta_vs_trivial": MetricInfo("lower", _T_PAIRED + " against the trivial baseline with the lowest mean AUSE "
                                        "on the same images (the sparsification verdict)"),
    "partial_spearman_given_trivial": MetricInfo(
        "higher", "t interval over images of the per-image partial Spearman correlation of map and expected error "
                  "given every trivial baseline's map: covers its population mean; p_value: one-sample t-test of 0 "
                  "(no information beyond the trivial maps)"),
    "ause_pooled": MetricInfo("lower", ""),
    "aurg_pooled": MetricInfo("higher", ""),
    "rmse": MetricInfo("none", ""),
    "start_timestep": MetricInfo("none", ""),
    # guidance
    "fid": MetricInfo("lower", _FID_N),
    "delta_vs_plain": MetricInfo("lower", _PAIRED_SETS),
    "delta_vs_placebo": MetricInfo("lower", _PAIRED_SETS + "; the placebo: the same guided pass with the mask "
                                            "permuted within each image (same NFEs, same guided pixel count)"),
    "delta_vs_plain_matched_nfe": MetricInfo("lower", _PAIRED_SETS + "; plain sampling from the same x_T with "
                                                      "the step count whose NFEs match the guided pass's"),
    "matched_steps": MetricInfo("none", ""),
    "mean_abs_change_x0": MetricInfo("none", ""),
    "fraction_changed": MetricInfo("none", ""),
    # cost
    "nfe_per_sample": MetricInfo("none", ""),
    "extra_nfe_per_sample": MetricInfo("lower", ""),
    "nfe_ratio": MetricInfo("lower", ""),
    "seconds_per_sample": MetricInfo("lower", ""),
    "time_ratio": MetricInfo("lower", _TIME),
    # ground truth
    "spearman_pixel_vs_true_var": MetricInfo("higher", _MEAN),
    "spearman_score_vs_neg_log_density": MetricInfo("higher", _RANK_TEST),
    "auroc_lowest_density": MetricInfo("higher", _RANK_TEST),
    "auroc_between_mode": MetricInfo("higher", _RANK_TEST),
    "auroc_off_mode": MetricInfo("higher", _RANK_TEST),
    # the epistemic target's own noise (benchmark/protocols/ground_truth_reliability.py)
    "target_reliability_pixel_shared_theta_var": MetricInfo("none", _RELIABILITY),
    "target_reliability_score_shared_theta_var": MetricInfo("none", _RELIABILITY),
    "spearman_pixel_vs_shared_theta_var_corrected": MetricInfo("higher", _CORRECTED),
    "spearman_score_vs_shared_theta_var_corrected": MetricInfo("higher", _CORRECTED),
}

_SUFFIX = re.compile(r"\[[^\]]*\]$")
_AT_KEEP = re.compile(r"_at_keep_[0-9.]+$")
_PERCENT = re.compile(r"_\d+pct")
_CLASS_INDEX = re.compile(r"_of_class_\d+$")


def base_metric_name(name: str) -> str:
    """`delta_vs_random_at_keep_0.50[inception]` -> `delta_vs_random_at_keep`; `auroc_lowest_10pct_density`
    -> `auroc_lowest_density` (the feature space, kept fraction and percent parameters removed)."""
    stripped = _SUFFIX.sub("", name)
    if stripped.startswith("ause_delta_vs_") and stripped not in METRIC_INFO:
        return "ause_delta_vs_baseline"
    if _AT_KEEP.search(stripped):
        stripped = _AT_KEEP.sub("", stripped) + "_at_keep"
    return _CLASS_INDEX.sub("_of_class", _PERCENT.sub("", stripped))


_VS_TRIVIAL = "_delta_vs_trivial"
_PAIRED_BOOTSTRAP = ("paired bootstrap over samples (both scores recomputed on each resample): percentile interval of "
                     "the difference from the best trivial baseline's value on the same samples; p_value: normal test "
                     "of 0 with the bootstrap sd")


def metric_info(name: str) -> MetricInfo | None:
    """The MetricInfo of a full metric name of metrics.csv, or None for a metric this table does not know
    (`<statistic>_delta_vs_trivial` of a known statistic: its direction, the paired-bootstrap interval)."""
    base = base_metric_name(name)
    if base not in METRIC_INFO and base.endswith(_VS_TRIVIAL) and base[:-len(_VS_TRIVIAL)] in METRIC_INFO:
        return MetricInfo(METRIC_INFO[base[:-len(_VS_TRIVIAL)]].direction, _PAIRED_BOOTSTRAP)
    return METRIC_INFO.get(base)
