"""Last-layer Laplace on v- and x0-prediction models (issue 25 item 2): eps = c_x x_t + c_t o with o the last layer's
output and c_t = a_t (v) or -a_t / s_t (x0), so the posterior's closed-form Var[eps] = c_t^2 Var[o].

- the closed form against a brute-force Monte Carlo over last-layer weight draws theta ~ N(theta_MAP, diag(1/P)),
  each draw's eps computed by the model's own forward and its own prediction -> eps conversion (plain PyTorch
  `[model] factory` networks with a conv and a linear last layer, a diffusers UNet);
  tolerance: the sample variance of S Gaussian draws has relative standard error sqrt(2 / (S - 1)); every pixel must
  agree within Z_TOL of those (Z_TOL = 5: about 1e-6 per pixel two-sided), and the uncorrected Var[o] must miss
  by more than 3 Z_TOL (the test has power);
- the fit's posterior precision against the GGN / EF diagonal computed directly by autograd through the model's eps;
- BayesDiff (DDIM and DPM-Solver-2), the shared-draw model and generative_uncertainty end to end on a v model.
"""
from __future__ import annotations

import contextlib
import math

import pytest
import torch
from torch import nn

import estimators
from benchmark.models import DiffusersUNet
from benchmark.models.base import linear_beta_alphas_cumprod
from benchmark.models.prediction import epsilon_coefficients, output_to_eps_scale, to_epsilon
from benchmark.sampling import initial_noise, sample
from benchmark.seeding import per_sample_randint, per_sample_randn
from estimators.laplace import LastLayerLaplace
from estimators.posterior_draws import LaplaceDrawModel
from tests.helpers import tiny_unet
from tests.test_factory_models import SHAPE, spec

KINDS = ("v_prediction", "sample")
T_PROBE = torch.tensor([5, 500, 990])  # c_t^2 spans 1e-5 .. 7e2 for x0, 5e-5 .. 1 for v
Z_TOL = 5.0


def build(source: str, kind: str) -> tuple[nn.Module, nn.Module]:
    """(model in float64, its last layer): a factory conv net, a factory MLP (linear head), or a diffusers UNet."""
    if source == "unet":
        model = DiffusersUNet(tiny_unet(dropout=0.0, seed=1), prediction_type=kind)
    else:
        model = spec({"conv": "make_conv", "mlp": "make_mlp"}[source],
                     last_layer={"conv": "conv_out", "mlp": "head"}[source], prediction_type=kind).load()
    model = model.to(torch.float64)
    return model, model.last_layer


def fitted(model: nn.Module, images: int = 6, **kwargs) -> LastLayerLaplace:
    x0 = torch.rand(images, *SHAPE, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2 - 1
    return LastLayerLaplace(model, **kwargs).fit([x0], progress=False)


@contextlib.contextmanager
def layer_parameters(layer: nn.Module, values: dict[str, torch.Tensor]):
    """The layer's parameters set to `values` inside the block (restored after)."""
    saved = {name: p.detach().clone() for name, p in layer.named_parameters()}
    with torch.no_grad():
        for name, p in layer.named_parameters():
            p.copy_(values[name])
    try:
        yield
    finally:
        with torch.no_grad():
            for name, p in layer.named_parameters():
                p.copy_(saved[name])


def apply_layer(layer: nn.Module, theta: dict[str, torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
    """The Conv2d / Linear `layer` with parameters `theta` (its own padding, stride, ...) on `inputs`."""
    if isinstance(layer, nn.Conv2d):
        return layer._conv_forward(inputs, theta["weight"], theta.get("bias"))
    return nn.functional.linear(inputs, theta["weight"], theta.get("bias"))


def monte_carlo_eps(model, la: LastLayerLaplace, x: torch.Tensor, t: torch.Tensor, draws: int, seed: int = 0,
                    per_call: int = 250, labels: torch.Tensor | None = None) -> torch.Tensor:
    """eps [S, B, C, H, W] of the full model (model.eps: its own forward and prediction -> eps map) under S weight
    draws theta_s ~ N(theta_MAP, diag(1 / P)); `per_call` draws share one forward call of x repeated draw-major,
    a forward hook applying draw k's last layer to block k of the layer's input."""
    gen = torch.Generator().manual_seed(seed)
    precision = la.posterior_precision
    params = {name: p.detach() for name, p in la.layer.named_parameters()}
    out, batch = [], x.shape[0]
    for start in range(0, draws, per_call):
        k = min(per_call, draws - start)
        thetas = [{name: value + torch.randn(value.shape, generator=gen, dtype=torch.float64)
                   / precision[name].sqrt() for name, value in params.items()} for _ in range(k)]

        def drawn_layer(module, args, _output, thetas=thetas):
            rows = args[0].shape[0] // len(thetas)
            return torch.cat([apply_layer(module, theta, args[0][j * rows:(j + 1) * rows])
                              for j, theta in enumerate(thetas)])

        handle = la.layer.register_forward_hook(drawn_layer)
        try:
            with torch.no_grad():
                y = None if labels is None else labels.repeat(k)
                out.append(model.eps(x.repeat(k, 1, 1, 1), t.repeat(k), y).view(k, batch, *x.shape[1:]))
        finally:
            handle.remove()
    return torch.cat(out)


def check_against_monte_carlo(closed: torch.Tensor, samples: torch.Tensor, uncorrected: torch.Tensor | None = None
                              ) -> float:
    """Max |Var_MC - closed| / (closed sqrt(2 / (S - 1))) over pixels, asserted <= Z_TOL; returns it."""
    draws = samples.shape[0]
    rel_se = math.sqrt(2.0 / (draws - 1))
    mc = samples.var(dim=0, unbiased=True)
    z = ((mc - closed).abs() / (closed * rel_se)).max().item()
    assert z <= Z_TOL, f"MC vs closed form: max z = {z:.2f} (relative SE {rel_se:.3f})"
    if uncorrected is not None:  # without the c_t^2 factor the same check fails by far (the test has power)
        assert ((mc - uncorrected).abs() / (uncorrected * rel_se)).max().item() > 3 * Z_TOL
    return z


# ------------------------------------------------------------------------------------------ the per-timestep map
@pytest.mark.parametrize("kind", ("epsilon", *KINDS))
def test_epsilon_coefficients_are_the_affine_map_of_to_epsilon(kind):
    ab = torch.tensor([0.9999, 0.5, 1e-4], dtype=torch.float64)
    out, x = torch.randn(3, 1, 2, 2, dtype=torch.float64), torch.randn(3, 1, 2, 2, dtype=torch.float64)
    c_x, c_out = epsilon_coefficients(ab, kind)
    torch.testing.assert_close(c_x.view(-1, 1, 1, 1) * x + c_out.view(-1, 1, 1, 1) * out,
                               to_epsilon(out, x, ab, kind, 1))
    torch.testing.assert_close(output_to_eps_scale(ab, kind), c_out)


# ------------------------------------------------------------------------------------------ closed form vs MC
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("source, draws", [("conv", 4000), ("mlp", 4000), ("unet", 2000)])
def test_closed_form_eps_variance_matches_monte_carlo_over_weight_draws(source, draws, kind):
    model, layer = build(source, kind)
    assert layer is not None  # v- and x0-prediction models expose their last layer
    la = fitted(model)
    x = torch.randn(3, *SHAPE, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    mean, closed = la.predictive(x, T_PROBE)
    torch.testing.assert_close(mean, model.eps(x, T_PROBE))  # the MAP mean is the model's eps
    with torch.no_grad():
        features = model.features(x, T_PROBE)
        inverse = {k: v.reciprocal() for k, v in la.posterior_precision.items()}
        from estimators.laplace import predictive_variance

        var_output = la._as_eps(predictive_variance(layer, features, inverse), variance=True)
    scale = output_to_eps_scale(model.alphas_cumprod[T_PROBE], kind).view(-1, 1, 1, 1)
    torch.testing.assert_close(closed, scale.pow(2) * var_output)
    z = check_against_monte_carlo(closed, monte_carlo_eps(model, la, x, T_PROBE, draws), uncorrected=var_output)
    print(f"{source} {kind}: S = {draws}, max z = {z:.2f}")


@pytest.mark.parametrize("kind", KINDS)
def test_mixture_variance_of_two_timesteps_matches_monte_carlo(kind):
    """DPM-Solver-2's eps_eff = (1 - w) eps(x, t) + w eps(u, t_mid) under ONE draw (BayesDiff's Var[eps_eff])."""
    model, _ = build("conv", kind)
    la = fitted(model)
    gen = torch.Generator().manual_seed(3)
    x, u = (torch.randn(3, *SHAPE, generator=gen, dtype=torch.float64) for _ in range(2))
    t, t_mid, w = torch.tensor([900, 400, 60]), torch.tensor([700, 200, 20]), 0.6
    with torch.no_grad():
        closed = la.mixture_variance([(1 - w, model.features(x, t), t), (w, model.features(u, t_mid), t_mid)])
    both = monte_carlo_eps(model, la, torch.cat([x, u]), torch.cat([t, t_mid]), draws=3000, seed=4)
    z = check_against_monte_carlo(closed, (1 - w) * both[:, :3] + w * both[:, 3:])
    print(f"mixture {kind}: S = 3000, max z = {z:.2f}")


# ------------------------------------------------------------------------------------------ the fit: GGN and EF
def brute_force_curvature(model, layer: nn.Module, x_t, t, target) -> tuple[dict, dict]:
    """(GGN diag sum_n sum_k (d eps_nk / d theta)^2, EF diag sum_n (sum_k r_nk d eps_nk / d theta)^2) by autograd
    through model.predict_eps (the model's own output -> eps map), r = eps - target."""
    params = dict(layer.named_parameters())
    ggn = {name: torch.zeros_like(p) for name, p in params.items()}
    ef = {name: torch.zeros_like(p) for name, p in params.items()}
    for n in range(x_t.shape[0]):
        eps = model.predict_eps(x_t[n:n + 1], t[n:n + 1]).flatten()
        residual = (eps - target[n].flatten()).detach()
        grad_sum = {name: torch.zeros_like(p) for name, p in params.items()}
        for k in range(eps.numel()):
            grads = torch.autograd.grad(eps[k], list(params.values()), retain_graph=True)
            for (name, _), g in zip(params.items(), grads):
                ggn[name] += g.pow(2)
                grad_sum[name] += residual[k] * g
        for name in params:
            ef[name] += grad_sum[name].pow(2)
    return ggn, ef


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("source", ["conv", "unet"])
def test_fit_precision_equals_the_brute_force_ggn_and_ef_diagonal(source, kind):
    model, layer = build(source, kind)
    images, seed, sigma, prior = 4, 7, 0.5, 2.0
    x0 = torch.rand(images, *SHAPE, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * 2 - 1
    ggn = LastLayerLaplace(model, prior_precision=prior, sigma_noise=sigma).fit([x0], seed=seed, progress=False)
    ef = LastLayerLaplace(model, prior_precision=prior, sigma_noise=sigma, hessian="ef").fit(
        [x0], seed=seed, progress=False)
    index = torch.arange(images)  # the fit's own draws of t and eps (LastLayerLaplace.fit)
    t = per_sample_randint(seed, index, model.num_train_timesteps, stream="laplace-fit-t")
    eps = per_sample_randn(seed, index, SHAPE, stream="laplace-fit-eps", dtype=torch.float64)
    ab = model.alphas_cumprod[t].view(-1, 1, 1, 1)
    h_ggn, h_ef = brute_force_curvature(model, layer, ab.sqrt() * x0 + (1 - ab).sqrt() * eps, t, eps)
    for name in h_ggn:
        torch.testing.assert_close(ggn.posterior_precision[name], h_ggn[name] / sigma**2 + prior, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(ef.posterior_precision[name], h_ef[name] / sigma**4 + prior, rtol=1e-9, atol=1e-9)


def test_saved_posterior_remembers_its_prediction_type(tmp_path):
    v_model, _ = build("conv", "v_prediction")
    path = fitted(v_model).save(tmp_path / "la.pt")
    assert LastLayerLaplace(v_model).load(path).prediction_type == "v_prediction"
    with pytest.raises(Exception, match="v_prediction"):
        LastLayerLaplace(build("conv", "sample")[0]).load(path)
    with pytest.raises(Exception, match="t"):
        fitted(v_model).variance_from_features(torch.zeros(1, 8, *SHAPE[1:], dtype=torch.float64))


# ------------------------------------------------------------------------------------------ estimators end to end
@pytest.mark.parametrize("sampler", ["ddim", "dpm2"])
def test_bayesdiff_runs_end_to_end_on_a_v_prediction_factory_model(sampler):
    model = spec("make_conv", last_layer="conv_out", prediction_type="v_prediction").load()
    la = fitted(model)
    x_T = initial_noise(0, torch.arange(2), model.sample_shape)
    est = estimators.create("bayesdiff", laplace=la, skip=1, mc_samples=4)
    result = sample(model, x_T, sampler=sampler, steps=4, estimators=[est], seed=0, indices=torch.arange(2))
    pixel = result.uncertainty["bayesdiff"].pixel
    assert pixel.shape == x_T.shape and bool(torch.isfinite(pixel).all()) and bool((pixel > 0).all())
    assert bool(torch.isfinite(result.uncertainty["bayesdiff"].score).all())


def test_shared_draw_model_and_generative_uncertainty_use_the_v_map():
    model, _ = build("conv", "v_prediction")
    la = fitted(model)
    draws = LaplaceDrawModel(model, la, draws=2, seed=0)
    x, t = torch.randn(4, *SHAPE, dtype=torch.float64), torch.tensor([100, 800, 100, 800])
    with torch.no_grad():
        got = draws.eps(x, t)
        for s in range(2):  # draw s on rows 2s, 2s + 1: the full model with that draw's last layer
            with layer_parameters(la.layer, draws.weights[s]):
                torch.testing.assert_close(got[2 * s:2 * s + 2], model.eps(x[2 * s:2 * s + 2], t[2 * s:2 * s + 2]))
    est = estimators.create("generative_uncertainty", laplace=la, m=2, features="pixels")
    x_T = initial_noise(0, torch.arange(2), model.sample_shape).to(torch.float64)
    result = sample(model, x_T, sampler="ddim", steps=3, estimators=[est], seed=0, indices=torch.arange(2))
    assert bool(torch.isfinite(result.uncertainty["generative_uncertainty"].score).all())


@pytest.mark.parametrize("kind", KINDS)
def test_guided_transformer_variance_matches_monte_carlo(kind):
    """A v / x0 DiT (linear last layer, learned sigma, unpatchify) under classifier-free guidance w = 3: the posterior's
    (1 - w)^2 Var_u + w^2 Var_c of the guided eps (branches taken independent, benchmark.models.guided) against MC
    with independent draws per branch: eps = (1 - w) eps_u(theta_1) + w eps_c(theta_2)."""
    from benchmark.models.dit import DiTDenoiser
    from tests.latent_builders import tiny_dit

    model = DiTDenoiser(tiny_dit(dropout=0.0), linear_beta_alphas_cumprod(), prediction_type=kind).to(torch.float64)
    z0 = torch.rand(4, 4, 8, 8, generator=torch.Generator().manual_seed(6), dtype=torch.float64) * 2 - 1
    la = LastLayerLaplace(model).fit([(z0, torch.tensor([0, 1, 2, 0]))], progress=False)
    z, t, labels = torch.randn(2, 4, 8, 8, dtype=torch.float64), torch.tensor([30, 700]), torch.tensor([2, 1])
    model.set_guidance_scale(3.0)
    _, closed = la.predictive(z, t, labels)
    model.set_guidance_scale(1.0)
    null = torch.full_like(labels, model.null_condition)
    labelled = monte_carlo_eps(model, la, z, t, draws=2000, seed=9, labels=labels)
    uncond = monte_carlo_eps(model, la, z, t, draws=2000, seed=10, labels=null)
    z = check_against_monte_carlo(closed, -2.0 * uncond + 3.0 * labelled)
    print(f"guided DiT {kind}: S = 2000, max z = {z:.2f}")
