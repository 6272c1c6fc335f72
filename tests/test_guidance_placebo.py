"""Issue 24: a placebo for uncertainty-guided sampling (estimators.guidance.PlaceboGuidance, protocols.guided).

The placebo is Alg. 2 with the mask moved to a uniformly random set of the same size in each image. Checked against
numbers the code does not produce:
- the per-image mask size, U_t and g are the guided step's, and eps_hat moves exactly the placebo's pixels by
  lambda * g;
- the placebo mask is a uniformly random k-subset: the mean of U_t over it is the mean of U_t over the image in
  expectation, with the finite-population variance sigma^2 / k * (P - k) / (P - 1) (sampling without replacement),
  and each pixel is in it with probability k / P;
- with a planted U_t that carries no information (i.i.d. noise), guided and placebo passes are exchangeable: the
  paired difference of their per-sample displacement |x0 - x0_plain| is 0 in expectation; with the real U_t the
  guided pass moves the images more (its mask sits where g is large), which the placebo comparison detects;
- the placebo pass costs the guided pass's NFEs, and the protocol reports guided - placebo with a p-value.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from benchmark.execution.generation import generate, load_generation
from benchmark.models import GaussianMixtureModel
from benchmark.protocols import guided
from benchmark.sampling import initial_noise, sample
from estimators.guidance import (
    GuidanceStep,
    PlaceboGuidance,
    UncertaintyGuidance,
    percentile_mask,
    uncertainty_and_gradient,
)
from metrics.frechet import feature_statistics
from tests.helpers import tiny_gmm_means
from tests.test_guidance import gaussian_state, step_context


def finite_population_z(u: torch.Tensor, mask: torch.Tensor) -> float:
    """z of sum_b (mean of U_b over mask_b - mean of U_b) under "mask_b is a uniformly random |mask_b|-subset"."""
    u, mask = u.flatten(1).double(), mask.flatten(1)
    k, p = mask.sum(1).double(), u.shape[1]
    diff = (u * mask).sum(1) / k - u.mean(1)
    variance = u.var(1, unbiased=False) / k * (p - k) / (p - 1)
    return float(diff.sum() / variance.sum().sqrt())


@pytest.mark.parametrize("thresholds", ["per_image", "fixed"])
def test_the_placebo_step_keeps_u_g_and_the_number_of_guided_pixels(thresholds):
    model, x_t, _, _, _ = gaussian_state((1, 10, 10), t=80, batch=4)
    ctx = step_context(model, x_t)
    base = UncertaintyGuidance(percentile=90.0, strength=2.0, center="prediction")
    if thresholds == "fixed":  # Alg. 2's step-wise tau: the count varies between images
        tau = float(np.percentile(base.step(ctx).uncertainty.numpy(), 80.0))
        base = UncertaintyGuidance(strength=2.0, center="prediction", thresholds={ctx.t: tau})
    placebo = PlaceboGuidance(base)
    real, fake = base.step(ctx), placebo.step(ctx)
    torch.testing.assert_close(fake.uncertainty, real.uncertainty, rtol=0, atol=0)
    torch.testing.assert_close(fake.gradient, real.gradient, rtol=0, atol=0)
    counts = real.mask.flatten(1).sum(1)
    assert torch.equal(fake.mask.flatten(1).sum(1), counts) and counts.min() > 0
    if thresholds == "per_image":
        assert counts.tolist() == [10] * 4
    else:
        assert len(set(counts.tolist())) > 1
    assert not torch.equal(fake.mask, real.mask)
    eps_hat = placebo.guide(ctx)
    assert torch.equal(eps_hat != ctx.eps, fake.mask)
    torch.testing.assert_close((eps_hat - ctx.eps)[fake.mask], 2.0 * fake.gradient[fake.mask])


def test_the_placebo_mask_is_a_uniformly_random_subset_of_the_same_size():
    """600 images of 36 pixels, k = 9 guided: the mean U over the placebo mask matches the image mean (|z| < 4 with
    the sampling-without-replacement variance); every pixel is chosen with probability k / P = 1/4."""
    model, x_t, _, _, _ = gaussian_state((1, 6, 6), t=80, batch=600)
    ctx = step_context(model, x_t)
    base = UncertaintyGuidance(percentile=75.0, center="prediction")
    real, fake = base.step(ctx), PlaceboGuidance(base).step(ctx)
    assert fake.mask.flatten(1).sum(1).tolist() == [9] * 600
    assert abs(finite_population_z(fake.uncertainty, fake.mask)) < 4.0
    assert finite_population_z(real.uncertainty, real.mask) > 20.0  # the real mask holds the top 25 %
    chosen = fake.mask.flatten(1).double().sum(0)  # [36] per-pixel counts, Binomial(600, 1/4) each
    assert ((chosen - 150.0).abs() / math.sqrt(600 * 0.25 * 0.75)).max() < 4.5


@pytest.fixture
def mixture():
    return GaussianMixtureModel(tiny_gmm_means(3, (1, 4, 4)), std=0.2)


def test_the_placebo_pass_costs_the_guided_nfes_and_is_seeded_per_sample(mixture):
    guidance = UncertaintyGuidance(m=3, strength=1.0, center="prediction", window=(30, 49))
    placebo = PlaceboGuidance(guidance)
    x_T = initial_noise(6, range(4), mixture.sample_shape)

    def run(g, rows: list[int]):
        return sample(mixture, x_T[rows], steps=20, seed=6, indices=rows, guidance=g)

    plain, on, off = run(None, [0, 1, 2, 3]), run(guidance, [0, 1, 2, 3]), run(placebo, [0, 1, 2, 3])
    assert off.guidance_nfe == on.guidance_nfe == 3 * 7 and off.nfe == on.nfe == plain.nfe
    assert (off.x0 - plain.x0).abs().max() > 1e-4 and (off.x0 - on.x0).abs().max() > 1e-4
    halves = torch.cat([run(placebo, [0, 1]).x0, run(placebo, [2, 3]).x0])
    torch.testing.assert_close(halves, off.x0, rtol=1e-6, atol=1e-7)  # per sample, whatever the batch
    assert torch.equal(run(placebo, [0, 1, 2, 3]).x0, off.x0)  # the same bits from the same seed


class PlantedGuidance(UncertaintyGuidance):
    """Alg. 2 whose mask comes from i.i.d. noise instead of U_t (a map that carries no information)."""

    def step(self, ctx) -> GuidanceStep:
        noise = ctx.randn("planted-map").abs()
        u, grad = uncertainty_and_gradient(ctx.model, ctx.x_t, ctx.eps, ctx.t, ctx.ab_t, self.noise(ctx),
                                           center=self.center, clip_x0=self.clip_x0, y=ctx.y)
        return GuidanceStep(uncertainty=u, mask=percentile_mask(noise, self.percentile), gradient=grad)


def displacement_z(model, guidance, n: int = 1000) -> float:
    """z of the mean paired difference over n samples of |x0_guided - x0_plain| - |x0_placebo - x0_plain|
    (per-sample means over pixels)."""
    x_T = initial_noise(2, range(n), model.sample_shape)
    kwargs = dict(steps=20, seed=2, indices=list(range(n)))
    plain = sample(model, x_T, **kwargs).x0
    moved = {name: (sample(model, x_T, guidance=g, **kwargs).x0 - plain).abs().flatten(1).mean(1)
             for name, g in (("guided", guidance), ("placebo", PlaceboGuidance(guidance)))}
    diff = (moved["guided"] - moved["placebo"]).double()
    return float(diff.mean() / (diff.std() / math.sqrt(n)))


def test_an_uninformative_map_has_the_placebo_effect_and_the_real_map_does_not(mixture):
    options = dict(m=3, percentile=75.0, strength=1.0, center="prediction", window=(30, 49))
    assert abs(displacement_z(mixture, PlantedGuidance(**options))) < 4.0
    assert displacement_z(mixture, UncertaintyGuidance(**options)) > 5.0  # measured 7.3 (planted: -0.3)


def test_the_protocol_reports_guided_minus_placebo_with_a_p_value(mixture, tmp_path):
    params = {"m": 2, "percentile": 90.0, "strength": 1.0, "window": [30, 49], "center": "prediction",
              "thresholds": "per_image", "num_samples": 8}
    config = SimpleNamespace(num_samples=10, seed=3, sampler="ddim", steps=20, batch_size=4, bootstrap=100)
    generate(mixture, run_dir=tmp_path, num_samples=10, batch_size=4, seed=3, sampler="ddim", steps=20,
             make_estimators=list, progress=False, keep_state_at=guided.window_start(params["window"], 20))
    gen = load_generation(tmp_path, 10, 4)
    rng = np.random.default_rng(0)
    features = lambda images: images.flatten(1).double().numpy()  # noqa: E731 - pixels as features (16-d)
    inputs = SimpleNamespace(config=config, model=mixture, run_dir=tmp_path, generation=gen, progress=False,
                             fake_features={"pixels": features(gen.x0)}, artifacts={},
                             reference_stats={"pixels": feature_statistics(rng.normal(0, 0.5, size=(200, 16)))},
                             extract=lambda space, images: features(images))
    rows = {(r.estimator, r.metric): r for r in guided.run(inputs, params)}
    verdict = rows[("guided", "delta_vs_placebo[pixels]")]
    assert 0.0 <= verdict.p_value <= 1.0 and verdict.ci_low <= verdict.value <= verdict.ci_high
    assert ("guided", "delta_vs_plain[pixels]") in rows and ("(placebo)", "fid[pixels]") in rows
    placebo = load_generation(tmp_path, 8, 4, tag=guided.PLACEBO_TAG)
    made = load_generation(tmp_path, 8, 4, tag="guided")
    assert placebo.nfe == made.nfe  # sampler and guidance NFEs per sample
    for metric in ("extra_nfe_per_sample", "nfe_ratio"):
        assert rows[("(placebo)", metric)].value == rows[("guided", metric)].value
    assert rows[("(placebo)", "mean_abs_change_x0")].value > 0
    fid = guided.fid_ci
    expected = fid(features(made.x0), inputs.reference_stats["pixels"], 100, 3).value - fid(
        features(placebo.x0), inputs.reference_stats["pixels"], 100, 3).value
    assert verdict.value == pytest.approx(expected, rel=1e-9, abs=1e-12)  # FID(guided) - FID(placebo), same rows
