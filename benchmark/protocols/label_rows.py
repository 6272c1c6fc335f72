"""Rows of a score judged on per-sample binary labels (1 = a bad sample: a hallucination, a failure).

Shared by the `hallucination` and `failure_labels` protocols. For every estimator's score s (higher = more
suspect) and labels y:
- `auroc_<label>`: P(s_bad > s_good) + 0.5 P(tie) (metrics.detection, equal to sklearn's roc_auc_score), stratified
  percentile bootstrap interval (positives and negatives resampled separately), Mann-Whitney p of AUROC = 0.5 (the floor:
  a score without information) and its detectable effect (benchmark.protocols.ground_truth.auroc_ci);
- `auprc_<label>`: average precision sum_n (R_n - R_{n-1}) P_n (metrics.detection, equal to sklearn's
  average_precision_score), same stratified interval; a score without information has expected AUPRC = the prevalence (reported beside it);
- `removed_at_retention_<r>_<label>`: the share of bad samples a threshold removes when it keeps the fraction r of
  the good ones (the paper's operating point r = 0.96): tau = the ceil(r n_good)-th smallest good score,
      removed(r) = #{bad: s > tau} / n_bad;
  a score without information removes 1 - r in expectation; same stratified interval;
- `<auroc|auprc>_<label>_delta_vs_trivial`: the statistic minus the best trivial baseline's on the same samples,
  paired bootstrap (benchmark.protocols.ground_truth_trivial): the verdicts where trivial baselines are present.
Every metric carries the label set's tag in brackets (`auroc_hallucination[ddpm_50]`).
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Callable

import numpy as np

from benchmark.protocols.ground_truth import auroc, auroc_ci
from benchmark.protocols.ground_truth_trivial import trivial_rows
from benchmark.protocols.table import MetricRow, row_from_ci
from metrics.bootstrap import ConfidenceInterval, percentile_interval
from metrics.detection import average_precision


def auprc(label: np.ndarray, score: np.ndarray) -> float:
    """Average precision of `score` for label 1 (NaN when one class is absent)."""
    return average_precision(label, score)


def removed_at_retention(label: np.ndarray, score: np.ndarray, retention: float) -> float:
    """Share of positives with a score above tau, the ceil(retention * n_neg)-th smallest negative score (module
    doc); NaN when a class is absent."""
    pos, neg = score[label == 1], np.sort(score[label != 1])
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    tau = neg[max(1, math.ceil(retention * neg.size - 1e-9)) - 1]
    return float(np.mean(pos > tau))


def stratified_ci(statistic: Callable[[np.ndarray, np.ndarray], float], label: np.ndarray, score: np.ndarray,
                  n_boot: int, seed: int) -> ConfidenceInterval:
    """statistic(label, score) with a percentile bootstrap that resamples positives and negatives separately."""
    value = statistic(label, score)
    if not np.isfinite(value):
        return ConfidenceInterval(value, math.nan, math.nan, 0, 0.05, "stratified percentile")
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(label == 1), np.flatnonzero(label != 1)
    replicates = [statistic(label[idx], score[idx]) for idx in
                  (np.concatenate([rng.choice(pos, pos.size), rng.choice(neg, neg.size)]) for _ in range(n_boot))]
    return percentile_interval(value, replicates, 0.05)


def label_rows(protocol: str, tag: str, name: str, scores: dict[str, np.ndarray], label: np.ndarray,
               trivial: list[str], retention: float, n_boot: int, seed: int) -> list[MetricRow]:
    """The rows of the module doc for label `name` on one set of samples (`tag` goes in brackets)."""
    rows: list[MetricRow] = []
    n = int(label.size)
    for estimator, score in scores.items():
        rows.append(row_from_ci(protocol, estimator, f"auroc_{name}[{tag}]", auroc_ci(label, score, n_boot, seed), n,
                                seed))
        rows.append(row_from_ci(protocol, estimator, f"auprc_{name}[{tag}]",
                                stratified_ci(auprc, label, score, n_boot, seed), n, seed))
        rows.append(row_from_ci(protocol, estimator, f"removed_at_retention_{retention:g}_{name}[{tag}]",
                                stratified_ci(lambda y, s: removed_at_retention(y, s, retention), label, score,
                                              n_boot, seed), n, seed))
    statistics = {f"auroc_{name}": (lambda s, y: auroc(y, s), label), f"auprc_{name}": (lambda s, y: auprc(y, s), label)}
    for row in trivial_rows(protocol, scores, statistics, [t for t in trivial if t in scores], n_boot, seed):
        rows.append(replace(row, metric=f"{row.metric}[{tag}]"))
    return rows
