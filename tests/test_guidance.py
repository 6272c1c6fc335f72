"""Uncertainty-guided sampling (Alg. 2): exact no-op at lambda = 0, masks, gradients against closed forms.

Closed-form gradient. For a single Gaussian (see tests/test_sensitivity.py) eps(x) = c (x - a mu). Treating
the prediction e as the free variable of Alg. 1, x^i = x_t - sig e + sig n_i and
    d_ij = eps(x^i)_j - e_j = c (x_t - a mu)_j - (1 + c sig) e_j + c sig n_ij.
center="prediction": U_j = 1/M sum_i d_ij^2 depends on e_j alone, so
    dU_total/de_j = dU_j/de_j = -2 (1 + c sig) / M * sum_i d_ij.
center="mean": d_ij - mean_i d_ij = c sig (n_ij - mean_i n_ij) does not depend on e, so the gradient is 0.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from benchmark.errors import ConfigError
from benchmark.models import GaussianMixtureModel
from benchmark.sampling import StepContext, build_grid, initial_noise, sample
from estimators.guidance import UncertaintyGuidance, uncertainty_and_gradient
from estimators.sensitivity import sensitivity_variance
from tests.helpers import tiny_gmm_means


def gaussian_state(shape: tuple[int, int, int], t: int, batch: int, seed: int = 0):
    """(model, x_t, a, sig, c): a K = 1 oracle and states x_t ~ q(x_t) at timestep t (float64)."""
    model = GaussianMixtureModel(tiny_gmm_means(1, shape, seed=seed), std=0.5)
    ab = float(model.alphas_cumprod[t])
    a, sig = math.sqrt(ab), math.sqrt(1 - ab)
    v = ab * 0.25 + sig**2
    gen = torch.Generator().manual_seed(seed)
    x_t = a * model.means + math.sqrt(v) * torch.randn((batch, *shape), generator=gen, dtype=torch.float64)
    return model, x_t, a, sig, sig / v


def step_context(model, x_t: torch.Tensor, index: int = 45, steps: int = 50, seed: int = 0) -> StepContext:
    """The StepContext the engine would build at DDIM step `index` for states x_t."""
    grid = build_grid("ddim", model.alphas_cumprod, steps)[index]
    eps = model.eps(x_t, grid.t)
    return StepContext(index, steps, "ddim", grid, x_t, eps, eps, model, None, torch.arange(x_t.shape[0]), seed)


def test_strength_zero_reproduces_unguided_sampling_exactly(unet_model, single_thread):
    """Guided steps 0..3: the untrained UNet's trajectory diverges later, where U_t and its gradient vanish."""
    x_T = initial_noise(2, range(3), unet_model.sample_shape)
    plain = sample(unet_model, x_T, steps=50, seed=2)
    off = sample(unet_model, x_T, steps=50, seed=2, guidance=UncertaintyGuidance(strength=0.0, window=(0, 4)),
                 estimators=["sensitivity"])
    assert torch.equal(plain.x0, off.x0)
    assert off.nfe == 50 and off.guidance_nfe == 20 and off.uncertainty["sensitivity"].nfe == 20
    assert off.guidance_seconds > 0
    on = sample(unet_model, x_T, steps=50, seed=2, guidance=UncertaintyGuidance(strength=1.0, window=(0, 4)))
    assert on.guidance_nfe == 20 and (plain.x0 - on.x0).abs().max() > 1e-3


def test_gradient_matches_the_single_gaussian_closed_form():
    model, x_t, a, sig, c = gaussian_state((1, 3, 3), t=200, batch=2)
    gen = torch.Generator().manual_seed(1)
    e = model.eps(x_t, 200) + 0.3 * torch.randn(x_t.shape, generator=gen, dtype=torch.float64)
    noise = torch.randn((7, *x_t.shape), generator=gen, dtype=torch.float64)
    ab = float(model.alphas_cumprod[200])
    u, g = uncertainty_and_gradient(model, x_t, e, 200, ab, noise, center="prediction")
    d = c * (x_t - a * model.means) - (1 + c * sig) * e + c * sig * noise  # [M,B,C,H,W]
    torch.testing.assert_close(u, d.pow(2).mean(0))
    torch.testing.assert_close(g, -2 * (1 + c * sig) / 7 * d.sum(0))
    _, g_mean = uncertainty_and_gradient(model, x_t, e, 200, ab, noise, center="mean")
    assert g_mean.abs().max() < 1e-12


@pytest.mark.parametrize("center", ["mean", "prediction"])
def test_gradient_matches_finite_differences_on_a_mixture(gmm, center):
    """Three-component mixture (eps not affine): autograd against central differences of sum(U_t)."""
    t, h = 300, 1e-6
    ab = float(gmm.alphas_cumprod[t])
    gen = torch.Generator().manual_seed(4)
    x_t = math.sqrt(ab) * gmm.means[:2] + math.sqrt(1 - ab) * torch.randn((2, 1, 4, 4), generator=gen,
                                                                           dtype=torch.float64)
    e = gmm.eps(x_t, t)
    noise = torch.randn((5, *x_t.shape), generator=gen, dtype=torch.float64)
    _, g = uncertainty_and_gradient(gmm, x_t, e, t, ab, noise, center=center)
    assert g.abs().max() > 1e-3
    for pixel in [(0, 0, 0, 0), (0, 0, 2, 3), (1, 0, 1, 1), (1, 0, 3, 2)]:
        bump = torch.zeros_like(e)
        bump[pixel] = h
        up = sensitivity_variance(gmm, x_t, e + bump, t, ab, noise, center=center).sum()
        down = sensitivity_variance(gmm, x_t, e - bump, t, ab, noise, center=center).sum()
        assert float((up - down) / (2 * h)) == pytest.approx(float(g[pixel]), rel=1e-5, abs=1e-8)


@pytest.mark.parametrize("percentile", [90, 95])
def test_only_the_most_uncertain_pixels_change(percentile):
    model, x_t, _, _, _ = gaussian_state((1, 10, 10), t=80, batch=3)
    ctx = step_context(model, x_t)
    guidance = UncertaintyGuidance(percentile=percentile, strength=2.0, center="prediction")
    step = guidance.step(ctx)
    eps_hat = guidance.guide(ctx)
    for b in range(3):
        threshold = np.percentile(step.uncertainty[b].numpy(), percentile)  # numpy reference, linear
        assert torch.equal(step.mask[b], step.uncertainty[b] > threshold)
        assert int(step.mask[b].sum()) == 100 - percentile  # (100 - p) % of the 100 pixels
    assert torch.equal(eps_hat != ctx.eps, step.mask)  # the gradient is non-zero on every masked pixel here
    torch.testing.assert_close((eps_hat - ctx.eps)[step.mask], 2.0 * step.gradient[step.mask])
    assert not eps_hat.requires_grad


def test_fixed_step_thresholds():
    model, x_t, _, _, _ = gaussian_state((1, 4, 4), t=80, batch=2)
    ctx = step_context(model, x_t)
    everything = UncertaintyGuidance(center="prediction", thresholds={ctx.t: -1.0})
    assert bool(everything.step(ctx).mask.all()) and bool((everything.guide(ctx) != ctx.eps).all())
    nothing = UncertaintyGuidance(center="prediction", thresholds={ctx.t: 1e9})
    assert torch.equal(nothing.guide(ctx), ctx.eps)
    with pytest.raises(ConfigError) as err:
        UncertaintyGuidance(thresholds={ctx.t + 1: 0.1}).guide(ctx)
    assert err.value.field == "thresholds"


def test_guided_samples_do_not_depend_on_the_batch(gmm):
    """sum(U) (not the batch mean) is differentiated, so an image's update is the same in any batch."""
    x_T = initial_noise(6, range(4), gmm.sample_shape)
    guidance = UncertaintyGuidance(strength=1.0, center="prediction", window=(40, 50))

    def run(rows: list[int]) -> torch.Tensor:
        return sample(gmm, x_T[rows], steps=20, seed=6, indices=rows, guidance=guidance).x0

    full = run([0, 1, 2, 3])
    torch.testing.assert_close(full, torch.cat([run([0, 1]), run([2, 3])]), rtol=1e-6, atol=1e-7)
    assert (full - sample(gmm, x_T, steps=20, seed=6).x0).abs().max() > 1e-4


def test_active_steps_scale_with_the_step_count(gmm):
    guidance = UncertaintyGuidance()
    assert [i for i in range(50) if guidance.active(i, 50)] == [45, 46, 47, 48]
    assert [i for i in range(25) if guidance.active(i, 25)] == [22, 23]
    out = sample(gmm, initial_noise(0, range(2), gmm.sample_shape), sampler="dpm2", steps=10,
                 guidance=UncertaintyGuidance(m=3))
    assert out.guidance_nfe == 3  # one guided step (9 of 10), M = 3 network calls per sample


@pytest.mark.parametrize("field, value", [
    ("percentile", 0), ("percentile", 100), ("percentile", -5), ("percentile", "95"), ("percentile", True),
    ("m", 1), ("strength", float("nan")), ("strength", float("inf")), ("strength", "1"),
    ("window", (10, 5)), ("center", "max"), ("clip_x0", 1), ("thresholds", {}), ("thresholds", {40: float("nan")}),
    ("thresholds", "x"),
])
def test_bad_parameters_name_the_field(field, value):
    with pytest.raises(ConfigError) as err:
        UncertaintyGuidance(**{field: value})
    assert err.value.field == field
