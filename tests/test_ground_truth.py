"""Ground truth on the mixture (issue 11 items 2 and 3): each estimator against what it estimates.

References, none produced by the code under test:
- aleatoric twin: for a single Gaussian N(mu, s^2 I) the exact score is affine, and Alg. 1 with it has
  E[U_t] = (sig_t^2 / v_t)^2 per pixel (v_t = ab_t s^2 + sig_t^2) at ANY state x_t, so the exact-score twin
  run on another network's trajectory must give that closed form; with the network equal to the oracle,
  the twin and the estimator see identical inputs and draws and must agree exactly.
- shared theta, x-independent eps: a model whose last layer sees constant features predicts eps = w + b
  whatever x. DDIM then gives x0 = K x_T + sum_t g_t (w + b) with g_t = c_t prod_{j after t} k_j, so under a
  weight posterior with Var[w + b] = v:  shared-theta Var[x0] = (sum_t g_t)^2 v,  while BayesDiff's
  recursion (draws independent per step; Cov = 0 since eps ignores x) gives sum_{t in U} g_t^2 v over its
  uncertainty steps U (skip 1: all steps; skip 5: every 5th) — the calibration ratio is their quotient.
- between-mode responsibility: at the midpoint of two equally weighted modes it is exactly 1/2.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import estimators
from benchmark.models import DiffusionModel, GaussianMixtureModel, linear_beta_alphas_cumprod
from benchmark.protocols.ground_truth import auroc_ci, skip_variances
from benchmark.protocols.ground_truth_targets import (
    EXACT_PREFIX,
    mode_responsibility,
    shared_theta_spread,
    with_observers,
)
from benchmark.sampling import initial_noise, sample
from benchmark.sampling.schedule import build_grid
from estimators.laplace import LastLayerLaplace
from tests.helpers import tiny_gmm_means

MU = torch.tensor([[[[0.3, -0.5], [0.8, 0.0]]]], dtype=torch.float64)
STD = 0.5


def test_exact_twin_equals_the_estimator_when_the_network_is_exact(gmm):
    make = with_observers(lambda: [estimators.create("sensitivity", m=3, window=(30, 50))], gmm)
    x_T = initial_noise(0, torch.arange(5), gmm.sample_shape).to(torch.float64)
    out = sample(gmm, x_T, steps=20, estimators=make(), seed=0, indices=torch.arange(5))
    net, exact = out.uncertainty["sensitivity"], out.uncertainty[EXACT_PREFIX + "sensitivity"]
    assert torch.all(net.score > 0)
    torch.testing.assert_close(exact.pixel, net.pixel, rtol=0, atol=0)


def test_exact_twin_follows_the_closed_form_on_another_networks_states():
    oracle = GaussianMixtureModel(MU, STD)
    network = GaussianMixtureModel(MU + 0.7, STD * 0.5)  # a wrong "network": another Gaussian
    sens = estimators.create("sensitivity", m=3000, window=(45, 49), keep_steps=True)
    make = with_observers(lambda: [sens], oracle)
    made = make()
    twin = next(e for e in made if e.name == EXACT_PREFIX + "sensitivity")
    twin.inner.keep_steps = True
    x_T = initial_noise(1, torch.arange(2), oracle.sample_shape).to(torch.float64)
    out = sample(network, x_T, steps=50, estimators=made, seed=0, indices=torch.arange(2))
    per_step = out.uncertainty[EXACT_PREFIX + "sensitivity"].per_step
    assert sorted(per_step) == [20, 40, 60, 80]
    for t, u in per_step.items():
        ab = float(oracle.alphas_cumprod[t])
        expected = ((1 - ab) / (ab * STD**2 + 1 - ab)) ** 2
        assert abs(float(u.mean()) / expected - 1) < 0.05, t
    own = out.uncertainty["sensitivity"].per_step  # the wrong network's own maps differ from the closed form
    ab = float(oracle.alphas_cumprod[80])
    assert abs(float(own[80].mean()) / (((1 - ab) / (ab * STD**2 + 1 - ab)) ** 2) - 1) > 0.2


class ConstantFeatures(DiffusionModel):
    """eps = conv1x1(ones) = w + b per pixel, whatever x and t (last layer: a 1x1 conv, 1 -> 1 channel)."""

    def __init__(self) -> None:
        super().__init__(alphas_cumprod=linear_beta_alphas_cumprod(), sample_shape=(1, 2, 2))
        self.conv = nn.Conv2d(1, 1, 1).double()
        with torch.no_grad():
            self.conv.weight.fill_(0.1)
            self.conv.bias.fill_(-0.05)

    @property
    def last_layer(self) -> nn.Module:
        return self.conv

    def predict_features(self, x, t, y=None):
        return torch.ones_like(x)

    def predict_eps(self, x, t, y=None):
        return self.conv(self.predict_features(x, t, y))


def constant_feature_posterior(model: ConstantFeatures, prior: float) -> LastLayerLaplace:
    la = LastLayerLaplace(model, prior_precision=prior)
    la.data_term = {"weight": torch.zeros_like(model.conv.weight), "bias": torch.zeros_like(model.conv.bias)}
    return la


def ddim_gains(steps: int) -> list[float]:
    """g_t = c_t prod_{j after t} k_j over the DDIM grid (x0 = K x_T + sum_t g_t eps_t)."""
    grid = build_grid("ddim", linear_beta_alphas_cumprod(), steps)
    gains = []
    for i, g in enumerate(grid):
        later = math.prod(h.coefficients.x_coef for h in grid[i + 1:])
        gains.append(g.coefficients.eps_coef * later)
    return gains


def test_shared_theta_spread_and_calibration_ratio_match_the_closed_forms():
    model = ConstantFeatures()
    prior = 4.0
    v = 1 / prior + 1 / prior  # Var[w * 1 + b]
    # eps ignores x (J = 0), so the skip steps' exact contraction is k: the public rule k^2 V is exact here
    bd = estimators.create("bayesdiff", laplace=constant_feature_posterior(model, prior), mc_samples=3, skip=1,
                           skip_rule="public")
    steps, idx = 10, torch.arange(3)
    x_T = initial_noise(0, idx, model.sample_shape).to(torch.float64)
    run_args = dict(sampler="ddim", steps=steps, seed=0, indices=idx)
    spread = shared_theta_spread(bd, model, x_T, draws=4000, **run_args)
    gains = ddim_gains(steps)
    shared = sum(gains) ** 2 * v
    assert ((spread / shared - 1).abs() < 0.1).all()  # 4000 draws: relative s.e. of a variance ~ 2.2 %
    props = skip_variances(bd, model, x_T, [1, 5], **run_args)
    torch.testing.assert_close(props[1], torch.full_like(props[1], sum(g * g for g in gains) * v))
    torch.testing.assert_close(props[5], torch.full_like(props[5], sum(gains[i] ** 2 for i in (0, 5)) * v))
    ratio = float(props[1].sum() / spread.sum())
    assert ratio == pytest.approx(sum(g * g for g in gains) / sum(gains) ** 2, rel=0.1)
    assert ratio < 0.5  # the recursion misses the correlation a shared theta creates across steps


def test_dropout_draws_hold_one_mask_per_draw_and_sample_for_the_whole_trajectory(unet_model):
    """Masks seen by the dropout layers: identical at every call of a draw, different across draws, and a
    sample's masks do not depend on the other samples in the batch."""
    mc = estimators.create("mc_dropout", m=2)
    layers = unet_model.dropout_modules()
    seen: list[torch.Tensor] = []  # per call: +1 kept, 0 dropped, NaN where the input is 0 (undecidable)
    hooks = [layer.register_forward_hook(lambda mod, inp, out: seen.append(
        torch.where(inp[0] != 0, (out != 0).double(), torch.nan))) for layer in layers[:1]]
    x = torch.randn(4, *unet_model.sample_shape, generator=torch.Generator().manual_seed(0))
    try:
        draws = mc.shared_draws_model(unet_model, 2, seed=0, indices=[10, 11])
        draws.eps(x, 900)
        draws.eps(x * 0.5, 300)
        single = mc.shared_draws_model(unet_model, 2, seed=0, indices=[11])
        single.eps(x[[1, 3]], 500)
    finally:
        for h in hooks:
            h.remove()
    first, second, alone = seen
    finite = torch.isfinite(first) & torch.isfinite(second)
    assert torch.equal(first[finite], second[finite])  # same masks at two different steps
    assert not torch.equal(first[0][finite[0]], first[2][finite[2]])  # draw 0 vs draw 1 of sample 10
    both = torch.isfinite(alone) & torch.isfinite(first[[1, 3]])
    assert torch.equal(alone[both], first[[1, 3]][both])  # sample 11 alone = sample 11 in the batch


def test_mode_responsibility_at_a_midpoint_is_one_half():
    means = tiny_gmm_means(2, (1, 4, 4), seed=3)
    oracle = GaussianMixtureModel(means, std=0.2)
    x0 = torch.stack([means[0], 0.5 * (means[0] + means[1])]).float()
    r = mode_responsibility(oracle, x0)
    assert float(r[0]) > 0.999 and float(r[1]) == pytest.approx(0.5, abs=1e-6)


def test_off_mode_radius_is_chi_square_of_the_nearest_mode_and_flags_midpoints_in_high_dimension():
    """Exact mixture samples have radius ~ chi^2_D (D = 256): about 1 % exceed the 0.99 quantile; points a
    little off the midpoint of two modes have responsibility ~1 (not 'between' by r < 0.9) but are off-mode."""
    from scipy.stats import chi2

    from benchmark.protocols.ground_truth_targets import nearest_mode_radius

    gen = torch.Generator().manual_seed(0)
    means = torch.randn(3, 1, 16, 16, generator=gen, dtype=torch.float64)
    oracle = GaussianMixtureModel(means, std=0.2)
    comp = torch.randint(0, 3, (4000,), generator=gen)
    x0 = means[comp] + 0.2 * torch.randn(4000, 1, 16, 16, generator=gen, dtype=torch.float64)
    radius = nearest_mode_radius(oracle, x0)
    brute = torch.stack([((x0 - m) ** 2).flatten(1).sum(1) for m in means], 1).amin(1) / 0.04
    torch.testing.assert_close(radius, brute)
    assert abs(float((radius > chi2.ppf(0.99, 256)).double().mean()) - 0.01) < 0.006
    near_mid = 0.52 * means[0] + 0.48 * means[1]
    assert float(mode_responsibility(oracle, near_mid[None])) > 0.9
    assert float(nearest_mode_radius(oracle, near_mid[None])) > chi2.ppf(0.99, 256)


def test_stratified_auroc_interval_keeps_both_classes():
    rng = np.random.default_rng(0)
    label = np.zeros(40)
    label[:3] = 1  # a rare class: plain resampling would often lose it
    score = rng.normal(size=40) + 2 * label
    ci = auroc_ci(label, score, n_boot=200, seed=0)
    assert np.isfinite(ci.low) and np.isfinite(ci.high) and ci.low <= ci.value <= ci.high
    assert np.isnan(auroc_ci(np.zeros(10), score[:10], 50, 0).value)
