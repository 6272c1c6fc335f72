"""metrics.density_coverage: against the authors' definition (clovaai/generative-evaluation-prdc `compute_prdc`,
re-written here with sklearn's pairwise distances), against explicit loops, and per subset of a pool."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import pairwise_distances

from metrics.density_coverage import SubsetDensityCoverage, density_coverage


def prdc_density_coverage(real: np.ndarray, fake: np.ndarray, nearest_k: int) -> tuple[float, float]:
    """prdc 0.2's compute_prdc, density and coverage lines (float64 Euclidean distances)."""
    real_distances = pairwise_distances(real, real, metric="euclidean")
    radii = np.partition(real_distances, nearest_k, axis=-1)[:, nearest_k]  # k-th neighbour, self at 0 included
    distance_real_fake = pairwise_distances(real, fake, metric="euclidean")
    density = (1.0 / float(nearest_k)) * (distance_real_fake < np.expand_dims(radii, axis=1)).sum(axis=0).mean()
    coverage = (distance_real_fake.min(axis=1) < radii).mean()
    return float(density), float(coverage)


def loop_density_coverage(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    """Naeem et al.'s Eq. 3 and 4 term by term."""
    radii = []
    for j, y in enumerate(real):
        others = sorted(float(np.linalg.norm(y - z)) for i, z in enumerate(real) if i != j)
        radii.append(others[k - 1])
    inside = [[float(np.linalg.norm(x - y)) < r for y, r in zip(real, radii)] for x in fake]
    density = sum(sum(row) for row in inside) / (k * len(fake))
    coverage = sum(any(row[j] for row in inside) for j in range(len(real))) / len(real)
    return density, coverage


@pytest.mark.parametrize("seed, k", [(0, 5), (1, 3), (2, 5)])
def test_density_coverage_match_the_prdc_definition(seed, k):
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(300, 10))
    fake = rng.normal(size=(200, 10)) * 1.3 + 0.3
    got = density_coverage(real, fake, k)
    density, coverage = prdc_density_coverage(real, fake, k)
    assert 0 < got.coverage < 1 and 0 < got.density  # a case where they can disagree
    assert got.density == pytest.approx(density, abs=1e-12)
    assert got.coverage == pytest.approx(coverage, abs=1e-12)


def test_density_coverage_match_explicit_loops():
    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(40, 3)), rng.normal(size=(25, 3)) + 0.5
    got = density_coverage(real, fake, 4)
    density, coverage = loop_density_coverage(real, fake, 4)
    assert (got.density, got.coverage) == pytest.approx((density, coverage), abs=1e-12)


def test_subsets_of_a_pool_match_the_definition_on_their_rows():
    rng = np.random.default_rng(4)
    real, pool = rng.normal(size=(120, 5)), rng.normal(size=(80, 5)) * 0.7
    subsets = SubsetDensityCoverage(pool, real, k=5)
    masks = np.zeros((3, 80), dtype=bool)
    for row, size in zip(masks, (20, 55, 80)):
        row[rng.choice(80, size, replace=False)] = True
    want = [prdc_density_coverage(real, pool[m], 5) for m in masks]
    assert subsets.density(masks) == pytest.approx([w[0] for w in want], abs=1e-12)
    assert subsets.coverage(masks) == pytest.approx([w[1] for w in want], abs=1e-12)
