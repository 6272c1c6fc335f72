"""Protocol 1: filtered-set FID (Table 1 of the aleatoric paper; BayesDiff), at equal set sizes only.

Generate N, keep the K with the lowest score. FID_N is biased upwards in the number of samples, so a
K-subset is only ever compared with sets of the same size K: R uniformly random K-subsets of the same pool
(`protocols.filtered_fid.random_subsets`, R >= 100; the same R subsets for every filter), whose FIDs give the
floor's expectation and the exact null law of "the score carries no information" (fid_utils.RandomBaseline).
Rows per feature space:

- `(all)`      fid_all (N samples) and fid_infinity_all: reference figures, compared with nothing;
- `(random K)` fid_random_mean: the mean FID of the R random K-subsets, with the 2.5-97.5 % range of the R values
               (what a no-information filter's FID falls in): a reference figure;
- per filter   fid_kept (K), delta_vs_random = FID(kept K) - mean FID(random K) (the verdict, with the
               randomization test's p-value: < 0 and significant = the filter helps), fid_infinity_kept (FID∞,
               Chong & Forsyth 2020, an estimate of the Fréchet distance itself; only where its 1/n fit is sound,
               `metrics.fid_infinity.is_sound`, else a "(not run)" row says why), and the curve
               delta_vs_random_at_keep_<f> = FID(lowest f N) - mean FID(random f N) over kept fractions f < 1;
               with class labels (a conditional model): delta_vs_random_stratified (the filter applied within each
               class in proportion to its size, against R random K-subsets with the same count in every class,
               drawn uniformly within each class: removes bad samples, or removes a class?) and, once per filter,
               kept_class_tvd (chi-square p) and removed_share_of_class_<c>;
               beside ΔFID, whether the filter removes bad samples or removes spread (benchmark.protocols.
               fidelity_diversity): ΔFID split into its mean, trace and cross terms, and ΔKID, Δdensity and
               Δcoverage against the real test features (a "(not run)" row where the space has none), each against
               the same R random K-subsets.
What every interval covers is in `metrics.METRIC_INFO`. The `random` estimator is a filter like any other
here: its delta is one draw from the null law, centred on 0 (how often chance alone looks significant is
measured by bench/calibration_bench.py).
"""
from __future__ import annotations

import math
from functools import partial

import numpy as np

from benchmark.execution.features import GENERATED, REAL_TEST, every_space
from benchmark.protocols.base import ProtocolInputs
from benchmark.protocols.fidelity_diversity import NO_REAL_FEATURES, RealSetJudges, character_rows
from benchmark.protocols.fid_utils import (
    DEFAULT_RANDOM_SUBSETS,
    MIN_REPLICATES,
    RandomBaseline,
    bootstrap_replicates,
    fid_ci,
    fid_infinity_ci,
    keep_lowest,
)
from benchmark.protocols.parts import Part, run_parts
from benchmark.protocols.table import MetricRow, not_run_row, row_from_ci
from metrics.class_balance import keep_lowest_stratified, removal_class_test
from metrics.fid_infinity import is_sound

NAME = "filtered_fid"
VERSION = 2  # 2: the stratified filter against class-matched random subsets; the FID decomposition, KID, density and coverage rows
ALL, RANDOM = "(all)", "(random K)"
FID_INFINITY_DRAWS = 4  # independent subset draws averaged per FID∞ fit


def features_read(params: dict, config) -> set[tuple[str, str]]:
    """(space, split) pairs of the run's features this protocol reads, in every space: the generated samples'
    features against the real test set's statistics (FID), and its features themselves where the run computes them
    (KID, density, coverage; a space with committed statistics only gets a "(not run)" row for those)."""
    return every_space(config, GENERATED, REAL_TEST)


def run(inputs: ProtocolInputs, params: dict) -> list[MetricRow]:
    return run_parts(parts(inputs, params), inputs.artifacts)


def parts(inputs: ProtocolInputs, params: dict) -> list[Part]:
    """Per feature space: the reference rows, then one part per filter (the parts of a space share its
    RandomBaseline, so a process computes the random side of the paired comparisons once)."""
    out: list[Part] = []
    for space, feats in inputs.fake_features.items():
        baseline = RandomBaseline(feats, inputs.reference_stats[space], inputs.config.seed,
                                  int(params.get("random_subsets", DEFAULT_RANDOM_SUBSETS)))
        real = inputs.real_features.get(space)
        judges = None if real is None else RealSetJudges(feats, real)
        cost = feats.shape[1] / 200  # rough seconds of one filter's rows (a 2048-d space: ~10 s on one CPU thread)
        out.append(Part(partial(_reference_rows, inputs, params, space, baseline, judges), cost))
        out += [Part(partial(_filter_rows, inputs, params, space, name, baseline, judges), cost)
                for name in inputs.estimator_names]
    return out


def _reference_rows(inputs: ProtocolInputs, params: dict, space: str, baseline: RandomBaseline,
                    judges: RealSetJudges | None, artifacts: dict) -> list[MetricRow]:
    """FID of all N (and its FID∞) and the mean FID of the R random K-subsets: reference figures."""
    cfg, gen = inputs.config, inputs.generation
    feats, ref, seed = inputs.fake_features[space], inputs.reference_stats[space], cfg.seed
    n_boot = bootstrap_replicates(space, cfg.bootstrap)
    artifacts.setdefault("fid_curves", {})
    rows = [row_from_ci(NAME, ALL, f"fid_all[{space}]", fid_ci(feats, ref, n_boot, seed), gen.size, seed),
            row_from_ci(NAME, RANDOM, f"fid_random_mean[{space}]", baseline.spread_ci(cfg.keep), cfg.keep, seed)]
    rows += _fid_infinity_rows(params, ALL, "fid_infinity_all", space, feats, ref, seed, cfg.keep)
    if int(params.get("fid_infinity_points", 5)) and not is_sound(cfg.keep, feats.shape[1]):
        rows.append(not_run_row(NAME, "fid_infinity_unsound", space, seed))
    if judges is None:
        rows.append(not_run_row(NAME, NO_REAL_FEATURES, space, seed))
    return rows


def _fid_infinity_rows(params: dict, name: str, metric: str, space: str, feats, ref, seed: int,
                       keep: int) -> list[MetricRow]:
    """FID∞ of `feats` (averaged over FID_INFINITY_DRAWS subset draws; value NaN where the fit extrapolates to
    <= 0) where the fit over K rows is sound, else nothing (the reference part writes one "(not run)" row for
    the space); nothing when fid_infinity_points = 0."""
    points = int(params.get("fid_infinity_points", 5))
    if not points or not is_sound(keep, feats.shape[1]):
        return []
    ci = fid_infinity_ci(feats, ref, MIN_REPLICATES, seed, points, FID_INFINITY_DRAWS)  # each replicate: `points` FIDs
    if ci.value <= 0:
        return [MetricRow(NAME, name, f"{metric}[{space}]", math.nan, n=feats.shape[0], seed=seed)]
    return [row_from_ci(NAME, name, f"{metric}[{space}]", ci, feats.shape[0], seed)]


def _filter_rows(inputs: ProtocolInputs, params: dict, space: str, name: str, baseline: RandomBaseline,
                 judges: RealSetJudges | None, artifacts: dict) -> list[MetricRow]:
    """One filter's kept-K FID, its difference to the mean of the random K-subsets with what it is made of
    (fidelity_diversity), its FID∞ and its ΔFID curve."""
    cfg, gen = inputs.config, inputs.generation
    feats, ref, keep, seed = inputs.fake_features[space], inputs.reference_stats[space], cfg.keep, cfg.seed
    n_boot = bootstrap_replicates(space, cfg.bootstrap)
    scores = gen.scores[name].numpy()
    mask = keep_lowest(scores, keep)
    rows = [row_from_ci(NAME, name, f"fid_kept[{space}]", fid_ci(feats[mask], ref, n_boot, seed), keep, seed),
            row_from_ci(NAME, name, f"delta_vs_random[{space}]", baseline.delta_ci(mask), keep, seed)]
    rows += character_rows(NAME, baseline, judges, mask, name, space, seed)
    rows += _fid_infinity_rows(params, name, "fid_infinity_kept", space, feats[mask], ref, seed, keep)
    labels = getattr(gen, "y", None)
    if labels is not None:
        rows += _class_rows(baseline, labels.reshape(-1).numpy(), scores, mask, name, space,
                            first_space=space == next(iter(inputs.fake_features)), seed=seed)
    curve = _curve(baseline, scores, params["curve_fractions"], seed, rows, name, space)
    if curve:
        artifacts.setdefault("fid_curves", {})[(space, name)] = curve
    return rows


def _class_rows(baseline: RandomBaseline, labels: np.ndarray, scores: np.ndarray, mask: np.ndarray, name: str,
                space: str, *, first_space: bool, seed: int) -> list[MetricRow]:
    """Does the filter remove bad samples or a class (metrics.class_balance)? delta_vs_random_stratified: the filter
    applied within each class in proportion to the class sizes, FID minus the mean of R random K-subsets with the
    same count in every class (RandomBaseline.stratified; randomization test); kept_class_tvd (once, in the first
    space): how far the kept samples' class histogram is from all samples', with the chi-square p, and
    removed_share_of_class_<c> of the most removed class."""
    keep = int(mask.sum())
    stratified = keep_lowest_stratified(scores, labels, keep)
    within_classes = baseline.stratified(labels).delta_ci(stratified)
    rows = [row_from_ci(NAME, name, f"delta_vs_random_stratified[{space}]", within_classes, keep, seed)]
    if first_space:
        test = removal_class_test(labels, mask)
        rows.append(MetricRow(NAME, name, "kept_class_tvd", test.tvd, n=keep, seed=seed, p_value=test.p_value))
        rows.append(MetricRow(NAME, name, f"removed_share_of_class_{test.top[0]}", test.top[1],
                              n=int(labels.size - keep), seed=seed))
    return rows


def _curve(baseline, scores, fractions, seed, rows, name, space) -> list[tuple[float, float, float, float]]:
    """(fraction, ΔFID vs random at that size, low, high) for every kept fraction < 1 (at 1 both sets are all N)."""
    points = []
    for frac in sorted(float(f) for f in fractions):
        k = max(2, int(round(frac * scores.size)))
        if k >= scores.size:
            continue
        ci = baseline.delta_ci(keep_lowest(scores, k))
        points.append((frac, ci.value, ci.low, ci.high))
        rows.append(row_from_ci(NAME, name, f"delta_vs_random_at_keep_{frac:.2f}[{space}]", ci, k, seed))
    return points
