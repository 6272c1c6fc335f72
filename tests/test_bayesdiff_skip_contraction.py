"""BayesDiff-Skip's skipped steps carry the flow's contraction (issue 24 item 1).

References, none produced by the code under test:
- Gaussian data x_0 ~ N(m_p, sigma_p^2) per pixel: the exact score eps*(x_t) = s_t (x_t - a_t m) / (a_t^2 sigma^2
  + s_t^2) is affine with slope J_t = s_t / (ab_t sigma^2 + 1 - ab_t) (the analytic mixture with one component
  gives the same eps, checked). A skipped step of x_prev = k x + c eps*(x) + n z maps Var V to (k + c J_t)^2 V + n^2
  exactly; for DPM-Solver-2 J_eff = (1 - w) J_t + w J_mid (mx + me J_t) with J_mid at alphas_cumprod[t_mid].
- the same contraction by brute force: central finite differences of the exact-score DDIM flow over a run of
  skipped steps.
- the gmm preset's network: Skip drops c^2 Var[eps] on 4 of 5 steps and should carry the rest like full
  BayesDiff, so its summed Var[x_0] lies below full BayesDiff's and near 1/skip of it (the old k^2 rule gave
  about 1200x full).
"""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import estimators
from benchmark.errors import ConfigError
from benchmark.models import DiffusionModel, GaussianMixtureModel, linear_beta_alphas_cumprod
from benchmark.sampling import build_grid, initial_noise, sample

pytestmark = pytest.mark.usefixtures("single_thread")

SHAPE = (1, 2, 2)
MEAN = torch.tensor([0.3, -0.5, 0.8, 0.0], dtype=torch.float64).view(1, *SHAPE)
STD = torch.tensor([0.1, 0.3, 0.6, 1.0], dtype=torch.float64).view(1, *SHAPE)  # per-pixel data std
EPS_VAR = 0.04


class GaussianScore(DiffusionModel):
    """The exact score of x_0 ~ N(MEAN, STD^2) per pixel, as a 1x1 identity conv on features J_t (x - a_t m)."""

    def __init__(self, mean: torch.Tensor = MEAN, std: torch.Tensor = STD) -> None:
        super().__init__(alphas_cumprod=linear_beta_alphas_cumprod(), sample_shape=SHAPE)
        self.mean, self.std = mean, std
        self.head = nn.Conv2d(1, 1, 1).double()
        with torch.no_grad():
            self.head.weight.fill_(1.0)
            self.head.bias.fill_(0.0)

    @property
    def last_layer(self) -> nn.Module:
        return self.head

    def predict_features(self, x, t, y=None):
        ab = self.alphas_cumprod.to(torch.float64)[torch.as_tensor(t)].view(-1, 1, 1, 1)
        return (1 - ab).sqrt() * (x - ab.sqrt() * self.mean) / (ab * self.std**2 + 1 - ab)

    def predict_eps(self, x, t, y=None):
        return self.head(self.predict_features(x, t, y))


class ConstantVariance:
    """A stand-in posterior whose predictive Var[eps] is EPS_VAR everywhere."""

    def check_compatible(self, model) -> None:
        return None

    def variance_from_features(self, features: torch.Tensor, t=None) -> torch.Tensor:
        return torch.full_like(features, EPS_VAR)

    def mixture_variance(self, parts) -> torch.Tensor:  # DPM-Solver-2's mixed evaluations: the same constant
        return torch.full_like(parts[0][1], EPS_VAR)


def exact_slope(ab: float, std: torch.Tensor = STD) -> torch.Tensor:
    """d eps*/dx_t = s_t / (ab_t sigma^2 + 1 - ab_t) per pixel."""
    return math.sqrt(1 - ab) / (ab * std**2 + 1 - ab)


def exact_effective_slope(g, alphas_cumprod: torch.Tensor, std: torch.Tensor = STD) -> torch.Tensor:
    slope = exact_slope(g.ab_t, std)
    if g.t_mid is None:
        return slope
    slope_mid = exact_slope(float(alphas_cumprod[g.t_mid]), std)
    return (1 - g.mid_weight) * slope + g.mid_weight * slope_mid * (g.mid_x_coef + g.mid_eps_coef * slope)


def run_skip(model, sampler: str, steps: int, skip: int, batch: int = 2, **params):
    idx = torch.arange(batch)
    x_T = initial_noise(0, idx, model.sample_shape).to(torch.float64)
    est = estimators.create("bayesdiff", laplace=ConstantVariance(), mc_samples=4, skip=skip, keep_steps=True,
                            **params)
    grid = build_grid(sampler, model.alphas_cumprod, steps)
    res = sample(model, x_T, sampler=sampler, steps=steps, estimators=[est], seed=0, indices=idx).uncertainty
    states = [res["bayesdiff"].per_step[g.t] for g in grid] + [res["bayesdiff"].pixel]
    return grid, states


def test_the_test_model_is_the_exact_score_of_one_gaussian():
    oracle = GaussianMixtureModel(MEAN, 0.4)
    model = GaussianScore(MEAN, torch.full_like(STD, 0.4))
    x = torch.randn(3, *SHAPE, dtype=torch.float64)
    for t in (999, 500, 20):
        torch.testing.assert_close(model.eps(x, t), oracle.eps(x, t))


@pytest.mark.parametrize("sampler,steps", [("ddim", 20), ("ddpm", 20), ("dpm2", 10)])
def test_skipped_steps_carry_the_exact_gaussian_contraction(sampler, steps):
    """After the first measured slope (uncertainty step `skip`), every skipped step is (k + c J_eff)^2 V + n^2
    with the closed-form J_eff of the data; before it, the documented J_t = 1/s_t (the slope of data with
    sigma = 0), within 1 % of the exact gain there."""
    model, skip = GaussianScore(), 3
    grid, states = run_skip(model, sampler, steps, skip)
    assert float(states[0].abs().max()) == 0.0
    for g, var, nxt in zip(grid, states[:-1], states[1:]):
        c = g.coefficients
        exact_gain = c.x_coef + c.eps_coef * exact_effective_slope(g, model.alphas_cumprod)
        if g.index % skip == 0:  # uncertainty step: the affine closed form with the network's own variance
            torch.testing.assert_close(nxt, exact_gain**2 * var + c.eps_coef**2 * EPS_VAR + c.noise_std**2,
                                       rtol=1e-6, atol=0)
        elif g.index > skip:
            torch.testing.assert_close(nxt, exact_gain**2 * var + c.noise_std**2, rtol=1e-6, atol=0)
        else:  # no slope measured yet: x0 prediction held constant, J = 1/s_t
            held = c.x_coef + c.eps_coef * exact_effective_slope(g, model.alphas_cumprod, torch.zeros_like(STD))
            torch.testing.assert_close(nxt, held**2 * var + c.noise_std**2, rtol=1e-6, atol=0)
            torch.testing.assert_close(nxt, exact_gain**2 * var + c.noise_std**2, rtol=1e-2, atol=0)
        if g.index % skip and sampler == "ddim":
            assert bool(((nxt / var) < c.x_coef**2).all())  # the contraction, not the public k^2


def test_contraction_equals_finite_differences_of_the_exact_flow():
    """Over the skipped run 6..9 of a 20-step DDIM with skip 5, Var grows by (d x_10 / d x_6)^2 per pixel, the
    derivative of the exact-score DDIM flow, by central differences on the analytic one-component mixture."""
    std = 0.3
    oracle = GaussianMixtureModel(MEAN, std)
    grid, states = run_skip(GaussianScore(MEAN, torch.full_like(STD, std)), "ddim", 20, 5, batch=1)
    x = initial_noise(3, torch.arange(1), SHAPE).to(torch.float64)
    delta = 1e-4

    def flow(state: torch.Tensor) -> torch.Tensor:
        for g in grid[6:10]:
            state = g.coefficients.x_coef * state + g.coefficients.eps_coef * oracle.eps(state, g.t)
        return state

    derivative = (flow(x + delta) - flow(x - delta)) / (2 * delta)  # per pixel: the flow is diagonal here
    torch.testing.assert_close(states[10] / states[6], derivative.square(), rtol=1e-6, atol=0)
    assert bool((derivative.abs() < 1).all())  # contracting, while prod k^2 > 1
    assert math.prod(g.coefficients.x_coef for g in grid[6:10]) > 1


def test_public_rule_stays_available_and_is_k_squared():
    grid, states = run_skip(GaussianScore(), "ddpm", 20, 5, skip_rule="public")
    for g, var, nxt in zip(grid, states[:-1], states[1:]):
        if g.index % 5:
            c = g.coefficients
            torch.testing.assert_close(nxt, c.x_coef**2 * var + c.noise_std**2, rtol=1e-9, atol=0)
    with pytest.raises(ConfigError, match="skip_rule"):
        estimators.create("bayesdiff", skip_rule="k2")


def test_skip_variance_on_the_gmm_preset_is_below_full_and_near_one_over_skip():
    """gmm preset network, posterior fitted on 128 exact mixture draws, DDIM 50, S = 10, 4 samples.
    Measured (CPU): full 0.258, skip 5 0.0658 (ratio 0.255); the public k^2 rule 338 (ratio 1311)."""
    from benchmark import presets
    from estimators.laplace import LastLayerLaplace

    preset = presets.get("gmm")
    model = preset.load_model()
    data = preset.load_data("train", n=128).images.clamp(-1, 1)
    laplace = LastLayerLaplace(model).fit([data[:64], data[64:]], num_images=128, seed=0, progress=False)
    idx = torch.arange(4)
    x_T = initial_noise(0, idx, model.sample_shape)
    variants = {"full": dict(skip=1), "skip": dict(skip=5), "public": dict(skip=5, skip_rule="public")}
    made = []
    for name, params in variants.items():
        est = estimators.create("bayesdiff", laplace=laplace, mc_samples=10, **params)
        est.name = name
        made.append(est)
    with torch.no_grad():
        out = sample(model, x_T, sampler="ddim", steps=50, estimators=made, seed=0, indices=idx)
    total = {name: float(out.uncertainty[name].pixel.double().sum()) for name in variants}
    ratio = total["skip"] / total["full"]
    assert 1 / (2 * 5) < ratio < 1, total
    assert total["public"] > 100 * total["full"], total  # the defect the contraction removes
