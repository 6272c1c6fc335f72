"""Agreement with the gold standard: each epistemic estimator against the run's ensemble, on the same samples.

The gold standard is every configured estimator whose class says `gold_standard = True` (estimators.ensemble); the
compared ones are the other configured estimators of kind "epistemic" that are not reference rows (bayesdiff,
mc_dropout, subset_laplace, ...). The protocol names no estimator: it reads the classes. Rows, per pair:
    ensemble_agreement / <estimator> / score_spearman_vs_<gold>   Spearman's rho of the N sample scores
    ensemble_agreement / <estimator> / map_spearman_vs_<gold>     mean over samples of rho over each map's pixels
(metrics.rank_agreement), each with a percentile bootstrap interval over samples (run.bootstrap replicates). These
are reference numbers (how far an estimator is from the ensemble), not tests: no p-value, never ranked.
"""
from __future__ import annotations

import numpy as np

from benchmark.protocols.base import ProtocolInputs
from benchmark.protocols.table import MetricRow, row_from_ci
from metrics.bootstrap import bootstrap_ci
from metrics.rank_agreement import per_item_spearman, spearman

NAME = "ensemble_agreement"
VERSION = 1


def features_read(params: dict, config) -> set[tuple[str, str]]:
    """(space, split) pairs of the run's features this protocol reads: none (scores and maps only)."""
    return set()


def pairs(config) -> list[tuple[str, str]]:
    """(estimator, gold standard) instance names of the run, from the estimator classes (module docstring)."""
    import estimators

    classes = {spec.name: estimators.get_class(spec.type) for spec in config.estimators}
    gold = [name for name, cls in classes.items() if getattr(cls, "gold_standard", False)]
    compared = [name for name, cls in classes.items() if getattr(cls, "kind", "") == "epistemic" and name not in gold
                and not getattr(cls, "reference_row", False)]
    return [(name, reference) for reference in gold for name in compared]


def agreement_rows(name: str, reference: str, scores: dict, pixels: dict, n_boot: int, seed: int) -> list[MetricRow]:
    """The two rows of one pair (module docstring) from [N] scores and [N,C,H,W] maps."""
    a, b = np.asarray(scores[name], dtype=np.float64), np.asarray(scores[reference], dtype=np.float64)
    per_map = per_item_spearman(np.asarray(pixels[name]), np.asarray(pixels[reference]))
    n = len(a)
    score_ci = bootstrap_ci(spearman, a, b, n_boot=n_boot, seed=seed)
    valid = per_map[np.isfinite(per_map)]
    rows = [row_from_ci(NAME, name, f"score_spearman_vs_{reference}", score_ci, n, seed)]
    if len(valid):
        map_ci = bootstrap_ci(lambda v: float(np.mean(v)), valid, n_boot=n_boot, seed=seed)
        rows.append(row_from_ci(NAME, name, f"map_spearman_vs_{reference}", map_ci, len(valid), seed))
    return rows


def run(inputs: ProtocolInputs, params: dict) -> list[MetricRow]:
    gen, config = inputs.generation, inputs.config
    rows: list[MetricRow] = []
    for name, reference in pairs(config):
        scores = {k: gen.scores[k].cpu().numpy() for k in (name, reference)}
        pixels = {k: gen.pixels[k].cpu().numpy() for k in (name, reference)}
        rows += agreement_rows(name, reference, scores, pixels, int(config.bootstrap), config.seed)
    return rows


__all__ = ["NAME", "VERSION", "agreement_rows", "pairs", "run"]
