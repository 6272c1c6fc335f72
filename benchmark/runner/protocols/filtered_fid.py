"""Protocol 1: filtered-set FID (Table 1 of the aleatoric paper; BayesDiff), at equal set sizes only.

Generate N, keep the K with the lowest score. FID_N is biased upwards in the number of samples, so a
K-subset is only ever compared with a set of the same size K: a uniformly random K-subset drawn by the
protocol from the run's seed (`random_subset`, the same for every filter), with a paired bootstrap over
the pool (rows shared by both sets move together). Rows per feature space:

- `(all)`      fid_all (N samples) and fid_infinity_all: reference figures, compared with nothing;
- `(random K)` fid_random: FID of the protocol's random K-subset (the baseline), a reference figure;
- per filter   fid_kept (K), delta_vs_random = FID(kept K) - FID(random K) (the verdict: < 0 with the
               interval below 0 = the filter helps), fid_infinity_kept (FID∞, Chong & Forsyth 2020, the
               1/n-extrapolated FID of the kept set, an estimate of the Fréchet distance itself), and the
               curve delta_vs_random_at_keep_<f> = FID(lowest f N) - FID(random f N) over kept fractions f < 1.
What every interval covers is in `metrics.METRIC_INFO`. The `random` estimator is a filter like any other
here: its deltas measure how often chance alone looks significant.
"""
from __future__ import annotations

from functools import partial

from benchmark.runner.protocols.base import ProtocolInputs
from benchmark.runner.protocols.fid_utils import (MIN_REPLICATES, RandomBaseline, bootstrap_replicates, fid_ci,
                                                  fid_infinity_ci, keep_lowest, random_subset)
from benchmark.runner.protocols.parts import Part, run_parts
from benchmark.runner.table import MetricRow, row_from_ci

NAME = "filtered_fid"
ALL, RANDOM = "(all)", "(random K)"


def run(inputs: ProtocolInputs, params: dict) -> list[MetricRow]:
    return run_parts(parts(inputs, params), inputs.artifacts)


def parts(inputs: ProtocolInputs, params: dict) -> list[Part]:
    """Per feature space: the reference rows, then one part per filter (the parts of a space share its
    RandomBaseline, so a process computes the random side of the paired comparisons once)."""
    out: list[Part] = []
    for space, feats in inputs.fake_features.items():
        baseline = RandomBaseline(feats, inputs.reference_stats[space], inputs.config.seed)
        cost = feats.shape[1] / 200  # rough seconds of one filter's rows (a 2048-d space: ~10 s on one CPU thread)
        out.append(Part(partial(_reference_rows, inputs, params, space), cost))
        out += [Part(partial(_filter_rows, inputs, params, space, name, baseline), cost)
                for name in inputs.estimator_names]
    return out


def _reference_rows(inputs: ProtocolInputs, params: dict, space: str, artifacts: dict) -> list[MetricRow]:
    """FID of all N (and its FID∞) and of the protocol's random K-subset: reference figures."""
    cfg, gen = inputs.config, inputs.generation
    feats, ref, seed = inputs.fake_features[space], inputs.reference_stats[space], cfg.seed
    n_boot = bootstrap_replicates(space, cfg.bootstrap)
    artifacts.setdefault("fid_curves", {})
    rows = [row_from_ci(NAME, ALL, f"fid_all[{space}]", fid_ci(feats, ref, n_boot, seed), gen.size, seed),
            row_from_ci(NAME, RANDOM, f"fid_random[{space}]",
                        fid_ci(feats[random_subset(gen.size, cfg.keep, seed)], ref, n_boot, seed), cfg.keep, seed)]
    points = int(params.get("fid_infinity_points", 5))
    if points:
        rows.append(row_from_ci(NAME, ALL, f"fid_infinity_all[{space}]",
                                fid_infinity_ci(feats, ref, MIN_REPLICATES, seed, points), gen.size, seed))
    return rows


def _filter_rows(inputs: ProtocolInputs, params: dict, space: str, name: str, baseline: RandomBaseline,
                 artifacts: dict) -> list[MetricRow]:
    """One filter's kept-K FID, its paired difference to the random K, its FID∞ and its ΔFID curve."""
    cfg, gen = inputs.config, inputs.generation
    feats, ref, keep, seed = inputs.fake_features[space], inputs.reference_stats[space], cfg.keep, cfg.seed
    n_boot = bootstrap_replicates(space, cfg.bootstrap)
    points = int(params.get("fid_infinity_points", 5))
    scores = gen.scores[name].numpy()
    mask = keep_lowest(scores, keep)
    rows = [row_from_ci(NAME, name, f"fid_kept[{space}]", fid_ci(feats[mask], ref, n_boot, seed), keep, seed),
            row_from_ci(NAME, name, f"delta_vs_random[{space}]", baseline.delta_ci(mask, n_boot), keep, seed)]
    if points:  # MIN_REPLICATES: each FID∞ replicate costs `points` FIDs
        rows.append(row_from_ci(NAME, name, f"fid_infinity_kept[{space}]",
                                fid_infinity_ci(feats[mask], ref, MIN_REPLICATES, seed, points), keep, seed))
    curve = _curve(baseline, scores, params["curve_fractions"], seed, rows, name, space)
    if curve:
        artifacts.setdefault("fid_curves", {})[(space, name)] = curve
    return rows


def _curve(baseline, scores, fractions, seed, rows, name, space) -> list[tuple[float, float, float, float]]:
    """(fraction, ΔFID vs random at that size, low, high) for every kept fraction < 1 (at 1 both sets are all N)."""
    points = []
    for frac in sorted(float(f) for f in fractions):
        k = max(2, int(round(frac * scores.size)))
        if k >= scores.size:
            continue
        ci = baseline.delta_ci(keep_lowest(scores, k), MIN_REPLICATES)
        points.append((frac, ci.value, ci.low, ci.high))
        rows.append(row_from_ci(NAME, name, f"delta_vs_random_at_keep_{frac:.2f}[{space}]", ci, k, seed))
    return points
