"""Protocol 6: ground truth on the analytic Gaussian-mixture preset — each estimator against what it estimates.

Targets (benchmark/protocols/ground_truth_targets.py) by estimator kind:
- aleatoric: the same estimator with the exact score on the same states and draws. Rows
  `spearman_pixel_vs_exact_score` (mean over images of the per-image Spearman correlation of the two maps) and
  `spearman_score_vs_exact_score` (across samples).
- epistemic, on the first `target_samples` samples: the shared-theta spread Var_s[x0^s] over `weight_draws`
  regenerations and the squared error (x0_network - x0_exact)^2 from the same x_T. Rows
  `spearman_{pixel,score}_vs_shared_theta_var` and `spearman_{pixel,score}_vs_sq_error`. The spread is itself a
  Monte-Carlo estimate: beside it `target_reliability_{pixel,score}_shared_theta_var` (its split-half reliability,
  Spearman-Brown stepped up to all draws; sqrt of it is the ceiling of the raw rows) and
  `spearman_{pixel,score}_vs_shared_theta_var_corrected` (the raw row over sqrt(reliability): corrected for the
  target's noise, the estimator's map taken as exact), see ground_truth_reliability.
  For BayesDiff also `calibration_ratio[skip=s]` for s in `calibration_skips`: the propagated Var[x0] over the
  brute-force shared-theta variance of its own Laplace posterior, mean over pixels and samples each,
      ratio = sum_{b,p} Var_BayesDiff[x0]_{b,p} / sum_{b,p} Var_s[x0^s]_{b,p}        (1 = calibrated).
  Reported, never used to rescale anything.
- every kind (usefulness): `spearman_score_vs_neg_log_density` (Spearman of the score with -log p(x0)),
  `auroc_lowest_<f>pct_density` (label 1 = among the lowest-density fraction f of the samples) and
  `auroc_between_mode` (label 1 = nearest-mode responsibility of x0 below `between_mode_responsibility`) and
  `auroc_off_mode` (label 1 = x0 outside the 99 % typical set of its nearest mode: ||x0 - mu_k||^2 / s^2 above
  the 0.99 quantile of chi^2_D; in high dimension responsibilities are ~0 or ~1, so this is the label that
  finds the samples left between modes there).
- extra column, named for what it is: `spearman_pixel_vs_posterior_var_all_steps` (the oracle's Var[x0 | x_t]
  summed over all steps: isotropic components leave it without pixel structure inside a late window).
Intervals: percentile bootstrap over samples (`run.bootstrap` replicates; rows resampled jointly; AUROCs
stratified by class); they cover the sampling variation of the statistic over the generated samples (and, for
the epistemic targets, of those samples' weight draws), not the Monte-Carlo error of the estimators' own draws;
the corrected rows' replicates recompute the target's reliability on the same resampled samples.
A statistic that is undefined (constant input, one class only, e.g. no between-mode sample) is NaN. `n` is the number of samples used.
Where trivial baselines are configured (`distance_to_mean` on the mixture), `<usefulness row>_delta_vs_trivial` compares
every score with the best of them on the same samples (benchmark.protocols.ground_truth_trivial): those are the
verdicts then. Tests against the floor (a score with no information has rho = 0 and AUROC = 0.5 in expectation): the
usefulness rows carry the p-value of that null, Spearman's test of rho = 0 (scipy.stats.spearmanr) and the Mann-Whitney U
test of AUROC = 0.5 (scipy.stats.mannwhitneyu, two-sided), which the report's verdicts adjust for multiplicity.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from scipy.stats import chi2, mannwhitneyu, spearmanr

from benchmark.protocols.base import ProtocolInputs
from benchmark.protocols.ground_truth_reliability import (
    nanmean,
    per_image_spearman,
    reliability_rows,
    spearman,
    split_half_target,
)
from benchmark.protocols.ground_truth_targets import (  # noqa: F401
    EXACT_PREFIX,
    ORACLE,
    OracleObserver,
    exact_samples,
    mode_responsibility,
    nearest_mode_radius,
    shared_theta_draws,
)
from benchmark.protocols.ground_truth_trivial import trivial_rows
from benchmark.protocols.table import MetricRow, row_from_ci
from estimators.base import COMMON_PARAMETERS
from metrics.significance import detectable_effect
from metrics import bootstrap_ci
from metrics import detection
from metrics.bootstrap import ConfidenceInterval, percentile_interval

NAME = "ground_truth"


def features_read(params: dict, config) -> set[tuple[str, str]]:
    """(space, split) pairs of the run's features this protocol reads: none (the analytic oracle only)."""
    return set()


def record_log_density(oracle):
    """after_batch hook of the generation pass: store log p(x0) and the nearest-mode responsibility."""

    def hook(x0: torch.Tensor, record: dict) -> None:
        record["extras"]["log_density"] = oracle.log_density(x0.to(oracle.means.device)).cpu().to(torch.float64)
        record["extras"]["mode_responsibility"] = mode_responsibility(oracle, x0)
        record["extras"]["nearest_mode_radius"] = nearest_mode_radius(oracle, x0)

    return hook


def run(inputs: ProtocolInputs, params: dict) -> list[MetricRow]:
    gen = inputs.generation
    if ORACLE not in gen.pixels or "log_density" not in gen.extras:
        return []
    oracle = inputs.preset.oracle().to(inputs.model.device)
    rows = _old_target_rows(inputs)
    rows += _usefulness_rows(inputs, params)
    rows += _aleatoric_rows(inputs)
    rows += _epistemic_rows(inputs, params, oracle)
    return rows


def _row(inputs: ProtocolInputs, estimator: str, metric: str, statistic, *arrays) -> MetricRow:
    ci = bootstrap_ci(statistic, *arrays, n_boot=inputs.config.bootstrap, seed=inputs.seed)
    return row_from_ci(NAME, estimator, metric, ci, len(arrays[0]), inputs.seed)


def _pixel_row(inputs: ProtocolInputs, estimator: str, metric: str, maps: torch.Tensor, target: torch.Tensor
               ) -> MetricRow:
    """Mean over images of the per-image Spearman correlation of two maps [N,C,H,W]."""
    per_image = per_image_spearman(maps, target)
    return _row(inputs, estimator, metric, nanmean, per_image)


def _old_target_rows(inputs: ProtocolInputs) -> list[MetricRow]:
    gen = inputs.generation
    return [_pixel_row(inputs, name, "spearman_pixel_vs_posterior_var_all_steps", gen.pixels[name], gen.pixels[ORACLE])
            for name in inputs.estimator_names]


def _usefulness_rows(inputs: ProtocolInputs, params: dict) -> list[MetricRow]:
    gen = inputs.generation
    neg_log_p = -gen.extras["log_density"].numpy()
    frac = float(params["lowest_density_fraction"])
    lowest = (neg_log_p >= np.quantile(neg_log_p, 1 - frac)).astype(np.float64)
    between = (gen.extras["mode_responsibility"].numpy() < float(params["between_mode_responsibility"])
               ).astype(np.float64)
    labels = [(f"auroc_lowest_{int(round(frac * 100))}pct_density", lowest), ("auroc_between_mode", between)]
    if "nearest_mode_radius" in gen.extras:  # shards written before it was recorded lack it
        radius = gen.extras["nearest_mode_radius"].numpy()
        dims = int(np.prod(inputs.generation.x0.shape[1:]))
        labels.append(("auroc_off_mode", (radius > chi2.ppf(0.99, dims)).astype(np.float64)))
    rows = []
    statistics = {"spearman_score_vs_neg_log_density": (spearman, neg_log_p),
                  **{metric: (_auroc_of_score, label) for metric, label in labels}}
    trivial = [e.name for e in inputs.make_estimators() if getattr(e, "trivial_baseline", False)]
    scores = {name: gen.scores[name].numpy() for name in inputs.estimator_names}
    rows += trivial_rows(NAME, scores, statistics, [t for t in trivial if t in scores], inputs.config.bootstrap,
                         inputs.seed)
    for name in inputs.estimator_names:
        score = gen.scores[name].numpy()
        rho = bootstrap_ci(spearman, score, neg_log_p, n_boot=inputs.config.bootstrap, seed=inputs.seed)
        rho.p_value = spearman_p_value(score, neg_log_p)
        rho.detectable = detectable_effect(1.0 / math.sqrt(max(len(score) - 1, 1)))  # null sd of Spearman's rho
        rows.append(row_from_ci(NAME, name, "spearman_score_vs_neg_log_density", rho, len(score), inputs.seed))
        for metric, label in labels:
            ci = auroc_ci(label, score, inputs.config.bootstrap, inputs.seed)
            rows.append(row_from_ci(NAME, name, metric, ci, len(score), inputs.seed))
    return rows


def _aleatoric_rows(inputs: ProtocolInputs) -> list[MetricRow]:
    gen = inputs.generation
    rows = []
    for name in inputs.estimator_names:
        exact = EXACT_PREFIX + name
        if exact not in gen.pixels:
            continue
        rows.append(_pixel_row(inputs, name, "spearman_pixel_vs_exact_score", gen.pixels[name], gen.pixels[exact]))
        rows.append(_row(inputs, name, "spearman_score_vs_exact_score", spearman, gen.scores[name].numpy(),
                         gen.scores[exact].numpy()))
    return rows


def _epistemic_rows(inputs: ProtocolInputs, params: dict, oracle) -> list[MetricRow]:
    from benchmark.sampling import initial_labels, initial_noise

    made = {e.name: e for e in inputs.make_estimators()}
    epistemic = [name for name in inputs.estimator_names if name in made and made[name].kind == "epistemic"]
    if not epistemic:
        return []
    cfg, gen, model = inputs.config, inputs.generation, inputs.model
    n = min(int(params["target_samples"]), gen.size)
    idx = gen.indices[:n]
    x_T = initial_noise(cfg.seed, idx, model.sample_shape).to(model.device)
    y = initial_labels(cfg.seed, idx, model.num_classes).to(model.device) if model.num_classes else None
    run_args = dict(sampler=cfg.sampler, steps=cfg.steps, seed=cfg.seed, indices=idx)
    x0_net = gen.x0[:n]
    sq_error = (x0_net.double() - exact_samples(oracle, x_T, **run_args).cpu().double()).pow(2)
    rows = []
    for name in epistemic:
        estimator = made[name]
        try:
            target = split_half_target(shared_theta_draws(estimator, model, x_T, draws=int(params["weight_draws"]),
                                                          y=y, **run_args).cpu())
            spread = target.full
        except NotImplementedError:  # an epistemic estimator that cannot draw weights: a visible NaN row
            target = spread = None
            rows.append(MetricRow(NAME, name, "spearman_score_vs_shared_theta_var", float("nan"), n=n, seed=cfg.seed))
        maps, scores = gen.pixels[name][:n], gen.scores[name][:n].numpy()
        for target_name, target_map in (("shared_theta_var", spread), ("sq_error", sq_error)):
            if target_map is None:
                continue
            rows.append(_pixel_row(inputs, name, f"spearman_pixel_vs_{target_name}", maps, target_map))
            rows.append(_row(inputs, name, f"spearman_score_vs_{target_name}", spearman, scores,
                             target_map.flatten(1).sum(1).numpy()))
        if target is not None:
            rows += reliability_rows(NAME, name, maps, scores, target, n_boot=cfg.bootstrap, seed=cfg.seed)
        if spread is not None and getattr(estimator, "state_variance", False) and hasattr(estimator, "skip"):
            rows += _calibration_rows(inputs, params, estimator, x_T, y, spread, run_args)
    return rows


def _calibration_rows(inputs: ProtocolInputs, params: dict, estimator, x_T, y, spread: torch.Tensor,
                      run_args: dict) -> list[MetricRow]:
    """calibration_ratio[skip=s]: BayesDiff's Var[x0] with skip s (its configured skip rule) over the shared-theta
    spread, same samples; for s > 1 also calibration_ratio[skip=s,rule=r] for both skip rules (the flow's
    contraction and the public code's k^2 Var), so the public results can be read beside the corrected ones."""
    skips = [int(s) for s in params["calibration_skips"]]
    rules = ("contraction", "public") if hasattr(estimator, "skip_rule") else ()
    variants = [(s, None) for s in skips] + [(s, r) for s in skips if s > 1 for r in rules]
    propagated = skip_variances(estimator, inputs.model, x_T, variants, y=y, **run_args)
    spread_per_sample = spread.flatten(1).sum(1).numpy()
    return [_row(inputs, estimator.name, f"calibration_ratio[skip={s}" + (f",rule={r}]" if r else "]"),
                 ratio_of_sums, propagated[(s, r)].flatten(1).sum(1).numpy(), spread_per_sample)
            for s, r in variants]


def skip_variances(estimator, model, x_T: torch.Tensor, skips: list, *, y=None, **run_args) -> dict:
    """{key: BayesDiff's propagated Var[x0] [B,C,H,W] (float64, CPU)} from x_T: copies of `estimator` (same
    posterior, draws and options, negate off), one per key, in one sampling pass. A key is a skip s (the
    estimator's own skip rule) or a pair (s, rule), rule None meaning the estimator's own."""
    from benchmark.sampling import sample

    own = {k: v for k, v in estimator.params().items() if k not in COMMON_PARAMETERS}
    variants = {}
    for key in skips:
        s, rule = key if isinstance(key, tuple) else (key, None)
        variants[key] = type(estimator)(**{**own, "skip": s, **({"skip_rule": rule} if rule else {})})
        variants[key].name = f"{estimator.name}@skip{s}" + (f"@{rule}" if rule else "")
    with torch.no_grad():
        out = sample(model, x_T, estimators=list(variants.values()), y=y, **run_args)
    return {s: out.uncertainty[v.name].pixel.cpu().double() for s, v in variants.items()}


def spearman_p_value(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided p of Spearman's test of rho = 0 (scipy's t approximation; NaN where rho is undefined)."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).pvalue)


def _auroc_of_score(score: np.ndarray, label: np.ndarray) -> float:
    return auroc(label, score)


def auroc(label: np.ndarray, score: np.ndarray) -> float:
    """AUROC of `score` for label 1 (NaN when only one class is present; metrics.detection, = sklearn's)."""
    return detection.auroc(label, score)


def auroc_ci(label: np.ndarray, score: np.ndarray, n_boot: int, seed: int) -> ConfidenceInterval:
    """AUROC with a stratified percentile bootstrap: positives and negatives are resampled separately (each
    keeps its count), so no replicate loses a class. NaN (value and interval) when one class is empty."""
    value = auroc(label, score)
    if not np.isfinite(value):
        return ConfidenceInterval(value=value, low=float("nan"), high=float("nan"), n_boot=0, alpha=0.05,
                                  method="stratified percentile")
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(label == 1), np.flatnonzero(label != 1)
    replicates = []
    for _ in range(n_boot):
        idx = np.concatenate([rng.choice(pos, pos.size), rng.choice(neg, neg.size)])
        replicates.append(auroc(label[idx], score[idx]))
    ci = percentile_interval(value, replicates, 0.05)
    ci.p_value = float(mannwhitneyu(score[pos], score[neg], alternative="two-sided").pvalue)  # H0: AUROC = 0.5
    # null sd of the AUROC (the Mann-Whitney U / (n1 n2) without ties): sqrt((n1 + n2 + 1) / (12 n1 n2))
    ci.detectable = detectable_effect(math.sqrt((pos.size + neg.size + 1) / (12.0 * pos.size * neg.size)))
    return ci


def ratio_of_sums(numerator: np.ndarray, denominator: np.ndarray) -> float:
    total = float(np.sum(denominator))
    return float(np.sum(numerator)) / total if total > 0 else float("nan")
