"""The `bayesdiff` estimator against the exact variance recursion of a model whose eps is affine in x_t.

Closed form. With eps(x) = a x + b (per pixel) and a last-layer variance v that does not depend on x, one
sampler step x_prev = k x + c eps + n z maps a Gaussian state of variance V to
    total variance (default):  V' = k^2 V + 2 k c (a V) + c^2 (v + a^2 V) + n^2 = (k + c a)^2 V + c^2 v + n^2
    Laplace-only ("laplace"):  V' = k^2 V + 2 k c (a V) + c^2 v + n^2
on uncertainty steps (Cov(x, eps) = a V), and V' = k^2 V + n^2 on skip steps. For DPM-Solver-2, a is the
slope of the effective eps through both solver stages (`effective_slope`). The total form is the true
variance of the stochastic linear system, which a test checks by simulating it. k, c, n come from
`build_grid` (the engine's coefficients), not from the estimator.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

import estimators
from benchmark.errors import CapabilityError, ConfigError, MissingAssetError
from benchmark.models import DiffusersUNet, DiffusionModel, linear_beta_alphas_cumprod
from benchmark.sampling import build_grid, initial_labels, initial_noise, sample
from estimators.bayesdiff import regression_moments, sample_moments
from estimators.laplace import LastLayerLaplace, default_path
from tests.helpers import tiny_unet

pytestmark = pytest.mark.usefixtures("single_thread")  # tiny nets: one thread is faster on a shared CPU

SLOPE, OFFSET, EPS_VAR = 0.5, 0.1, 0.04
SHAPE = (2, 4, 4)


class AffineEps(DiffusionModel):
    """eps(x, t) = SLOPE x + OFFSET: a 1x1 conv last layer (SLOPE I, OFFSET) on identity features."""

    def __init__(self) -> None:
        super().__init__(alphas_cumprod=linear_beta_alphas_cumprod(), sample_shape=SHAPE)
        self.head = nn.Conv2d(SHAPE[0], SHAPE[0], 1)
        with torch.no_grad():
            self.head.weight.copy_(SLOPE * torch.eye(SHAPE[0]).view(SHAPE[0], SHAPE[0], 1, 1))
            self.head.bias.fill_(OFFSET)

    @property
    def last_layer(self) -> nn.Module:
        return self.head

    def predict_features(self, x, t, y=None):
        return x

    def predict_eps(self, x, t, y=None):
        return self.head(x)


class ConstantVariance:
    """A stand-in posterior whose predictive Var[eps] is EPS_VAR everywhere."""

    def check_compatible(self, model) -> None:
        return None

    def variance_from_features(self, features: torch.Tensor, t=None) -> torch.Tensor:
        return torch.full_like(features, EPS_VAR)

    def mixture_variance(self, parts) -> torch.Tensor:  # DPM-Solver-2's mixed evaluations: the same constant
        return torch.full_like(parts[0][1], EPS_VAR)


def exact_variance(sampler: str, steps: int, skip: int, total: bool = True) -> float:
    """Var[x_0] of the recursion in the module docstring (the same for every pixel)."""
    var = 0.0
    for g in build_grid(sampler, linear_beta_alphas_cumprod(), steps):
        k, c, n = g.coefficients.x_coef, g.coefficients.eps_coef, g.coefficients.noise_std
        slope = effective_slope(g)
        if g.index % skip:
            var = k**2 * var + n**2
        else:
            var = k**2 * var + 2 * k * c * slope * var + c**2 * (EPS_VAR + (slope**2 * var if total else 0.0)) + n**2
    return var


def effective_slope(g) -> float:
    """d eps_eff / d x: SLOPE, or for DPM-Solver-2 (1 - w) SLOPE + w SLOPE (mid_x_coef + mid_eps_coef SLOPE)."""
    if g.t_mid is None:
        return SLOPE
    return (1 - g.mid_weight) * SLOPE + g.mid_weight * SLOPE * (g.mid_x_coef + g.mid_eps_coef * SLOPE)


def run(model, sampler="ddim", steps=20, batch=8, seed=0, indices=None, **params):
    idx = torch.arange(batch) if indices is None else torch.as_tensor(indices)
    x_T = initial_noise(seed, idx, model.sample_shape)
    est = estimators.create("bayesdiff", **params)
    return sample(model, x_T, sampler=sampler, steps=steps, estimators=[est], seed=seed, indices=idx)


@pytest.mark.parametrize("sampler,skip", [("ddim", 1), ("ddpm", 3), ("dpm2", 2)])
@pytest.mark.parametrize("eps_variance", ["total", "laplace"])
def test_affine_model_matches_exact_recursion(sampler, skip, eps_variance):
    """The regression estimator is exact for affine eps: every pixel equals the recursion."""
    out = run(AffineEps(), sampler, steps=10 if sampler == "dpm2" else 20, laplace=ConstantVariance(),
              mc_samples=10, skip=skip, eps_variance=eps_variance, skip_rule="public")  # k^2 V + n^2 on skip steps
    pixel = out.uncertainty["bayesdiff"].pixel
    exact = exact_variance(sampler, 10 if sampler == "dpm2" else 20, skip, total=eps_variance == "total")
    torch.testing.assert_close(pixel, torch.full_like(pixel, exact), rtol=1e-4, atol=0)


def test_total_recursion_is_the_variance_of_the_stochastic_system():
    """Simulate x_prev = k x + c (SLOPE x + OFFSET + sqrt(EPS_VAR) xi) + n z from a fixed x_T: the empirical
    Var[x_0] is the recursion with eps_variance="total" (and not the Laplace-only one)."""
    torch.manual_seed(0)
    for sampler in ("ddim", "ddpm"):
        x = torch.zeros(40000, dtype=torch.float64)
        for g in build_grid(sampler, linear_beta_alphas_cumprod(), 20):
            c = g.coefficients
            eps = SLOPE * x + OFFSET + EPS_VAR**0.5 * torch.randn_like(x)
            x = c.x_coef * x + c.eps_coef * eps + c.noise_std * torch.randn_like(x)
        assert float(x.var()) == pytest.approx(exact_variance(sampler, 20, 1, total=True), rel=0.03)
        assert float(x.var()) != pytest.approx(exact_variance(sampler, 20, 1, total=False), rel=0.1)


def test_plain_estimator_matches_on_average():
    """Plain sample moments: unbiased per step but noisy; over 512 pixels the mean is near the recursion."""
    out = run(AffineEps(), "ddim", steps=20, batch=16, laplace=ConstantVariance(), mc_samples=10, skip=1,
              mc_estimator="plain")
    pixel = out.uncertainty["bayesdiff"].pixel
    assert float(pixel.mean()) == pytest.approx(exact_variance("ddim", 20, 1), rel=0.15)


def test_mc_estimators_match_closed_moments_of_a_quadratic():
    """eps = a x + b x^2 with x ~ N(m, V):  Cov(x, eps) = (a + 2 b m) V,
    Var[eps] = (a + 2 b m)^2 V + 2 b^2 V^2.  Both estimators, S = 10, averaged over 20000 pixels."""
    a, b, m, var = 0.7, 0.4, 0.5, 0.3
    z = torch.randn(10, 20000, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    d = var**0.5 * z
    eps = a * (m + d) + b * (m + d) ** 2
    cov_exact, var_exact = (a + 2 * b * m) * var, (a + 2 * b * m) ** 2 * var + 2 * b**2 * var**2
    for estimator in (sample_moments, regression_moments):
        cov, var_eps = estimator(d, eps, torch.full((20000,), var, dtype=torch.float64))
        assert float(cov.mean()) == pytest.approx(cov_exact, rel=0.02), estimator.__name__
        assert float(var_eps.mean()) == pytest.approx(var_exact, rel=0.03), estimator.__name__


def test_skip_steps_scale_variance_by_the_squared_coefficient():
    steps, skip = 20, 5
    res = run(AffineEps(), "ddpm", steps=steps, batch=2, laplace=ConstantVariance(), mc_samples=4, skip=skip,
              keep_steps=True, skip_rule="public").uncertainty["bayesdiff"]  # the default: test_bayesdiff_skip_contraction
    grid = build_grid("ddpm", linear_beta_alphas_cumprod(), steps)
    states = [res.per_step[g.t] for g in grid] + [res.pixel]
    assert float(states[0].abs().max()) == 0.0  # x_T is given
    for g, var, nxt in zip(grid, states[:-1], states[1:]):
        k, c, n = g.coefficients.x_coef, g.coefficients.eps_coef, g.coefficients.noise_std
        if g.index % skip:  # skip step: exactly the coefficient squared (+ the DDPM noise variance)
            expected = k**2 * var + n**2
        else:  # uncertainty step (indices 0, 5, 10, 15): the affine closed form
            expected = (k + c * SLOPE) ** 2 * var + c**2 * EPS_VAR + n**2
        torch.testing.assert_close(nxt, expected, rtol=1e-5, atol=0)


def test_nfe_per_sample_is_base_plus_features_plus_draws():
    """50-step DDIM, skip 5, S = 10: uncertainty at steps 0, 5, ..., 45 -> 10 features calls + 9 x 10 draws
    (V = 0 at step 0, so no draws there) = 100 extra NFEs per sample; DPM-Solver-2 needs 2 per call."""
    model = AffineEps()
    la = LastLayerLaplace(model).fit([torch.rand(16, *SHAPE) * 2 - 1], progress=False)
    out = run(model, "ddim", steps=50, batch=3, laplace=la, mc_samples=10, skip=5)
    assert (out.nfe, out.uncertainty["bayesdiff"].nfe) == (50.0, 10 * 1 + 9 * 10)
    out = run(model, "ddpm", steps=50, batch=3, laplace=la, mc_samples=10, skip=5)
    assert (out.nfe, out.uncertainty["bayesdiff"].nfe) == (50.0, 100.0)
    out = run(model, "dpm2", steps=25, batch=3, laplace=la, mc_samples=10, skip=5)  # steps 0, 5, ..., 20
    assert (out.nfe, out.uncertainty["bayesdiff"].nfe) == (50.0, 5 * 2 + 4 * 2 * 10)
    out = run(model, "ddim", steps=10, batch=3, laplace=la, mc_samples=4, skip=1)
    assert out.uncertainty["bayesdiff"].nfe == 10 + 9 * 4


def test_draws_are_seeded_per_sample():
    model = AffineEps()
    both = run(model, "ddim", steps=10, batch=3, laplace=ConstantVariance(), mc_samples=4, skip=2)
    alone = run(model, "ddim", steps=10, indices=[2], laplace=ConstantVariance(), mc_samples=4, skip=2)
    torch.testing.assert_close(alone.uncertainty["bayesdiff"].pixel[0], both.uncertainty["bayesdiff"].pixel[2])


def test_refuses_missing_capability_posterior_and_bad_parameters(gmm, tmp_path):
    x_T = initial_noise(0, range(2), gmm.sample_shape)
    with pytest.raises(CapabilityError, match="last layer.*GaussianMixtureModel"):
        sample(gmm, x_T, steps=4, estimators=[estimators.create("bayesdiff", laplace=ConstantVariance())])
    unet = DiffusersUNet(tiny_unet())
    x_T = initial_noise(0, range(2), unet.sample_shape)
    with pytest.raises(MissingAssetError, match="not loaded from a local folder"):
        sample(unet, x_T, steps=4, estimators=["bayesdiff"])
    unet.source = str(tmp_path)
    with pytest.raises(MissingAssetError, match=r"LastLayerLaplace\(model\)\.fit\(loader, num_images=1000\)"):
        sample(unet, x_T, steps=4, estimators=["bayesdiff"])
    with pytest.raises(MissingAssetError, match="not fitted"):
        sample(unet, x_T, steps=4, estimators=[estimators.create("bayesdiff", laplace=LastLayerLaplace(unet))])
    for field, value in (("mc_samples", 1), ("skip", 0), ("eps_variance", "paper"), ("laplace", "file.pt"),
                         ("mc_estimator", "mean"), ("mc_samples", 2)):
        with pytest.raises(ConfigError, match=field):
            estimators.create("bayesdiff", **{field: value})


def test_runs_beside_other_estimators_on_a_unet_without_changing_x0(tmp_path):
    unet = DiffusersUNet(tiny_unet())
    unet.source = str(tmp_path)
    images = torch.rand(32, 1, 8, 8) * 2 - 1
    LastLayerLaplace(unet).fit(images.split(16), num_images=32, progress=False).save(default_path(unet))
    x_T = initial_noise(0, range(3), unet.sample_shape)
    plain = sample(unet, x_T, sampler="ddim", steps=10)
    ests = ["random", estimators.create("bayesdiff", mc_samples=4, skip=5)]  # laplace loaded from the file
    if "sensitivity" in estimators.available():
        ests.append("sensitivity")
    out = sample(unet, x_T, sampler="ddim", steps=10, estimators=ests)
    assert torch.equal(out.x0, plain.x0)
    res = out.uncertainty["bayesdiff"]
    assert res.pixel.shape == x_T.shape and bool(torch.isfinite(res.pixel).all()) and bool((res.pixel > 0).all())
    torch.testing.assert_close(res.score, res.pixel.flatten(1).sum(1))
    # uncertainty at steps 0 and 5, draws only at step 5; the features come with the sampler's own call
    assert res.nfe == 1 * 4
    est = estimators.create("bayesdiff", mc_samples=4, skip=5)
    est.wants_step_features = False
    alone = sample(unet, x_T, sampler="ddim", steps=10, estimators=[est]).uncertainty["bayesdiff"]
    assert alone.nfe == 2 + 1 * 4  # one features() call per uncertainty step instead
    torch.testing.assert_close(alone.pixel, res.pixel, rtol=1e-5, atol=0)


def test_class_conditional_dpm2_on_a_unet():
    unet = DiffusersUNet(tiny_unet(num_classes=3))
    images, labels = torch.rand(12, 1, 8, 8) * 2 - 1, torch.arange(12) % 3
    la = LastLayerLaplace(unet).fit([(images, labels)], progress=False)
    idx = torch.arange(2)
    x_T, y = initial_noise(0, idx, unet.sample_shape), initial_labels(0, idx, 3)
    plain = sample(unet, x_T, sampler="dpm2", steps=6, y=y)
    out = sample(unet, x_T, sampler="dpm2", steps=6, y=y,
                 estimators=[estimators.create("bayesdiff", laplace=la, mc_samples=3, skip=2)])
    assert torch.equal(out.x0, plain.x0)
    res = out.uncertainty["bayesdiff"]
    # steps 0, 2, 4: both stages' features come with the sampler's two calls; 2 calls per draw
    assert bool(torch.isfinite(res.pixel).all()) and res.nfe == 2 * 2 * 3
    est = estimators.create("bayesdiff", laplace=la, mc_samples=3, skip=2)
    est.wants_step_features = False
    alone = sample(unet, x_T, sampler="dpm2", steps=6, y=y, estimators=[est]).uncertainty["bayesdiff"]
    assert alone.nfe == 3 * 2 + 2 * 2 * 3
    torch.testing.assert_close(alone.pixel, res.pixel, rtol=1e-4, atol=1e-12)
