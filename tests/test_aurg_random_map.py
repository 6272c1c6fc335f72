"""AURG without the endpoint bias (issue 24 item 5): a random uncertainty map has expected AURG 0.

References, none produced by the code under test:
- simulation with a known answer: a continuous random map keeps a uniformly random set of pixels at every
  fraction, so over many random maps against one fixed error map the mean AURG is 0 (within its standard
  error). The mono-uncertainty AURG (constant random curve m(e), method curve forced to 0 at 100 %) is
  about m(e) / (2F) on the same maps, which this test also shows.
- brute force: on a 9-pixel image every kept set of every size is enumerated (itertools.combinations), which
  gives the exact E[sqrt(mean e^2 over S)] the rmse random curve estimates; for mae it is mean |e|.
- an oracle map (ranked by the true error) still has AUSE 0.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from metrics import sparsification
from metrics.sparsification import random_removal_curve

F = 50


def error_map(kind: str, pixels: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "gauss":
        return rng.normal(size=pixels)
    if kind == "heavy":
        return rng.standard_t(3, size=pixels)
    return rng.normal(size=pixels) * (rng.random(pixels) < 0.1)  # sparse: 90 % of the pixels exact


@pytest.mark.parametrize("metric", ["rmse", "mae"])
@pytest.mark.parametrize("kind", ["gauss", "sparse"])
def test_random_maps_have_mean_aurg_zero(metric, kind):
    pixels, maps = 256, 3000
    error = np.broadcast_to(error_map(kind, pixels), (maps, pixels)).copy()
    uncertainty = np.random.default_rng(1).random((maps, pixels))
    res = sparsification(error, uncertainty, fractions=F, metric=metric)
    method_area = np.trapezoid(res.method, x=res.removed, axis=1)

    def off_zero(aurg: np.ndarray) -> float:
        """|mean| in standard errors over the maps."""
        return abs(aurg.mean()) / (aurg.std(ddof=1) / math.sqrt(maps))

    assert off_zero(res.aurg_per_image) < 4, res.aurg_per_image.mean()
    if kind == "gauss":  # the mono-uncertainty definition fails the same check, biased by about m(e) / (2F)
        old = res.random - method_area
        assert off_zero(old) > 4 and old.mean() == pytest.approx(res.random[0] / (2 * F), rel=0.5)
    if kind == "sparse" and metric == "rmse":  # the endpoint alone is not enough: the Jensen gap of small sets
        endpoint_only = res.random * (1 - 1 / (2 * F)) - method_area
        assert off_zero(endpoint_only) > 4


def test_random_curve_is_the_brute_force_expectation_over_all_kept_sets():
    """9 pixels, F = 4: kept sizes n_i = 9 - ceil(8 i / 4) = 9, 7, 5, 3 (distinct values), then nothing."""
    error = torch.tensor([[0.1, -0.4, 0.0, 2.0, -0.3, 0.05, 0.7, 0.0, -1.2]], dtype=torch.float64)
    values = error[0].numpy()
    sizes = [9, 7, 5, 3]
    exact_rmse = [np.mean([math.sqrt(np.mean(values[list(s)] ** 2)) for s in itertools.combinations(range(9), n)])
                  for n in sizes] + [0.0]
    exact_mae = [float(np.mean(np.abs(values)))] * 4 + [0.0]
    torch.testing.assert_close(random_removal_curve(error, 4, "mae")[0], torch.tensor(exact_mae, dtype=torch.float64),
                               rtol=1e-12, atol=0)
    estimate = random_removal_curve(error, 4, "rmse", draws=20000)[0]
    torch.testing.assert_close(estimate, torch.tensor(exact_rmse, dtype=torch.float64), rtol=2e-3, atol=0)
    # the Jensen gap it estimates is real: the constant sqrt(mean e^2) is off by far more than the tolerance
    assert exact_rmse[3] < 0.9 * math.sqrt(np.mean(values**2))
    # unbiased at any number of draws: the mean over seeds of a 4-draw estimate converges to the same value
    small = torch.stack([random_removal_curve(error, 4, "rmse", draws=4, seed=s)[0] for s in range(400)])
    torch.testing.assert_close(small.mean(0), torch.tensor(exact_rmse, dtype=torch.float64), rtol=5e-3, atol=0)


def test_random_curve_depends_on_the_image_only():
    error = torch.from_numpy(np.stack([error_map("heavy", 100, s) for s in range(3)]))
    alone = random_removal_curve(error[2:], 10, "rmse")
    torch.testing.assert_close(random_removal_curve(error, 10, "rmse")[2:], alone, rtol=0, atol=0)


@pytest.mark.parametrize("metric", ["rmse", "mae"])
def test_oracle_map_keeps_ause_zero_and_beats_random(metric):
    error = np.stack([error_map("gauss", 144, s) for s in range(4)])
    res = sparsification(error, np.abs(error), fractions=F, metric=metric)
    assert res.ause == 0.0 and np.all(res.ause_per_image == 0.0)
    assert np.all(res.aurg_per_image > 0)
    assert res.random_curve.shape == (4, F + 1) and np.all(res.random_curve[:, -1] == 0.0)
