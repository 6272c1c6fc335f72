"""The `mc_dropout` estimator: hand-computed dropout variance, per-sample seeding, capability errors.

Closed form. For eps(x) = W dropout_p(x) on the flattened pixels, dropout_p(x)_k = x_k z_k / (1 - p) with
independent z_k ~ Bernoulli(1 - p), so Var[z_k / (1 - p)] = p (1 - p) / (1 - p)^2 = p / (1 - p) and
    Var[eps_j] = p / (1 - p) * sum_k W_jk^2 x_k^2.
The unbiased variance of M passes has that expectation; with p = 0.5 (z_k / (1 - p) in {0, 2}, a
two-point law) its relative standard error is about sqrt(1.5 / M) for 4 pixels, i.e. 0.9 % for M = 20000.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

import estimators
from benchmark.errors import CapabilityError, ConfigError
from benchmark.models import DiffusionModel, linear_beta_alphas_cumprod
from benchmark.sampling import initial_noise, sample
from estimators.mc_dropout import mc_dropout_variance
from tests.test_sensitivity import TrajectoryRecorder

P = 0.5


class LinearDropoutModel(DiffusionModel):
    """eps(x, t) = W dropout_p(x) on flattened [C*H*W] pixels (t ignored); weight W [D, D]."""

    def __init__(self, weight: torch.Tensor, p: float, sample_shape: tuple[int, int, int]) -> None:
        super().__init__(alphas_cumprod=linear_beta_alphas_cumprod(), sample_shape=sample_shape)
        self.dropout = nn.Dropout(p)
        self.register_buffer("weight", weight)
        self.eval()

    def predict_eps(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return (self.dropout(x.flatten(1)) @ self.weight.T).view_as(x)


def linear_model() -> LinearDropoutModel:
    weight = torch.tensor([[0.6, -0.3, 0.2, 0.0], [0.1, 0.5, -0.4, 0.3],
                           [-0.2, 0.2, 0.7, 0.1], [0.3, 0.0, -0.1, -0.6]], dtype=torch.float64)
    return LinearDropoutModel(weight, P, (1, 2, 2))


def test_variance_matches_the_hand_computed_dropout_variance():
    model = linear_model()
    x_T = initial_noise(0, range(2), model.sample_shape).to(torch.float64)
    recorder = TrajectoryRecorder()
    est = estimators.create("mc_dropout", m=20000, keep_steps=True)
    rng_before = torch.get_rng_state()
    out = sample(model, x_T, steps=50, estimators=[est, recorder])
    assert torch.equal(torch.get_rng_state(), rng_before)  # the caller's RNG is restored
    assert not model.dropout.training  # dropout switched back off
    res = out.uncertainty["mc_dropout"]
    assert sorted(res.per_step) == [20, 40, 60, 80] and res.nfe == 4 * 20000
    for t, u in res.per_step.items():
        x = recorder.x_t[t].flatten(1)  # [B, D]
        expected = (P / (1 - P) * x.pow(2) @ model.weight.pow(2).T).view_as(u)
        assert ((u / expected - 1).abs() < 0.05).all(), t
    torch.testing.assert_close(res.pixel, sum(res.per_step.values()))
    torch.testing.assert_close(res.score, res.pixel.flatten(1).sum(1))


def test_pure_function_matches_hand_computation_with_other_states():
    model = linear_model()
    x = torch.tensor([[[[1.0, -2.0], [0.5, 3.0]]], [[[0.0, 1.0], [-1.0, 0.2]]]], dtype=torch.float64)
    u = mc_dropout_variance(model, x, 10, 20000, seeds=[11, 12])
    expected = (P / (1 - P) * x.flatten(1).pow(2) @ model.weight.pow(2).T).view_as(u)
    assert ((u / expected - 1).abs() < 0.05).all()
    with pytest.raises(ConfigError, match="seeds"):
        mc_dropout_variance(model, x, 10, 5, seeds=[1])


def test_masks_depend_on_the_sample_index_only(unet_model, single_thread):
    x_T = initial_noise(4, range(4), unet_model.sample_shape)

    def run(rows: list[int], seed: int = 4) -> torch.Tensor:
        est = estimators.create("mc_dropout", m=3, window=(40, 50))
        return sample(unet_model, x_T[rows], steps=10, estimators=[est], seed=seed,
                      indices=rows).uncertainty["mc_dropout"].pixel

    full = run([0, 1, 2, 3])
    torch.testing.assert_close(full, torch.cat([run([0, 1]), run([2, 3])]), rtol=1e-5, atol=1e-8)
    assert (full > 0).all()
    assert not torch.allclose(run([0, 1, 2, 3], seed=5), full)  # other seed, other masks


def test_model_without_dropout_fails_before_any_network_call(gmm):
    gmm.reset_nfe()
    x_T = initial_noise(0, range(2), gmm.sample_shape)
    with pytest.raises(CapabilityError) as err:
        sample(gmm, x_T, steps=10, estimators=["sensitivity", "mc_dropout"])
    assert "mc_dropout" in str(err.value) and "GaussianMixtureModel" in str(err.value)
    assert sum(gmm.nfe_counter.values()) == 0


def test_all_estimators_share_one_trajectory(unet_model, single_thread):
    """sensitivity, mc_dropout and random in one pass: x0 identical to plain sampling, NFEs separated."""
    x_T = initial_noise(7, range(3), unet_model.sample_shape)
    modes = [m.training for m in unet_model.modules()]
    plain = sample(unet_model, x_T, steps=50, seed=7)
    both = sample(unet_model, x_T, steps=50, seed=7, estimators=["sensitivity", "mc_dropout", "random"])
    assert torch.equal(plain.x0, both.x0)
    assert both.nfe == 50
    assert both.uncertainty["sensitivity"].nfe == 20 and both.uncertainty["mc_dropout"].nfe == 20
    assert both.uncertainty["random"].nfe == 0
    for name in ("sensitivity", "mc_dropout"):
        res = both.uncertainty[name]
        assert res.seconds > 0 and res.pixel.shape == x_T.shape and (res.score > 0).all()
    assert [m.training for m in unet_model.modules()] == modes  # dropout switched back off


@pytest.mark.parametrize("field, value", [("m", 1), ("m", "5"), ("window", (3, 3)), ("keep_steps", "no")])
def test_bad_parameters_name_the_field(field, value):
    with pytest.raises(ConfigError) as err:
        estimators.create("mc_dropout", **{field: value})
    assert err.value.field == field


def test_per_sample_masks_match_masks_drawn_alone_and_torch_semantics():
    """draw_masks: sample b's block equals the block drawn for b alone; element / channel dropout rates."""
    from estimators.dropout_masks import draw_masks

    x = torch.ones(3 * 4, 8, 16, 16)  # copies=3, B=4
    gens = lambda seeds: [torch.Generator().manual_seed(s) for s in seeds]  # noqa: E731
    for layer in (nn.Dropout(0.3), nn.Dropout2d(0.3)):
        full = draw_masks(layer, x, gens([5, 6, 7, 8]), 3).reshape(3, 4, 8, *([16, 16] if isinstance(layer, nn.Dropout) else [1, 1]))
        alone = draw_masks(layer, x[:3], gens([7]), 3)
        torch.testing.assert_close(full[:, 2], alone.reshape(full[:, 2].shape))
        torch.testing.assert_close(full.unique(), torch.tensor([0.0, 1 / 0.7]))
        assert abs((full == 0).float().mean().item() - 0.3) < 0.05
    assert draw_masks(nn.Dropout2d(0.5), x, gens(range(4)), 3).shape == (12, 8, 1, 1)  # one draw per channel


def test_all_copies_of_all_samples_go_through_one_network_call(unet_model, single_thread):
    """Batched: one eps call of M x B rows per window step (the cost of a fully batched call)."""
    calls = []
    predict = unet_model.predict_eps
    unet_model.predict_eps = lambda x, *args, **kw: calls.append(x.shape[0]) or predict(x, *args, **kw)
    try:
        est = estimators.create("mc_dropout", m=3, window=(40, 50))
        x_T = initial_noise(4, range(4), unet_model.sample_shape)
        sample(unet_model, x_T, steps=10, estimators=[est], seed=1)
    finally:
        del unet_model.predict_eps
    assert calls.count(12) == 2 and calls.count(4) == 10  # 2 window steps of 3 x 4 rows; 10 sampler steps
