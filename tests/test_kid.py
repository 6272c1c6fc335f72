"""metrics.kid: parity with torchmetrics' KernelInceptionDistance on the same features, SubsetKID against the
formula recomputed on each subset's rows, and unbiasedness (two samples of one law: mean KID 0)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from metrics.kid import SubsetKID, kid
from tests.test_metrics_reference import _Identity, _skip_unless


def load_torchmetrics_kid():
    import importlib

    return importlib.import_module("torchmetrics.image.kid").KernelInceptionDistance


def torchmetrics_kid(real: np.ndarray, fake: np.ndarray) -> float:
    """torchmetrics with one subset of every row (its subset average then is the plain unbiased estimate)."""
    metric_class = _skip_unless(load_torchmetrics_kid)
    metric = metric_class(feature=_Identity(real.shape[1]), subsets=1, subset_size=real.shape[0])
    metric.update(torch.from_numpy(real), real=True)
    metric.update(torch.from_numpy(fake), real=False)
    mean, _ = metric.compute()
    return float(mean)


@pytest.mark.parametrize("dim, shift", [(16, 0.3), (64, 0.0)], ids=["shifted", "same law"])
def test_kid_matches_torchmetrics(dim, shift):
    rng = np.random.default_rng(dim)
    real = np.abs(rng.normal(size=(150, dim)))  # non-negative, like pooled network activations
    fake = np.abs(rng.normal(size=(150, dim)) * 1.1 + shift)
    assert kid(fake, real) == pytest.approx(torchmetrics_kid(real, fake), rel=1e-9, abs=1e-12)


def test_subset_kid_equals_the_formula_on_each_subsets_rows():
    rng = np.random.default_rng(1)
    pool, real = rng.normal(size=(50, 8)) + 0.2, rng.normal(size=(70, 8))
    masks = np.zeros((3, 50), dtype=bool)
    for row, size in zip(masks, (10, 30, 50)):
        row[rng.choice(50, size, replace=False)] = True
    subsets = SubsetKID(pool, real)
    want = np.array([kid(pool[m], real) for m in masks])
    assert subsets(masks) == pytest.approx(want, rel=1e-9, abs=1e-12)
    # `relative` leaves out one constant (the real set's own term): differences are unchanged
    assert np.diff(subsets.relative(masks)) == pytest.approx(np.diff(want), rel=1e-9, abs=1e-12)


def test_kid_is_unbiased_for_two_samples_of_one_law():
    """E[KID] = MMD^2 = 0 for two samples of one law at any size: the mean over 300 draws lies within 4 standard
    errors of 0 (a biased V-statistic would sit near (E k(x,x) - E k(x,y)) (1/m + 1/n) > 0, far outside)."""
    rng = np.random.default_rng(2)
    values = np.array([kid(rng.normal(size=(12, 3)), rng.normal(size=(15, 3))) for _ in range(300)])
    assert abs(values.mean()) < 4 * values.std(ddof=1) / np.sqrt(values.size)
