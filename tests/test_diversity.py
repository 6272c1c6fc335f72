"""metrics.diversity: Vendi score and mean pairwise distance against closed forms and scipy."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import pdist

from benchmark.errors import ConfigError
from metrics.diversity import mean_pairwise_distance, vendi_score


def test_vendi_of_identical_and_orthogonal_sets():
    assert vendi_score(np.tile([[1.0, 2.0, 3.0]], (5, 1))) == pytest.approx(1.0, abs=1e-9)
    assert vendi_score(np.eye(6) * 3.0) == pytest.approx(6.0, abs=1e-9)  # scale does not matter (cosine)


def test_vendi_of_two_orthogonal_clusters_is_the_exponential_entropy_of_their_weights():
    """a copies of e1 and b copies of e2: K / n has eigenvalues a/n and b/n, VS = exp(H(a/n, b/n))."""
    a, b = 3, 5
    feats = np.vstack([np.tile([1.0, 0.0], (a, 1)), np.tile([0.0, 2.0], (b, 1))])
    p = np.array([a, b]) / (a + b)
    assert vendi_score(feats) == pytest.approx(math.exp(-(p * np.log(p)).sum()), rel=1e-9)


def test_mean_pairwise_distance_matches_scipy():
    feats = np.random.default_rng(0).normal(size=(9, 4))
    assert mean_pairwise_distance(feats) == pytest.approx(pdist(feats).mean(), rel=1e-9)


def test_a_single_row_is_refused():
    with pytest.raises(ConfigError, match="n >= 2"):
        vendi_score(np.ones((1, 3)))
