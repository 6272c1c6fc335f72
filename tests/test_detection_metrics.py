"""metrics.detection against sklearn's roc_auc_score / average_precision_score on the same inputs (continuous
scores, heavy ties, unbalanced labels), and the undefined case."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from metrics.detection import auroc, average_precision


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ties", [False, True])
def test_equal_to_sklearn(seed, ties):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 400))
    label = (rng.random(n) < rng.uniform(0.05, 0.7)).astype(int)
    label[0], label[1] = 1, 0  # both classes present
    score = rng.normal(size=n) + label * rng.uniform(0, 2)
    if ties:
        score = np.round(score * 2) / 2  # a handful of distinct values
    assert auroc(label, score) == pytest.approx(roc_auc_score(label, score), abs=1e-12)
    assert average_precision(label, score) == pytest.approx(average_precision_score(label, score), abs=1e-12)


def test_perfect_and_reversed_scores():
    label = np.array([0, 0, 1, 1])
    assert auroc(label, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert auroc(label, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert average_precision(label, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert average_precision(label, np.zeros(4)) == 0.5  # all tied: the prevalence


@pytest.mark.parametrize("label", [np.zeros(5, int), np.ones(5, int)])
def test_one_class_is_nan(label):
    assert np.isnan(auroc(label, np.arange(5.0))) and np.isnan(average_precision(label, np.arange(5.0)))
