"""The trivial 0-NFE baselines `gradient_magnitude` and `distance_to_mean` (and `local_variance`, tests/
test_local_variance.py): maps against scipy.ndimage.sobel and a numpy brute force, through the sampling engine on
the sampler's final x0, the training mean against the mixture's analytic mean, and their place in the suite."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

import estimators
from estimators import create
from estimators.gradient_magnitude import sobel_magnitude
from estimators.x0_trajectory import predicted_x0

TRIVIAL = ("local_variance", "gradient_magnitude", "distance_to_mean")


def test_sobel_magnitude_matches_scipy_per_channel():
    images = np.random.default_rng(0).normal(size=(2, 3, 7, 9))
    got = sobel_magnitude(torch.from_numpy(images)).numpy()
    for b in range(2):
        for c in range(3):
            plane = images[b, c]  # scipy's default mode "reflect" repeats the edge pixel for a 3x3 kernel
            expected = np.hypot(ndimage.sobel(plane, axis=0), ndimage.sobel(plane, axis=1))
            np.testing.assert_allclose(got[b, c], expected, rtol=1e-12, atol=1e-12)


def test_distance_to_mean_matches_a_brute_force_loop():
    rng = np.random.default_rng(1)
    x0, mean = rng.normal(size=(3, 2, 4, 5)), rng.normal(size=(2, 4, 5))
    estimator = create("distance_to_mean", mean=torch.from_numpy(mean))
    pixel = estimator.pixel_map(torch.from_numpy(x0)).numpy()
    for b in range(3):
        for index in np.ndindex(2, 4, 5):
            assert pixel[(b, *index)] == pytest.approx((x0[(b, *index)] - mean[index]) ** 2, abs=1e-12)
        assert pixel[b].sum() == pytest.approx(float(np.sum((x0[b] - mean) ** 2)), rel=1e-12)


def test_the_maps_read_the_samplers_final_x0_with_no_network_call(gmm):
    """Through the sampling engine: each map is its statistic of the last step's x0_hat, the score its sum, 0 NFE."""
    from benchmark.sampling import sample

    x_T = torch.randn(4, 1, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mean = torch.full((1, 4, 4), 0.1, dtype=torch.float64)
    seen = {}

    class LastStep(estimators.UncertaintyEstimator):  # records the final x0_hat the baselines should read
        uses_network = False

        def observe(self, step):
            seen["x0"] = predicted_x0(step.x_t, step.eps, step.ab_t)

        def result(self):
            return estimators.EstimatorResult(pixel=seen["x0"], score=seen["x0"].flatten(1).sum(1))

    recorder = LastStep()
    recorder.name = "last_step"
    made = [create("gradient_magnitude"), create("distance_to_mean", mean=mean), recorder]
    out = sample(gmm, x_T, sampler="ddim", steps=10, estimators=made)
    x0 = seen["x0"]
    expected = {"gradient_magnitude": sobel_magnitude(x0), "distance_to_mean": (x0 - mean) ** 2}
    for name, pixel in expected.items():
        result = out.uncertainty[name]
        torch.testing.assert_close(result.pixel, pixel)
        torch.testing.assert_close(result.score, pixel.flatten(1).sum(1))
        assert result.nfe == 0


def test_the_runs_data_mean_is_the_training_mean_near_the_mixtures_analytic_mean():
    """The `gmm` preset's training images are exact mixture draws: their mean (what `distance_to_mean` receives)
    lies within 5 standard errors of the analytic mean (1/10) sum_k mu_k in every coordinate."""
    from benchmark import presets
    from benchmark.data.gmm import GMM_STD, digit_prototypes
    from benchmark.runner.resources import training_mean
    from estimators.requirements import DATA_MEAN_IMAGES

    prototypes = digit_prototypes().to(torch.float64)
    analytic = prototypes.mean(0)
    spread = (GMM_STD ** 2 + prototypes.var(0, unbiased=False)).sqrt()  # per-coordinate sd of the mixture
    got = training_mean(presets.get("gmm"), model=None).to(torch.float64)
    assert got.shape == analytic.shape
    assert bool(((got - analytic).abs() <= 5 * spread / math.sqrt(DATA_MEAN_IMAGES)).all())


def test_they_are_never_ranked_trivial_baselines_and_listed():
    from benchmark.cli.listing import estimators_text
    from estimators.requirements import config_keys, requirements_of

    for name in estimators.available():
        cls = estimators.get_class(name)
        trivial = name in TRIVIAL
        assert cls.trivial_baseline is trivial, name
        if trivial:
            assert cls.reference_row and cls.comparison_baseline and not cls.uses_network and cls.nfe_formula == "0"
            assert cls.kind == "heuristic"
    listing = estimators_text()
    for name in TRIVIAL:
        assert f"[estimators.{name}]" in listing
    cls = estimators.get_class("distance_to_mean")
    assert requirements_of(cls).real_images and "mean" not in config_keys(cls, estimators.parameters("distance_to_mean"))
