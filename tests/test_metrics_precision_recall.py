"""Improved precision / recall against a brute-force O(n^2) float64 loop over the definition."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.errors import ConfigError, NonFiniteError
from metrics import precision_recall
from metrics.precision_recall import knn_squared_radii


def brute_force_precision_recall(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    """Kynkäänniemi et al. 2019 written out: k-th NN radius with the point itself excluded, then membership."""

    def radii(points):
        out = []
        for i in range(len(points)):
            others = sorted(float(np.linalg.norm(points[i] - points[j])) for j in range(len(points)) if j != i)
            out.append(others[k - 1])
        return out

    def fraction_inside(queries, centres):
        centre_radii = radii(centres)
        inside = [any(np.linalg.norm(q - c) <= r for c, r in zip(centres, centre_radii)) for q in queries]
        return sum(inside) / len(queries)

    return fraction_inside(fake, real), fraction_inside(real, fake)


@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_brute_force(k, seed):
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(60, 5))
    fake = rng.normal(size=(45, 5)) * 0.8 + 0.8
    precision, recall = brute_force_precision_recall(real, fake, k)
    result = precision_recall(real, fake, k=k, chunk_size=16)
    assert 0 < precision < 1 and 0 < recall < 1
    assert result.precision == pytest.approx(precision, abs=1e-12)
    assert result.recall == pytest.approx(recall, abs=1e-12)
    assert result.f1 == pytest.approx(2 * precision * recall / (precision + recall), rel=1e-12)


def test_duplicates_count_as_neighbours_but_not_the_point_itself():
    rng = np.random.default_rng(4)
    real = rng.normal(size=(30, 3))
    real = np.concatenate([real, real[:10]])  # 10 exact duplicates
    fake = rng.normal(size=(25, 3)) + 0.3
    precision, recall = brute_force_precision_recall(real, fake, 3)
    result = precision_recall(real, fake, k=3, chunk_size=7)
    assert (result.precision, result.recall) == pytest.approx((precision, recall), abs=1e-12)


def test_chunk_size_does_not_change_the_result():
    rng = np.random.default_rng(5)
    real, fake = rng.normal(size=(130, 16)), rng.normal(size=(90, 16)) + 0.2
    results = {precision_recall(real, fake, chunk_size=size) for size in (1, 13, 64, 10_000)}
    assert len(results) == 1


def test_radii_equal_sorted_distances():
    rng = np.random.default_rng(6)
    points = rng.normal(size=(50, 8))
    distances = np.linalg.norm(points[:, None] - points[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    expected = np.sort(distances, axis=1)[:, 2] ** 2
    radii = knn_squared_radii(torch.from_numpy(points).float(), k=3, chunk_size=9).double().numpy()
    np.testing.assert_allclose(radii, expected, rtol=1e-4)


def test_extremes_and_inputs():
    rng = np.random.default_rng(7)
    real = rng.normal(size=(40, 4))
    same = precision_recall(torch.from_numpy(real), real)
    assert (same.precision, same.recall, same.f1) == (1.0, 1.0, 1.0)
    far = precision_recall(real, real + 1000.0)
    assert (far.precision, far.recall, far.f1) == (0.0, 0.0, 0.0)


def test_bad_inputs_are_named():
    rng = np.random.default_rng(8)
    real = rng.normal(size=(4, 3))
    with pytest.raises(ConfigError, match="k = 4"):
        precision_recall(real, real, k=4)
    with pytest.raises(ConfigError, match="dimension"):
        precision_recall(real, rng.normal(size=(4, 2)))
    with pytest.raises(ConfigError, match="chunk_size"):
        precision_recall(real, real, chunk_size=0)
    with pytest.raises(NonFiniteError):
        precision_recall(real, np.full((4, 3), np.nan))


def test_the_real_sets_radii_are_computed_once_per_set_and_are_the_same_bits(monkeypatch):
    import importlib

    pr = importlib.import_module("metrics.precision_recall")  # (the package's `precision_recall` is the function)

    rng = np.random.default_rng(3)
    real = torch.from_numpy(rng.standard_normal((300, 8)).astype(np.float32))
    expected = pr.knn_squared_radii(real, 3, 64)
    calls = []
    real_knn = pr.knn_squared_radii
    monkeypatch.setattr(pr, "knn_squared_radii", lambda *a: calls.append(1) or real_knn(*a))
    first = pr.fixed_set_radii(real, 3, 64)
    again = pr.fixed_set_radii(real.clone(), 3, 64)  # same content, another tensor
    assert torch.equal(first, expected) and torch.equal(again, expected) and len(calls) == 1
    other = real.clone()
    other[0, 0] += 1.0
    assert not torch.equal(pr.fixed_set_radii(other, 3, 64), expected) and len(calls) == 2
    pr.fixed_set_radii(real, 4, 64)  # another k is another manifold
    assert len(calls) == 3
