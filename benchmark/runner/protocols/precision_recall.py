"""Protocol 2: improved precision / recall (Kynkaanniemi et al. 2019, k = 3) of the kept subsets.

Precision is a mean over generated samples of "inside the real manifold", so resampling the generated set
gives a valid bootstrap interval. Recall and F1 depend on the generated set's own k-NN radii, which
duplicated rows of a bootstrap resample would shrink (a duplicate is its own 0-distance neighbour), so
they are reported without an interval rather than with a biased one.
"""
from __future__ import annotations

import numpy as np

from benchmark.runner.protocols.base import ProtocolInputs
from benchmark.runner.protocols.fid_utils import keep_lowest
from benchmark.runner.table import MetricRow, row_from_ci
from metrics import bootstrap_ci, precision_recall

NAME = "precision_recall"


def run(inputs: ProtocolInputs, params: dict) -> list[MetricRow]:
    cfg, gen = inputs.config, inputs.generation
    k = int(params["k"])
    n_boot = max(10, cfg.bootstrap // 4)
    rows: list[MetricRow] = []
    for space, feats in inputs.fake_features.items():
        real = inputs.real_features.get(space)
        if real is None:  # only statistics are committed for this space (e.g. Inception): no P&R
            continue
        subsets = {"(all)": np.ones(gen.size, dtype=bool)}
        subsets.update({name: keep_lowest(gen.scores[name].numpy(), cfg.keep) for name in inputs.estimator_names})
        for name, mask in subsets.items():
            fake = feats[mask]
            n = int(mask.sum())
            point = precision_recall(real, fake, k=k)
            ci = bootstrap_ci(lambda f: precision_recall(real, f, k=k).precision, fake, n_boot=n_boot, seed=cfg.seed)
            rows.append(row_from_ci(NAME, name, f"precision[{space}]", ci, n, cfg.seed))
            rows.append(MetricRow(NAME, name, f"recall[{space}]", float(point.recall), n=n, seed=cfg.seed))
            rows.append(MetricRow(NAME, name, f"f1[{space}]", float(point.f1), n=n, seed=cfg.seed))
    return rows
