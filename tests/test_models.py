"""Model adapters: the GMM oracle against closed forms / autograd / Monte Carlo / scipy, DDIM on a single
Gaussian against an exact recursion, the DiffusersUNet adapter on tiny saved folders, per-index noise.

Notation: ab_t = alphas_cumprod[t], a_t = sqrt(ab_t), s_t = sqrt(1 - ab_t), x_t = a_t x0 + s_t n.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from benchmark.errors import CapabilityError, ConfigError, MissingAssetError, NonFiniteError
from benchmark.models import DiffusersUNet, GaussianMixtureModel, load_model
from benchmark.sampling import initial_labels, initial_noise, sample
from estimators import UncertaintyEstimator
from estimators.base import EstimatorResult
from tests.helpers import tiny_gmm_means, tiny_unet

pytestmark = pytest.mark.usefixtures("single_thread")

TIMESTEPS = (0, 10, 100, 250, 500, 750, 999)


def _schedule(model, t: int) -> tuple[float, float, float]:
    """(ab_t, a_t, s_t) read off the model's training schedule."""
    ab = float(model.alphas_cumprod[t])
    return ab, math.sqrt(ab), math.sqrt(1.0 - ab)


def _noised_mixture_samples(model: GaussianMixtureModel, t: int, n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    _, a, s = _schedule(model, t)
    x0 = model.sample_data(n, generator=gen).double()
    return a * x0 + s * torch.randn(x0.shape, generator=gen, dtype=torch.float64)


# ----------------------------------------------------------------------------- K = 1: textbook forms
def test_single_gaussian_closed_forms():
    """x0 ~ N(mu, s^2 I) and x_t | x0 ~ N(a_t x0, s_t^2 I). Bayes' rule for two Gaussians, per pixel:
        posterior precision  P = 1/s^2 + a_t^2/s_t^2,   Var[x0 | x_t] = 1/P,
        posterior mean       E[x0 | x_t] = (mu/s^2 + a_t x_t/s_t^2) / P.
    Since n = (x_t - a_t x0)/s_t, the optimal noise prediction is E[n | x_t] = (x_t - a_t E[x0 | x_t]) / s_t.
    (The model writes these in a different form: eps = s_t (x_t - a_t mu)/v_t, v_t = a_t^2 s^2 + s_t^2.)
    """
    mu = tiny_gmm_means(1, (2, 3, 3), seed=1)
    s = 0.3
    model = GaussianMixtureModel(mu, std=s)
    gen = torch.Generator().manual_seed(0)
    for t in TIMESTEPS:
        _, a, s_t = _schedule(model, t)
        x_t = torch.randn((4, 2, 3, 3), generator=gen, dtype=torch.float64) * 1.5
        precision = 1.0 / s**2 + a**2 / s_t**2
        post_var = torch.full_like(x_t, 1.0 / precision)
        post_mean = (mu / s**2 + a * x_t / s_t**2) / precision
        eps = (x_t - a * post_mean) / s_t
        torch.testing.assert_close(model.eps(x_t, t), eps, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(model.posterior_mean(x_t, t), post_mean, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(model.posterior_variance(x_t, t), post_var, rtol=1e-9, atol=1e-15)
    assert model.eps(x_t.float(), 500).dtype == torch.float32  # input dtype is kept


# ----------------------------------------------------------------------------- K > 1: score identities
def _mixture_log_density_xt(model: GaussianMixtureModel, x_t: torch.Tensor, t: int,
                            means: torch.Tensor, weights: torch.Tensor, s: float) -> torch.Tensor:
    """log p_t(x_t) [B] = logsumexp_k (log w_k + sum_pixels log N(x_t; a_t mu_k, a_t^2 s^2 + s_t^2))."""
    ab, a, _ = _schedule(model, t)
    std = math.sqrt(ab * s**2 + 1.0 - ab)
    comps = torch.stack([torch.distributions.Normal(a * m, std).log_prob(x_t).flatten(1).sum(1) for m in means], 1)
    return torch.logsumexp(weights.log() + comps, dim=1)


@pytest.mark.parametrize("t", TIMESTEPS)
def test_mixture_eps_posterior_mean_and_variance_are_tweedie(gmm, t):
    """With g = grad log p_t(x_t) and H its Hessian (Tweedie's formulas, first and second order):
        eps*(x_t) = -s_t g,   E[x0 | x_t] = (x_t + s_t^2 g) / a_t,   Cov[x0 | x_t] = s_t^2 (I + s_t^2 H) / a_t^2.
    log p_t is written here independently as a mixture log-density; g and H come from autograd.
    """
    means, s = tiny_gmm_means(3, (1, 4, 4)), 0.2
    weights = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    _, a, s_t = _schedule(gmm, t)
    x_t = _noised_mixture_samples(gmm, t, 3, seed=t)
    midpoint = (a * (means[0] + means[1]) / 2)[None]  # mixed responsibilities
    x_t = torch.cat([x_t, midpoint]).requires_grad_(True)

    log_p = _mixture_log_density_xt(gmm, x_t, t, means, weights, s)
    (grad,) = torch.autograd.grad(log_p.sum(), x_t)
    x_t = x_t.detach()
    torch.testing.assert_close(gmm.eps(x_t, t), -s_t * grad, rtol=1e-7, atol=1e-10)
    torch.testing.assert_close(gmm.posterior_mean(x_t, t), (x_t + s_t**2 * grad) / a, rtol=1e-7, atol=1e-9)

    for row in range(x_t.shape[0]):
        def log_p_row(flat):
            return _mixture_log_density_xt(gmm, flat.view(1, 1, 4, 4), t, means, weights, s)[0]

        hessian = torch.autograd.functional.hessian(log_p_row, x_t[row].flatten())
        var = s_t**2 * (1.0 + s_t**2 * hessian.diagonal()) / a**2
        torch.testing.assert_close(gmm.posterior_variance(x_t[row:row + 1], t).flatten(), var,
                                   rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("t", [100, 300])
def test_mixture_posterior_variance_matches_monte_carlo(gmm, t):
    """Self-normalised importance sampling: x0_i ~ p(x0) (the mixture), weights w_i ∝ N(x_t; a_t x0_i, s_t^2 I);
    E[x0 | x_t] ≈ sum_i w_i x0_i and Var[x0 | x_t] ≈ sum_i w_i (x0_i - mean)^2, per pixel."""
    gen = torch.Generator().manual_seed(t)
    _, a, s_t = _schedule(gmm, t)
    means = tiny_gmm_means(3, (1, 4, 4))
    x_t = (a * (means[0] + means[1]) / 2)[None] + 0.05 * torch.randn((1, 1, 4, 4), generator=gen, dtype=torch.float64)
    x0 = gmm.sample_data(200_000, generator=gen).double()
    weights = torch.softmax(-(x_t - a * x0).pow(2).flatten(1).sum(1) / (2 * s_t**2), dim=0)
    assert 1.0 / float(weights.pow(2).sum()) > 10_000  # effective sample size
    mc_mean = torch.einsum("n,nchw->chw", weights, x0)
    mc_var = torch.einsum("n,nchw->chw", weights, (x0 - mc_mean).pow(2))

    ab = a * a
    within = 0.2**2 * (1 - ab) / (ab * 0.2**2 + 1 - ab)  # Var[x0 | x_t, k], the same for every k
    exact = gmm.posterior_variance(x_t, t)[0]
    assert float(exact.mean()) > 1.3 * within  # the between-component term matters at this x_t
    torch.testing.assert_close(exact, mc_var, rtol=0.05, atol=0)
    torch.testing.assert_close(gmm.posterior_mean(x_t, t)[0], mc_mean, rtol=0, atol=0.01)


def test_log_density_matches_scipy(gmm):
    from scipy.special import logsumexp
    from scipy.stats import multivariate_normal

    means, s, weights = tiny_gmm_means(3, (1, 4, 4)).numpy(), 0.2, np.array([0.5, 0.3, 0.2])
    x0 = torch.cat([gmm.sample_data(6, generator=torch.Generator().manual_seed(1)).double(),
                    torch.randn((3, 1, 4, 4), generator=torch.Generator().manual_seed(2), dtype=torch.float64)])
    flat = x0.flatten(1).numpy()
    per_component = np.stack([multivariate_normal(m.ravel(), s**2 * np.eye(16)).logpdf(flat) for m in means], 1)
    expected = logsumexp(np.log(weights) + per_component, axis=1)
    np.testing.assert_allclose(gmm.log_density(x0).numpy(), expected, rtol=1e-10)


def test_gmm_rejects_bad_parameters():
    means = tiny_gmm_means(2)
    for kwargs, field in [({"means": means[0]}, "means"), ({"std": 0.0}, "std"),
                          ({"weights": [0.5, 0.6]}, "weights"), ({"weights": [1.0]}, "weights")]:
        with pytest.raises(ConfigError) as err:
            GaussianMixtureModel(**{"means": means, "std": 0.2, **kwargs})
        assert err.value.field == field


# ----------------------------------------------------------------------------- DDIM on a single Gaussian
class TrajectoryRecorder(UncertaintyEstimator):
    """Test estimator that records (t, t_prev, x_t) at every step; no network calls."""

    name = "recorder"
    uses_network = False

    def begin(self, batch) -> None:
        super().begin(batch)
        self.steps: list[tuple[int, int, torch.Tensor]] = []

    def observe(self, step) -> None:
        self.steps.append((step.t, step.t_prev, step.x_t.clone()))

    def result(self) -> EstimatorResult:
        b = self.batch.size
        return EstimatorResult(pixel=torch.zeros((b, *self.batch.sample_shape)), score=torch.zeros(b))


@pytest.mark.parametrize("steps", [50, 7])
def test_ddim_on_a_single_gaussian_follows_the_exact_linear_map(steps):
    """For x0 ~ N(mu, s^2 I) the exact eps*(x_t) = s_t d_t / v_t with d_t = x_t - a_t mu, v_t = a_t^2 s^2 + s_t^2.
    The DDIM (eta = 0) update x_prev = (a_prev/a_t) x_t + (s_prev - a_prev s_t/a_t) eps*(x_t) is then affine:
        d_prev = g_t d_t,   g_t = a_prev/a_t + (s_prev - a_prev s_t / a_t) s_t / v_t,
    on the grid t_i = i * (T // S) (i = S-1..0), ab = 1 after the last step. So x_t = a_t mu + (prod g) d_T.
    """
    mu = tiny_gmm_means(1, (1, 4, 4), seed=2)
    s = 0.3
    model = GaussianMixtureModel(mu, std=s)
    x_T = torch.randn((3, 1, 4, 4), generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    recorder = TrajectoryRecorder()
    result = sample(model, x_T, sampler="ddim", steps=steps, estimators=[recorder])
    assert result.x0.dtype == torch.float64

    ab = model.alphas_cumprod.tolist()
    ratio = 1000 // steps
    times = [i * ratio for i in range(steps - 1, -1, -1)]
    assert [t for t, _, _ in recorder.steps] == times
    d = x_T - math.sqrt(ab[times[0]]) * mu
    for (t, t_prev, x_t), expected_t in zip(recorder.steps, times):
        torch.testing.assert_close(x_t, math.sqrt(ab[t]) * mu + d, rtol=1e-10, atol=1e-12)
        ab_prev = ab[t - ratio] if t - ratio >= 0 else 1.0
        a_t, s_t, a_prev, s_prev = math.sqrt(ab[t]), math.sqrt(1 - ab[t]), math.sqrt(ab_prev), math.sqrt(1 - ab_prev)
        g = a_prev / a_t + (s_prev - a_prev * s_t / a_t) * s_t / (ab[t] * s**2 + 1 - ab[t])
        d = g * d
    torch.testing.assert_close(result.x0, mu + d, rtol=1e-10, atol=1e-12)


def test_ddim_converges_to_the_probability_flow_ode_solution():
    """The probability-flow ODE in x̄ = x/a, sigma = s_t/a reads dx̄/dsigma = eps* = sigma (x̄ - mu)/(s^2 + sigma^2),
    so x̄ - mu ∝ sqrt(s^2 + sigma^2) and x0 = mu + s / sqrt(v_T) (x_T - a_T mu). DDIM is Euler in sigma: its
    error to this closed form must shrink like 1/steps."""
    mu = tiny_gmm_means(1, (1, 4, 4), seed=2)
    s = 0.3
    model = GaussianMixtureModel(mu, std=s)
    x_T = torch.randn((3, 1, 4, 4), generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    errors = {}
    for steps in (100, 1000):
        t_start = (1000 // steps) * (steps - 1)
        ab = float(model.alphas_cumprod[t_start])
        exact = mu + s / math.sqrt(ab * s**2 + 1 - ab) * (x_T - math.sqrt(ab) * mu)
        errors[steps] = float((sample(model, x_T, sampler="ddim", steps=steps).x0 - exact).abs().max())
    assert errors[1000] < 5e-3
    assert errors[100] / errors[1000] > 5


# ----------------------------------------------------------------------------- DiffusersUNet
def _save_pipeline(unet, folder, scheduler) -> None:
    """The layout of google/ddpm-cifar10-32: model_index.json, unet/, scheduler/."""
    folder.mkdir(parents=True)
    (folder / "model_index.json").write_text(json.dumps({
        "_class_name": "DDPMPipeline", "_diffusers_version": "0.42.1",
        "scheduler": ["diffusers", "DDPMScheduler"], "unet": ["diffusers", "UNet2DModel"]}))
    unet.save_pretrained(folder / "unet")
    scheduler.save_pretrained(folder / "scheduler")


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_from_pretrained_pipeline_folder_and_bare_unet_folder(tmp_path):
    from diffusers import DDPMScheduler

    unet = tiny_unet()
    scheduler = DDPMScheduler(num_train_timesteps=500, beta_start=2e-4, beta_end=0.03)  # not the default
    _save_pipeline(unet, tmp_path / "pipe", scheduler)
    unet.save_pretrained(tmp_path / "bare")

    piped = DiffusersUNet.from_pretrained(tmp_path / "pipe")
    assert _same_weights(piped.unet, unet) and piped.sample_shape == (1, 8, 8) and piped.num_classes is None
    torch.testing.assert_close(piped.alphas_cumprod, scheduler.alphas_cumprod.double(), rtol=0, atol=0)

    bare = load_model(str(tmp_path / "bare"))
    assert isinstance(bare, DiffusersUNet) and _same_weights(bare.unet, unet)
    torch.testing.assert_close(bare.alphas_cumprod, DDPMScheduler().alphas_cumprod.double(), rtol=0, atol=0)


def test_eps_is_the_raw_unet_output_and_features_feed_the_last_layer(unet_model):
    x = initial_noise(0, range(3), (1, 8, 8))
    t = torch.tensor([999, 500, 3])
    with torch.no_grad():
        raw = unet_model.unet(x, t).sample
        eps = unet_model.eps(x, t)
        features = unet_model.features(x, t)
        assert torch.equal(eps, raw)
        assert features.shape == (3, 8, 8, 8)  # block_out_channels[0] channels enter conv_out
        assert unet_model.last_layer is unet_model.unet.conv_out
        torch.testing.assert_close(unet_model.last_layer(features), eps, rtol=1e-6, atol=1e-6)
        assert torch.equal(unet_model.eps(x, 500), unet_model.unet(x, torch.full((3,), 500)).sample)
    assert unet_model.nfe_counter["sampler"] == 9  # 3 calls of 3 rows, features included


def test_unet_whose_output_is_not_conv_out_has_no_last_layer():
    """A Fourier-time-embedding UNet divides conv_out's output by t, so conv_out(features) != eps."""
    from diffusers import UNet2DModel

    unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16),
                       layers_per_block=1, norm_num_groups=4, time_embedding_type="fourier",
                       down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"))
    model = DiffusersUNet(unet)
    assert model.last_layer is None
    with pytest.raises(CapabilityError, match="last_layer"):
        model.features(torch.zeros(1, 1, 8, 8), 5)


def test_class_conditional_unet_needs_labels(tmp_path):
    unet = tiny_unet(num_classes=4)
    unet.save_pretrained(tmp_path / "cond")
    model = DiffusersUNet.from_pretrained(tmp_path / "cond")
    assert model.num_classes == 4
    x = initial_noise(0, range(2), (1, 8, 8))
    with pytest.raises(ConfigError) as err:
        model.eps(x, 10)
    assert err.value.field == "y" and "class" in str(err.value)
    with pytest.raises(ConfigError):
        sample(model, x, steps=2)
    y = torch.tensor([0, 3])
    with torch.no_grad():
        assert torch.equal(model.eps(x, 10, y), unet(x, 10, class_labels=y).sample)
        assert not torch.allclose(model.eps(x, 10, y), model.eps(x, 10, torch.tensor([1, 2])))
    assert sample(model, x, steps=2, y=y).x0.shape == (2, 1, 8, 8)
    for bad_y in (torch.tensor([0, 4]), torch.tensor([-1, 0]), torch.tensor([0, 1, 2])):
        with pytest.raises(ConfigError) as err:
            model.eps(x, 10, bad_y)
        assert err.value.field == "y"
    with pytest.raises(ConfigError, match="unconditional"):
        DiffusersUNet(tiny_unet()).eps(x, 10, y)


def test_missing_or_broken_model_folders_raise_missing_asset(tmp_path):
    unet = tiny_unet(dropout=0.0)
    unet.save_pretrained(tmp_path / "no_weights")
    for weights in (tmp_path / "no_weights").glob("diffusion_pytorch_model*"):
        weights.unlink()
    unet.save_pretrained(tmp_path / "corrupt")
    (weights,) = (tmp_path / "corrupt").glob("diffusion_pytorch_model*")
    weights.write_bytes(b"this is not a safetensors file" * 10)
    (tmp_path / "empty").mkdir()
    for folder, says in [(tmp_path / "absent", "does not exist"), (tmp_path / "empty", "config.json"),
                         (tmp_path / "no_weights", "no weights"), (tmp_path / "corrupt", "corrupt")]:
        with pytest.raises(MissingAssetError, match=says):
            DiffusersUNet.from_pretrained(folder)


def test_dropout_active_switches_only_dropout_layers(unet_model):
    x = initial_noise(1, range(2), (1, 8, 8))
    dropouts = [m for m in unet_model.modules() if isinstance(m, nn.Dropout) and m.p > 0]
    others = [m for m in unet_model.modules() if all(m is not d for d in dropouts)]  # p = 0 ones included
    assert dropouts and not any(m.training for m in unet_model.modules())
    with torch.no_grad():
        deterministic = unet_model.eps(x, 300)
        with unet_model.dropout_active():
            assert all(m.training for m in dropouts) and not any(m.training for m in others)
            first, second = unet_model.eps(x, 300), unet_model.eps(x, 300)
        assert not any(m.training for m in unet_model.modules())
        assert not torch.allclose(first, second) and not torch.allclose(first, deterministic)
        assert torch.equal(unet_model.eps(x, 300), deterministic)


def test_models_without_dropout_refuse_mc_dropout(gmm):
    for model in (DiffusersUNet(tiny_unet(dropout=0.0)), gmm):
        with pytest.raises(CapabilityError, match="dropout"):
            with model.dropout_active():
                pass
    with pytest.raises(CapabilityError, match="last_layer"):
        gmm.features(torch.zeros(1, 1, 4, 4), 5)


def test_non_finite_network_output_raises(unet_model):
    x = initial_noise(2, range(2), (1, 8, 8))
    with torch.no_grad():
        unet_model.unet.conv_out.bias[0] = float("nan")
    with pytest.raises(NonFiniteError, match="NaN"):
        unet_model.eps(x, 10)
    with pytest.raises(NonFiniteError):
        sample(unet_model, x, steps=2)


# ----------------------------------------------------------------------------- per-index seeding
def test_initial_noise_is_per_index():
    shape = (1, 4, 4)
    alone = initial_noise(3, [7], shape)
    assert alone.shape == (1, *shape) and alone.dtype == torch.float32
    assert torch.equal(initial_noise(3, [2, 7, 11], shape)[1], alone[0])
    assert torch.equal(initial_noise(3, range(12), shape)[7], alone[0])
    assert torch.equal(initial_noise(3, torch.tensor([7]), shape), alone)
    assert not torch.equal(initial_noise(4, [7], shape), alone)  # another seed
    assert not torch.equal(initial_noise(3, [8], shape), alone)  # another index
    many = initial_noise(0, range(400), shape)
    assert abs(float(many.mean())) < 0.05 and abs(float(many.std()) - 1.0) < 0.05
    assert initial_noise(0, [], shape).shape == (0, *shape)
    labels = initial_labels(3, range(12), 10)
    assert torch.equal(initial_labels(3, [7], 10), labels[7:8]) and labels.min() >= 0 and labels.max() < 10
