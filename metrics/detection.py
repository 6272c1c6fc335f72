"""Detection statistics of a score for binary labels: AUROC and average precision, vectorised (no per-call input
validation: the protocols call them thousands of times inside bootstrap loops; sklearn's `roc_auc_score` and
`average_precision_score` spent ~1 ms per call in validation, tests/test_detection_metrics.py checks the values
against them).
"""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def auroc(label: np.ndarray, score: np.ndarray) -> float:
    """AUROC = P(s_pos > s_neg) + 1/2 P(s_pos = s_neg) (the Mann-Whitney form; sklearn's trapezoidal ROC area equals
    it with ties): (sum of the positives' average ranks - n1 (n1 + 1) / 2) / (n1 n0). NaN when a class is absent."""
    y = np.asarray(label) == 1
    n1 = int(y.sum())
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(np.asarray(score, dtype=np.float64))
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def average_precision(label: np.ndarray, score: np.ndarray) -> float:
    """AP = sum_n (R_n - R_{n-1}) P_n over the distinct score thresholds in decreasing order (tied scores enter
    together), P_n and R_n the precision and recall of {score >= threshold_n} (sklearn's definition, no
    interpolation). NaN when a class is absent."""
    y = (np.asarray(label) == 1).astype(np.float64)
    positives = y.sum()
    if positives == 0 or positives == y.size:
        return float("nan")
    s = np.asarray(score, dtype=np.float64)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # the last index of each run of tied scores
    true_pos = np.cumsum(y)[last]
    precision = true_pos / (last + 1.0)
    recall = true_pos / positives
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


__all__ = ["auroc", "average_precision"]
