"""metrics.class_balance: class composition of a filter's removals and class-matched random subsets, against
scipy and brute-force counts; and the filtered_fid rows that use them."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chi2_contingency

from metrics.class_balance import class_matched_subsets, keep_lowest_stratified, removal_class_test, stratified_quotas


def test_a_filter_that_removes_one_class_is_flagged_and_a_random_one_is_not():
    labels = np.repeat(np.arange(5), 40)  # 200 samples, 40 per class
    kept = np.ones(200, dtype=bool)
    kept[labels == 3] = False  # removes class 3 only
    result = removal_class_test(labels, kept)
    assert result.tvd == pytest.approx(0.5 * (0.2 + 4 * abs(0.25 - 0.2)))  # kept: 4 classes of 0.25, none of class 3
    assert result.top == (3, 1.0) and result.p_value < 1e-20
    rng = np.random.default_rng(0)
    random_kept = np.ones(200, dtype=bool)
    random_kept[rng.choice(200, 40, replace=False)] = False
    counts = np.array([[np.sum(random_kept & (labels == c)) for c in range(5)],
                       [np.sum(~random_kept & (labels == c)) for c in range(5)]])
    assert removal_class_test(labels, random_kept).p_value == pytest.approx(
        chi2_contingency(counts, correction=False).pvalue, rel=1e-12)


def test_class_matched_subsets_keep_every_class_count_and_are_uniform_within_classes():
    labels = np.repeat(np.arange(3), [10, 20, 30])
    kept = np.zeros(60, dtype=bool)
    kept[[0, 1, 2, 10, 11, 40, 41, 42, 43, 44]] = True  # 3, 2, 5 per class
    masks = class_matched_subsets(labels, kept, seed=1, count=2000)
    for c, want in zip(range(3), (3, 2, 5)):
        assert (masks[:, labels == c].sum(axis=1) == want).all()
    # uniform within a class: each member of class 2 is drawn with probability 5/30
    share = masks[:, labels == 2].mean(axis=0)
    assert np.allclose(share, 5 / 30, atol=0.03)
    assert np.array_equal(masks[:5], class_matched_subsets(labels, kept, seed=1, count=5))


def test_stratified_filter_keeps_each_class_share_and_its_lowest_scores():
    labels = np.repeat(np.arange(3), [50, 30, 20])
    quotas = stratified_quotas(labels, 83)  # exact 41.5, 24.9, 16.6: floors 41 + 24 + 16 = 81, 2 left
    assert sum(quotas.values()) == 83 and quotas == {0: 41, 1: 25, 2: 17}  # largest remainders .9, .6: classes 1, 2
    rng = np.random.default_rng(0)
    scores = rng.normal(size=100)
    scores[labels == 2] += 5  # class 2 scores high: a plain filter would drop it first
    mask = keep_lowest_stratified(scores, labels, 83)
    assert {c: int(mask[labels == c].sum()) for c in range(3)} == quotas
    for c in range(3):  # within a class, every kept score is below every dropped one
        kept, dropped = scores[(labels == c) & mask], scores[(labels == c) & ~mask]
        assert dropped.size == 0 or kept.max() <= dropped.min()
