"""Protocol 2: improved precision / recall (Kynkaanniemi et al. 2019, k = 3) of the kept subsets.

Intervals come from `metrics.precision_recall_bootstrap`: each replicate builds the manifold from the
distinct drawn points and weights them by how often they were drawn, so a duplicated point does not shrink
its own k-NN radius to 0 (which would bias recall in a naive bootstrap).
"""
from __future__ import annotations

import numpy as np

from benchmark.runner.protocols.base import ProtocolInputs
from benchmark.runner.protocols.fid_utils import keep_lowest
from benchmark.runner.table import MetricRow, row_from_ci
from metrics import precision_recall_bootstrap

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
            result = precision_recall_bootstrap(real, feats[mask], k=k, n_boot=n_boot, seed=cfg.seed)
            for metric in ("precision", "recall", "f1"):
                rows.append(row_from_ci(NAME, name, f"{metric}[{space}]", getattr(result, metric), int(mask.sum()),
                                        cfg.seed))
    return rows
