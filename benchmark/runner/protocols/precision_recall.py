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

from functools import partial

import numpy as np

from benchmark.runner.protocols.base import ProtocolInputs
from benchmark.runner.protocols.fid_utils import bootstrap_replicates, keep_lowest, random_subset
from benchmark.runner.protocols.parts import Part, run_parts
from benchmark.runner.table import MetricRow, not_run_row, row_from_ci
from metrics import precision_recall_bootstrap

NAME = "precision_recall"
METRICS = ("precision", "recall", "f1")


def run(inputs: ProtocolInputs, params: dict) -> list[MetricRow]:
    return run_parts(parts(inputs, params), inputs.artifacts)


def parts(inputs: ProtocolInputs, params: dict) -> list[Part]:
    """One part per (feature space, subset): `(all)`, `(random K)`, then each filter's kept K."""
    cfg, gen = inputs.config, inputs.generation
    out: list[Part] = []
    for space in inputs.fake_features:
        if inputs.real_features.get(space) is None:  # only statistics are committed for this space (e.g. Inception)
            out.append(Part(lambda artifacts, space=space: [not_run_row(NAME, "no_real_features", space, cfg.seed)],
                            cost=0.0))
            continue
        subsets = {"(all)": np.ones(gen.size, dtype=bool), "(random K)": random_subset(gen.size, cfg.keep, cfg.seed)}
        subsets.update({name: keep_lowest(gen.scores[name].numpy(), cfg.keep) for name in inputs.estimator_names})
        out += [Part(partial(_subset_rows, inputs, params, space, name, mask), cost=3.0)  # ~3 s at N = 600, 128-d
                for name, mask in subsets.items()]
    return out


def _subset_rows(inputs: ProtocolInputs, params: dict, space: str, name: str, mask: np.ndarray,
                 artifacts: dict) -> list[MetricRow]:
    seed = inputs.config.seed
    # half the run's replicates (a P&R replicate rebuilds a k-NN manifold), never fewer than 100: fewer make the
    # 95% percentile interval too narrow
    n_boot = bootstrap_replicates(space, inputs.config.bootstrap // 2)
    result = precision_recall_bootstrap(inputs.real_features[space], inputs.fake_features[space][mask],
                                        k=int(params["k"]), n_boot=n_boot, seed=seed)
    return [row_from_ci(NAME, name, f"{metric}[{space}]", getattr(result, metric), int(mask.sum()), seed)
            for metric in METRICS]
