"""The trivial `local_variance` baseline: its map against a brute-force 3x3 variance, and its place in the suite."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from estimators import create
from estimators.local_variance import local_variance


def test_local_variance_matches_a_brute_force_window_loop():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(2, 1, 5, 6))
    got = local_variance(torch.from_numpy(images), 3).numpy()
    for b in range(2):
        for i in range(5):
            for j in range(6):
                window = images[b, 0, max(0, i - 1):i + 2, max(0, j - 1):j + 2]
                assert got[b, 0, i, j] == pytest.approx(window.var(), abs=1e-12)  # population variance, no padding


def test_it_is_a_never_ranked_comparison_baseline_with_a_checked_size():
    from benchmark.errors import ConfigError

    estimator = create("local_variance")
    assert estimator.reference_row and estimator.comparison_baseline and not estimator.uses_network
    with pytest.raises(ConfigError, match="size"):
        create("local_variance", size=4)
