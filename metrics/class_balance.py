"""Does a filter remove samples, or remove a class? Class composition of a kept set and class-matched baselines.

A score that is larger for some classes (e.g. a flip-symmetry score on non-symmetric footwear) removes those classes
first. Its kept set is then class-imbalanced, and FID (which punishes a missing class as much as bad samples)
moves for a reason that has nothing to do with sample quality. Two measurements separate the two:

- `removal_class_test`: total variation distance between the class histogram of the kept samples and of all,
  TVD = 1/2 sum_c |k_c / K - n_c / N|, with the chi-square test of independence of (kept, removed) x class
  (scipy.stats.chi2_contingency; H0: removal does not depend on the class).
- `keep_lowest_stratified`: the filter with the class composition held fixed: within each class keep its lowest
  scores, class c keeping its share of K in proportion to its size (quotas K n_c / N rounded by largest
  remainder). Its FID against random K-subsets is the filter's effect "within classes".
- `class_matched_subsets`: random K-subsets with exactly a given set's count in every class (drawn uniformly
  within each class), for tests that need that null.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import chi2_contingency

CLASS_MATCHED_STREAM = 0x434C4153  # "CLAS"


@dataclass
class RemovalClassTest:
    """tvd: total variation distance of the kept samples' class histogram from all samples'; p_value: chi-square test
    of independence (NaN when only one class is present); top: (class, share of the removed) of the most removed."""

    tvd: float
    p_value: float
    top: tuple[int, float]


def removal_class_test(labels: np.ndarray, kept: np.ndarray) -> RemovalClassTest:
    """labels [N] int, kept [N] bool (the removed samples are ~kept)."""
    labels, kept = np.asarray(labels).astype(np.int64), np.asarray(kept, dtype=bool)
    classes = np.unique(labels)
    removed_counts = np.array([np.sum(~kept & (labels == c)) for c in classes], dtype=np.float64)
    kept_counts = np.array([np.sum(kept & (labels == c)) for c in classes], dtype=np.float64)
    pool = (removed_counts + kept_counts) / labels.size
    removed_share = removed_counts / max(removed_counts.sum(), 1.0)
    tvd = 0.5 * float(np.abs(kept_counts / max(kept_counts.sum(), 1.0) - pool).sum())
    top = int(np.argmax(removed_share))
    if classes.size < 2 or removed_counts.sum() == 0:
        return RemovalClassTest(tvd, float("nan"), (int(classes[top]), float(removed_share[top])))
    p = float(chi2_contingency(np.stack([kept_counts, removed_counts]), correction=False).pvalue)
    return RemovalClassTest(tvd, p, (int(classes[top]), float(removed_share[top])))


def class_matched_subsets(labels: np.ndarray, kept: np.ndarray, seed: int, count: int) -> np.ndarray:
    """Boolean masks [count, N], each with exactly the kept set's number of samples of every class, drawn uniformly
    without replacement within each class from one generator seeded by (seed, its own stream)."""
    labels, kept = np.asarray(labels).astype(np.int64), np.asarray(kept, dtype=bool)
    rng = np.random.default_rng([int(seed), CLASS_MATCHED_STREAM])
    members = {int(c): np.flatnonzero(labels == c) for c in np.unique(labels)}
    wanted = {c: int(np.sum(kept[rows])) for c, rows in members.items()}
    masks = np.zeros((int(count), labels.size), dtype=bool)
    for mask in masks:
        for c, rows in members.items():
            mask[rng.choice(rows, wanted[c], replace=False)] = True
    return masks


def stratified_quotas(labels: np.ndarray, keep: int) -> dict[int, int]:
    """Per class c, round(keep n_c / N) by largest remainder (the quotas sum to keep, each <= n_c)."""
    labels = np.asarray(labels).astype(np.int64)
    classes, sizes = np.unique(labels, return_counts=True)
    exact = keep * sizes / labels.size
    quotas = np.floor(exact).astype(np.int64)
    order = np.lexsort((classes, -(exact - quotas)))  # largest remainder first, ties by class
    quotas[order[: keep - int(quotas.sum())]] += 1
    return {int(c): int(min(q, n)) for c, q, n in zip(classes, quotas, sizes)}


def keep_lowest_stratified(scores: np.ndarray, labels: np.ndarray, keep: int) -> np.ndarray:
    """Boolean mask [N]: the lowest scores within each class, class c keeping stratified_quotas(labels, keep)[c]
    (ties by index, as metrics.filtered.keep_lowest)."""
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(np.int64)
    mask = np.zeros(scores.size, dtype=bool)
    for c, quota in stratified_quotas(labels, keep).items():
        rows = np.flatnonzero(labels == c)
        order = rows[np.lexsort((rows, scores[rows]))]
        mask[order[:quota]] = True
    return mask
