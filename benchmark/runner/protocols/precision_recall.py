"""Protocol 2: improved precision / recall (Kynkaanniemi et al. 2019, k = 3) of the kept subsets, at equal sizes.

The k-NN manifolds depend on the set size, so the baseline of a kept K-subset is the protocol's random
K-subset (`fid_utils.random_subset`, the same one filtered_fid uses), reported as the `(random K)` row; the
`(all)` row (N samples) is a reference figure. No difference rows: a paired bootstrap of P(kept) - P(random)
rests on the few rows the two sets do not share, and with precision near 1 those hold a handful of points
outside the manifold, so its interval is far too narrow (measured: 22% of 40 random filters "significant"
at a nominal 5%, 100 replicates, K = 100 of 120). Read kept against (random K) with their intervals.

Intervals of single values come from `metrics.precision_recall_bootstrap`: each replicate builds the manifold
from the distinct drawn points and weights them by how often they were drawn, so a duplicated point does not
shrink its own k-NN radius to 0 (which would bias recall in a naive bootstrap).
"""
from __future__ import annotations

import numpy as np

from benchmark.runner.protocols.base import ProtocolInputs
from benchmark.runner.protocols.fid_utils import bootstrap_replicates, keep_lowest, random_subset
from benchmark.runner.table import MetricRow, not_run_row, row_from_ci
from metrics import precision_recall_bootstrap

NAME = "precision_recall"
METRICS = ("precision", "recall", "f1")


def run(inputs: ProtocolInputs, params: dict) -> list[MetricRow]:
    cfg, gen = inputs.config, inputs.generation
    k, seed = int(params["k"]), cfg.seed
    random_mask = random_subset(gen.size, cfg.keep, seed)
    rows: list[MetricRow] = []
    for space, feats in inputs.fake_features.items():
        real = inputs.real_features.get(space)
        # half the run's replicates (a P&R replicate rebuilds a k-NN manifold), never fewer than 100: fewer make the
        # 95% percentile interval too narrow
        n_boot = bootstrap_replicates(space, cfg.bootstrap // 2)
        if real is None:  # only statistics are committed for this space (e.g. Inception): said in a row
            rows.append(not_run_row(NAME, "no_real_features", space, seed))
            continue
        subsets = {"(all)": np.ones(gen.size, dtype=bool), "(random K)": random_mask}
        subsets.update({name: keep_lowest(gen.scores[name].numpy(), cfg.keep) for name in inputs.estimator_names})
        for name, mask in subsets.items():
            result = precision_recall_bootstrap(real, feats[mask], k=k, n_boot=n_boot, seed=seed)
            rows += [row_from_ci(NAME, name, f"{metric}[{space}]", getattr(result, metric), int(mask.sum()), seed)
                     for metric in METRICS]
    return rows
