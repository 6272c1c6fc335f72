"""Protocol 2: improved precision / recall (Kynkaanniemi et al. 2019, k = 3) of the kept subsets, at equal sizes.

The k-NN manifolds depend on the set size, so a kept K-subset is read against K-subsets: the `(random K)` row is
the protocol's first random K-subset (`fid_utils.random_subset`, the first of filtered_fid's R), a reference
figure, and the `(all)` row (N samples) is one too. The verdict row is
    precision_delta_vs_random = precision(kept) - E[precision(random K-subset)] = share of kept rows inside the
                                real manifold - share of all N rows inside it
(the real manifold is fixed, so a random K-subset's expected precision is exactly the pool's), tested exactly:
under "the score carries no information" the number of kept rows inside is hypergeometric
(`metrics.significance.hypergeometric_test`). No bootstrap of P(kept) - P(random) is used: it rests on the few
rows the two sets do not share and was far too narrow (22% of 40 random filters "significant" at 5%).

Intervals of single values come from `metrics.precision_recall_bootstrap` with the real set fixed: recall and F1 by
m-out-of-n subsampling of the row's generated samples (0.8 K rows without replacement, spread x sqrt(m/(K-m)),
metrics.bootstrap.scheme_interval, as for FID), precision by the Wilson interval (given the real manifold, K x
precision is Binomial(K, p)); each covers the metric's expected value at this size against the fixed real set
(E[recall_K], not the limit K -> inf). The with-replacement bootstrap used before was biased for recall and F1: a
resample has ~63 % distinct rows, a manifold of fewer, larger balls, and the point estimate sat at 22 % of its
interval on average (the `(random K)` row fell outside its own). Coverage: bench/pr_interval_bench.py.
"""
from __future__ import annotations

from functools import partial

import numpy as np

from benchmark.execution.features import GENERATED, REAL_TEST, every_space
from benchmark.protocols.base import ProtocolInputs
from benchmark.protocols.fid_utils import bootstrap_replicates, keep_lowest, random_subset
from benchmark.protocols.parts import Part, run_parts
from benchmark.protocols.table import MetricRow, not_run_row, row_from_ci
from metrics import precision_recall_bootstrap
from metrics.precision_recall import DEFAULT_CHUNK_SIZE, fixed_set_radii, inside_manifold, real_and_fake_tensors
from metrics.significance import hypergeometric_test

NAME = "precision_recall"
VERSION = 2  # 2: recall and F1 intervals by m-out-of-n subsampling, precision by Wilson's interval
METRICS = ("precision", "recall", "f1")


def features_read(params: dict, config) -> set[tuple[str, str]]:
    """(space, split) pairs of the run's features this protocol reads: generated and real test features in every
    space (a space with only committed statistics gets a "(not run)" row)."""
    return every_space(config, GENERATED, REAL_TEST)


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
    seed, k = inputs.config.seed, int(params["k"])
    # half the run's replicates (a P&R replicate rebuilds a k-NN manifold), never fewer than 100: fewer make the
    # 95% percentile interval too narrow
    n_boot = bootstrap_replicates(space, inputs.config.bootstrap // 2)
    real, pool = inputs.real_features[space], inputs.fake_features[space]
    result = precision_recall_bootstrap(real, pool[mask], k=k, n_boot=n_boot, seed=seed, scheme="subsample")
    rows = [row_from_ci(NAME, name, f"{metric}[{space}]", getattr(result, metric), int(mask.sum()), seed)
            for metric in METRICS]
    if not name.startswith("("):  # a filter: its exact test against random K-subsets of the same pool
        ci = hypergeometric_test(pool_inside_real_manifold(real, pool, k), mask)
        rows.append(row_from_ci(NAME, name, f"precision_delta_vs_random[{space}]", ci, int(mask.sum()), seed))
    return rows


def pool_inside_real_manifold(real, pool, k: int) -> np.ndarray:
    """bool [N]: whether each generated row lies inside the real k-NN manifold (what precision averages)."""
    real_t, pool_t = real_and_fake_tensors(real, pool, "cpu")
    radii = fixed_set_radii(real_t, k, DEFAULT_CHUNK_SIZE)
    return inside_manifold(pool_t, real_t, radii, DEFAULT_CHUNK_SIZE).numpy().astype(bool)
