"""Protocol 1: filtered-set FID (Table 1 of the aleatoric paper; BayesDiff).

Generate N, keep the K with the lowest score: FID(kept) vs FID(all) vs FID(random K, the `random`
estimator's subset), bootstrap intervals of each FID and of the paired differences; plus the curve of FID
against the kept fraction.
"""
from __future__ import annotations

import numpy as np

from benchmark.runner.protocols.base import ProtocolInputs
from benchmark.runner.protocols.fid_utils import bootstrap_replicates, fid_ci, keep_lowest, subset_delta_ci
from benchmark.runner.table import MetricRow, row_from_ci

NAME = "filtered_fid"


def run(inputs: ProtocolInputs, params: dict) -> list[MetricRow]:
    cfg, gen = inputs.config, inputs.generation
    rows: list[MetricRow] = []
    curves: dict = {}
    keep = cfg.keep
    for space, feats in inputs.fake_features.items():
        ref = inputs.reference_stats[space]
        n_boot = bootstrap_replicates(space, cfg.bootstrap)
        all_ci = fid_ci(feats, ref, n_boot, cfg.seed)
        rows.append(row_from_ci(NAME, "(all)", f"fid_all[{space}]", all_ci, gen.size, cfg.seed))
        random_mask = keep_lowest(gen.scores["random"].numpy(), keep) if "random" in gen.scores else None
        for name in inputs.estimator_names:
            scores = gen.scores[name].numpy()
            mask = keep_lowest(scores, keep)
            kept_ci = fid_ci(feats[mask], ref, n_boot, cfg.seed)
            rows.append(row_from_ci(NAME, name, f"fid_kept[{space}]", kept_ci, keep, cfg.seed))
            everything = np.ones_like(mask)
            rows.append(row_from_ci(NAME, name, f"delta_vs_all[{space}]",
                                    subset_delta_ci(feats, mask, everything, ref, n_boot, cfg.seed), keep, cfg.seed))
            if random_mask is not None and name != "random":
                rows.append(row_from_ci(NAME, name, f"delta_vs_random[{space}]",
                                        subset_delta_ci(feats, mask, random_mask, ref, n_boot, cfg.seed), keep, cfg.seed))
            curves[(space, name)] = _curve(feats, scores, ref, params["curve_fractions"], n_boot, cfg.seed, rows, name, space)
    inputs.artifacts["fid_curves"] = curves
    return rows


def _curve(feats, scores, ref, fractions, n_boot, seed, rows, name, space) -> list[tuple[float, float, float, float]]:
    points = []
    for frac in sorted(float(f) for f in fractions):
        k = max(2, int(round(frac * scores.size)))
        ci = fid_ci(feats[keep_lowest(scores, k)], ref, max(10, n_boot // 4), seed)
        points.append((frac, ci.value, ci.low, ci.high))
        rows.append(row_from_ci(NAME, name, f"fid_at_keep_{frac:.2f}[{space}]", ci, k, seed))
    return points
