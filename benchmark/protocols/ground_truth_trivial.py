"""Ground-truth usefulness against the trivial baselines: does a score find low-density or between-mode samples
better than a 0-NFE statistic of the sample does?

On the mixture, ||x0 - data mean||^2 (`distance_to_mean`) already reaches Spearman 0.78 with -log p(x0) and AUROC
0.997 for the lowest-density 10 %, so "rho > 0" or "AUROC > 0.5" says little. For every usefulness statistic
(Spearman with -log p, each AUROC), the rows `<statistic>_delta_vs_trivial` give the estimator's value minus the best
trivial baseline's on the same samples (the trivial baseline with the highest value of that statistic), with a paired
bootstrap over samples (metrics.significance.paired_bootstrap_difference): these are the protocol's verdicts where
trivial baselines are configured (benchmark.report.verdicts).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from benchmark.protocols.table import MetricRow, row_from_ci
from metrics.significance import paired_bootstrap_difference

SUFFIX = "_delta_vs_trivial"
#: metric -> (statistic(score, target), target array)
Statistics = dict[str, tuple[Callable[[np.ndarray, np.ndarray], float], np.ndarray]]


def trivial_rows(protocol: str, scores: dict[str, np.ndarray], statistics: Statistics, trivial: list[str],
                 n_boot: int, seed: int) -> list[MetricRow]:
    """`<metric>_delta_vs_trivial` for every non-trivial score and every statistic (module doc)."""
    rows = []
    if not trivial:
        return rows
    for metric, (statistic, target) in statistics.items():
        values = {b: statistic(scores[b], target) for b in trivial}
        finite = [b for b in trivial if np.isfinite(values[b])]
        if not finite:
            continue
        best = max(finite, key=lambda b: values[b])
        for name in (n for n in scores if n not in trivial):
            ci = paired_bootstrap_difference(statistic, scores[name], scores[best], target, n_boot=n_boot, seed=seed)
            if np.isfinite(ci.value):
                rows.append(row_from_ci(protocol, name, metric + SUFFIX, ci, len(target), seed))
    return rows
