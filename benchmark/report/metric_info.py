"""What a metric name means for reading it: better direction, cost or quality, label, feature space.

Metric names in metrics.csv look like `fid_kept[classifier]`, `ause`, `fid_at_keep_0.50[inception]`.
The direction is read from the first word of the name that has one (`fid`, `delta`, `ause` lower is
better; `precision`, `aurg`, `spearman`, `auroc` higher), so metrics added by new protocols get an arrow
without a table entry here; a name with no known word gets none (and is never ranked or bolded).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

HIGHER_WORDS = frozenset({"precision", "recall", "f1", "aurg", "spearman", "pearson", "auroc", "auprc", "accuracy",
                          "agreement", "vendi", "diversity", "coverage", "density", "acceptance"})
LOWER_WORDS = frozenset({"fid", "kid", "delta", "ause", "rmse", "mse", "mae", "error", "ece", "nfe", "seconds",
                         "time"})
COST_WORDS = frozenset({"nfe", "seconds", "time"})
#: metrics whose sign is neither better nor worse (parts of a difference read for what they are made of): no arrow
NO_DIRECTION = frozenset({"fid_trace_term_delta_vs_random", "fid_cross_term_delta_vs_random"})
#: run settings some protocols record as rows (shown in the settings table, never as a result)
SETTING_METRICS = frozenset({"start_timestep", "matched_steps"})
LABELS = {
    "delta_vs_random": "ΔFID vs random K",
    "delta_vs_all": "ΔFID vs all",
    "delta_vs_plain": "ΔFID vs plain",
    "delta_vs_placebo": "ΔFID vs placebo",
    "delta_vs_plain_matched_nfe": "ΔFID vs plain at matched NFE",
    "matched_steps": "steps at matched NFE",
    "fid_kept": "FID of kept K",
    "fid_all": "FID of all N",
    "fid_random": "FID of random K",
    "fid_random_mean": "mean FID of random K-subsets",
    "precision_delta_vs_random": "Δprecision vs random K",
    "ause_delta_vs_random": "ΔAUSE vs random",
    "ause_delta_vs_local_variance": "ΔAUSE vs local_variance",
    "ause_delta_vs_gradient_magnitude": "ΔAUSE vs gradient_magnitude",
    "ause_delta_vs_trivial": "ΔAUSE vs best trivial",
    "partial_spearman_given_trivial": "partial ρ(map, error | trivial maps)",
    "delta_vs_random_stratified": "ΔFID vs random K, filter within classes",
    "fid_mean_term_delta_vs_random": "ΔFID mean term vs random K",
    "fid_trace_term_delta_vs_random": "ΔFID trace term tr(S) vs random K",
    "fid_cross_term_delta_vs_random": "ΔFID cross term vs random K",
    "kid_delta_vs_random": "ΔKID vs random K",
    "density_delta_vs_random": "Δdensity vs random K",
    "coverage_delta_vs_random": "Δcoverage vs random K",
    "kept_class_tvd": "class shift of the kept (TVD)",
    "fid_infinity_kept": "FID∞ of kept K",
    "fid_infinity_all": "FID∞ of all N",
    "fid_at_keep": "FID at each kept fraction",
    "delta_vs_random_at_keep": "ΔFID vs random K at each kept fraction",
    "ause": "AUSE",
    "aurg": "AURG",
    "ause_pooled": "AUSE (pooled)",
    "aurg_pooled": "AURG (pooled)",
    "aurg_mono_uncertainty": "AURG, published definition (mono-uncertainty)",
    "aurg_pooled_mono_uncertainty": "AURG (pooled), published definition",
    "extra_nfe_per_sample": "extra NFE / sample",
    "nfe_per_sample": "NFE / sample",
    "nfe_ratio": "NFE ratio",
    "time_ratio": "time ratio",
    "seconds_per_sample": "s / sample",
    "spearman_score_vs_neg_log_density": "ρ(score, −log p)",
    "auroc_between_mode": "AUROC between-mode",
    "auroc_off_mode": "AUROC off-mode",
    "target_reliability_pixel_shared_theta_var": "reliability of the shared-θ target, pixel",
    "target_reliability_score_shared_theta_var": "reliability of the shared-θ target, score",
    "spearman_pixel_vs_shared_theta_var_corrected": "ρ(map, shared-θ Var) / √reliability",
    "spearman_score_vs_shared_theta_var_corrected": "ρ(score, shared-θ Var) / √reliability",
}
VS_TRIVIAL = "_delta_vs_trivial"
_SPACE = re.compile(r"^(?P<base>.*?)\[(?P<space>[^\]=]+)\]$")  # `[skip=5]` is a setting, not a feature space
_CURVE = re.compile(r"^(?P<family>.+)_at_(?P<param>[a-z]+)_(?P<value>[-+0-9.e]+)$")


@dataclass(frozen=True)
class MetricName:
    """A parsed metric name: `fid_at_keep_0.50[inception]` -> base `fid_at_keep_0.50`, space `inception`,
    family `fid_at_keep`, point `0.50` (a point of a curve: shown in its own table, one column per point);
    `rejection.delta_vs_random_trigger.fid[classifier]` -> family `rejection.delta_vs_random_trigger`, point
    `fid` (dotted: one table per group, one column per measure)."""

    name: str
    base: str
    space: str | None
    family: str | None = None
    point: str | None = None
    dotted: bool = False  # family/point from a `group.measure` name (else a curve `*_at_keep_0.50`)


def parse(metric: str) -> MetricName:
    match = _SPACE.match(metric)
    base, space = (match["base"], match["space"]) if match else (metric, None)
    curve = _CURVE.match(base)
    if curve:
        return MetricName(metric, base, space, f"{curve['family']}_at_{curve['param']}", curve["value"])
    group, dot, measure = base.rpartition(".")
    if dot and group and measure and not measure[0].isdigit():  # `rejection.delta_vs_x.fid`: one table per group
        return MetricName(metric, base, space, group, measure, dotted=True)
    return MetricName(metric, base, space)


def _word_direction(text: str) -> int:
    for word in re.split(r"[^a-z0-9]+", text.lower()):
        if word in HIGHER_WORDS:
            return 1
        if word in LOWER_WORDS:
            return -1
    return 0


def direction(metric: str) -> int:
    """+1 when higher is better, -1 when lower is better, 0 when the name does not say.

    A paired difference `[procedure.]delta_vs_<baseline>.<measure>` takes the direction of `<measure>`;
    without a `.<measure>` it is a difference of FIDs (`delta_vs_random`: lower is better).
    """
    base = parse(metric).base
    if base in NO_DIRECTION:
        return 0
    head, sep, rest = base.partition("delta_vs_")
    if sep:  # `[procedure.]delta_vs_<baseline>.<measure>`, or `<measure>_delta_vs_<baseline>`
        _, dot, measured = rest.partition(".")
        return (_word_direction(measured) if dot else 0) or _word_direction(head) or -1
    return _word_direction(base)


def is_cost(metric: str) -> bool:
    """NFEs and wall-clock: what an estimator costs, never part of a quality rank."""
    return bool(set(re.split(r"[^a-z0-9]+", parse(metric).base.lower())) & COST_WORDS)


def is_setting(metric: str) -> bool:
    return parse(metric).base in SETTING_METRICS


def arrow(metric: str) -> str:
    return {1: " ↑", -1: " ↓", 0: ""}[direction(metric)]


def label(metric: str, *, with_space: bool = True, with_arrow: bool = True) -> str:
    """A short reader's label: `delta_vs_random[classifier]` -> `ΔFID vs random K [classifier] ↓`."""
    parsed = parse(metric)
    text = LABELS.get(parsed.base, parsed.point if parsed.dotted else parsed.base)
    if parsed.base not in LABELS and parsed.base.endswith(VS_TRIVIAL):  # e.g. auroc_off_manifold_delta_vs_trivial
        inner = parsed.base[:-len(VS_TRIVIAL)]
        text = f"Δ{LABELS.get(inner, inner)} vs best trivial"
    if with_space and parsed.space:
        text += f" [{parsed.space}]"
    return text + (arrow(metric) if with_arrow else "")


def format_value(value: float, low: float = math.nan, high: float = math.nan) -> str:
    """`1.234 [1.1, 1.4]` (4 significant digits; no interval where none was computed)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    text = f"{value:.4g}"
    if not (_nan(low) or _nan(high)):
        text += f" [{low:.4g}, {high:.4g}]"
    return text


def _nan(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))
