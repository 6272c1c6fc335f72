"""The `sensitivity` estimator (De Vita & Belagiannis, Alg. 1) against closed forms of a single Gaussian.

Closed form. Data x0 ~ N(mu, s^2 I) (GaussianMixtureModel with K = 1). With ab = ab_t, a = sqrt(ab),
sig = sqrt(1 - ab), v = a^2 s^2 + sig^2 and c = sig / v, the exact noise prediction is affine:
    eps(x) = c (x - a mu).
Alg. 1 at x_t with e0 = eps(x_t):  x0_hat = (x_t - sig e0) / a,  x^i = a x0_hat + sig n_i = x_t - sig e0 + sig n_i,
    eps(x^i) = c (x_t - a mu) - c sig e0 + c sig n_i = (1 - c sig) e0 + c sig n_i,     n_i ~ N(0, I).
  center="mean": the unbiased variance over i of eps(x^i) has expectation   E[U] = (c sig)^2 = (sig^2 / v)^2,
      the same for every pixel and every x_t.
  center="prediction": eps(x^i) - e0 = c sig (n_i - e0), so   E[U] = (c sig)^2 (1 + e0^2)   per pixel:
      larger than the mean-centred value by the squared prediction itself.
  clip_x0: with x0c = clamp(x0_hat, -1, 1), eps(x^i) = c a (x0c - mu) + c sig n_i: the spread is unchanged
      (mean: (c sig)^2), the offset is not (prediction: (c a (x0c - mu) - e0)^2 + (c sig)^2).
With M draws the per-pixel estimate has relative standard error about sqrt(2 / M) (mean) and at most
sqrt(2 / M) (prediction), i.e. 2.2 % for M = 4000.
"""
from __future__ import annotations

import math

import pytest
import torch

import estimators
from benchmark.errors import ConfigError
from benchmark.models import DiffusersUNet, GaussianMixtureModel
from benchmark.sampling import initial_labels, initial_noise, sample
from estimators.base import EstimatorResult, UncertaintyEstimator
from estimators.sensitivity import sensitivity_variance
from tests.helpers import tiny_unet

MU = torch.tensor([[[[0.3, -0.5], [0.8, 0.0]]]], dtype=torch.float64)  # [1,1,2,2]
STD = 0.5


class TrajectoryRecorder(UncertaintyEstimator):
    """Keeps x_t and eps of every step {t: [B,C,H,W]} (no network calls); its result is all zeros."""

    name = "recorder"
    uses_network = False

    def begin(self, batch) -> None:
        super().begin(batch)
        self.x_t: dict[int, torch.Tensor] = {}
        self.eps: dict[int, torch.Tensor] = {}

    def observe(self, step) -> None:
        self.x_t[step.t] = step.x_t.clone()
        self.eps[step.t] = step.eps.clone()

    def result(self) -> EstimatorResult:
        zeros = torch.zeros(self.batch.size, *self.batch.sample_shape)
        return EstimatorResult(pixel=zeros, score=zeros.flatten(1).sum(1))


def gaussian_terms(model: GaussianMixtureModel, t: int) -> tuple[float, float, float]:
    """(a, sig, c) of the single-Gaussian closed form at timestep t."""
    ab = float(model.alphas_cumprod[t])
    a, sig = math.sqrt(ab), math.sqrt(1.0 - ab)
    v = ab * STD**2 + sig**2
    return a, sig, sig / v


def test_both_centres_match_the_closed_form_along_a_ddim_trajectory():
    model = GaussianMixtureModel(MU, STD)
    x_T = initial_noise(0, range(3), model.sample_shape).to(torch.float64)
    mean_est = estimators.create("sensitivity", m=4000, keep_steps=True)
    pred_est = estimators.create("sensitivity", m=4000, center="prediction", keep_steps=True)
    pred_est.name = "sensitivity_prediction"
    recorder = TrajectoryRecorder()
    out = sample(model, x_T, steps=50, estimators=[mean_est, pred_est, recorder])

    mean_res, pred_res = out.uncertainty["sensitivity"], out.uncertainty["sensitivity_prediction"]
    assert sorted(mean_res.per_step) == [20, 40, 60, 80]  # steps 45..48 of the 50-step leading grid
    ratios = []
    for t, u_mean in mean_res.per_step.items():
        a, sig, c = gaussian_terms(model, t)
        e0 = c * (recorder.x_t[t] - a * MU)  # the oracle's prediction, written out
        torch.testing.assert_close(recorder.eps[t], e0)
        expected_mean = torch.full_like(u_mean, (c * sig) ** 2)
        expected_pred = (c * sig) ** 2 * (1.0 + e0.pow(2))
        assert ((u_mean / expected_mean - 1).abs() < 0.1).all()
        assert ((pred_res.per_step[t] / expected_pred - 1).abs() < 0.1).all()
        ratios.append((u_mean / expected_mean).mean())
        ratios.append((pred_res.per_step[t] / expected_pred).mean())
    assert all(abs(float(r) - 1) < 0.02 for r in ratios)  # pooled over 12 pixels per step
    # The two centres differ by the factor 1 + e0^2 (at least 20 % here on some pixel).
    assert max(float((recorder.eps[t].pow(2)).max()) for t in mean_res.per_step) > 0.2
    # Aggregation: pixel map = sum over the window, score = sum over pixels.
    torch.testing.assert_close(mean_res.pixel, sum(mean_res.per_step.values()))
    torch.testing.assert_close(mean_res.score, mean_res.pixel.flatten(1).sum(1))


def test_clip_x0_closed_form_at_a_noisy_step():
    model = GaussianMixtureModel(MU, STD)
    t = 300
    a, sig, c = gaussian_terms(model, t)
    offsets = torch.tensor([[[[9.0, -0.5], [-9.0, 1.0]]], [[[0.3, 9.0], [-1.0, -9.0]]]], dtype=torch.float64)
    x_t = a * MU + offsets  # x0_hat = mu + (a s^2 / v) offset leaves [-1, 1] on the large offsets
    e0 = model.eps(x_t, t)
    x0c = ((x_t - sig * e0) / a).clamp(-1, 1)
    clipped = ((x_t - sig * e0) / a).abs() > 1
    assert clipped.sum() == 4 and (~clipped).sum() == 4
    noise = torch.randn((4000, *x_t.shape), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ab = float(model.alphas_cumprod[t])
    u_mean = sensitivity_variance(model, x_t, e0, t, ab, noise, center="mean", clip_x0=True)
    u_pred = sensitivity_variance(model, x_t, e0, t, ab, noise, center="prediction", clip_x0=True)
    expected_pred = (c * a * (x0c - MU) - e0).pow(2) + (c * sig) ** 2
    assert ((u_mean / (c * sig) ** 2 - 1).abs() < 0.1).all()
    assert ((u_pred / expected_pred - 1).abs() < 0.1).all()


def test_small_m_is_unbiased():
    """With M = 2 the mean-centred U is the Bessel-corrected variance: E[U] = (c sig)^2, not half of it.

    The prediction-centred U has no such factor (its centre is not estimated): E[U] = (c sig)^2 (1 + e0^2).
    Pooled over 8000 pixels the relative standard error is about 1.6 %.
    """
    model = GaussianMixtureModel(MU, STD)
    t = 100
    a, sig, c = gaussian_terms(model, t)
    ab = float(model.alphas_cumprod[t])
    gen = torch.Generator().manual_seed(3)
    x_t = a * MU + math.sqrt(ab * STD**2 + sig**2) * torch.randn((2000, 1, 2, 2), generator=gen, dtype=torch.float64)
    e0 = model.eps(x_t, t)
    noise = torch.randn((2, *x_t.shape), generator=gen, dtype=torch.float64)
    u_mean = sensitivity_variance(model, x_t, e0, t, ab, noise, center="mean")
    u_pred = sensitivity_variance(model, x_t, e0, t, ab, noise, center="prediction")
    assert abs(float(u_mean.mean()) / (c * sig) ** 2 - 1) < 0.06
    assert abs(float((u_pred / (1 + e0.pow(2))).mean()) / (c * sig) ** 2 - 1) < 0.06


def test_nfe_of_the_paper_setting_and_window_scaling(gmm):
    x_T = initial_noise(0, range(2), gmm.sample_shape)
    out = sample(gmm, x_T, steps=50, estimators=["sensitivity"])
    assert out.nfe == 50 and out.uncertainty["sensitivity"].nfe == 20  # 50 + 4 steps x M = 5
    assert out.uncertainty["sensitivity"].seconds > 0
    assert out.uncertainty["sensitivity"].per_step is None
    short = sample(gmm, x_T, steps=25, estimators=[estimators.create("sensitivity", m=3, keep_steps=True)])
    res = short.uncertainty["sensitivity"]
    assert res.nfe == 2 * 3 and sorted(res.per_step) == [40, 80]  # window (45, 49) -> steps 22, 23 of 25


def test_estimator_does_not_change_the_trajectory(gmm):
    x_T = initial_noise(3, range(2), gmm.sample_shape)
    plain = sample(gmm, x_T, steps=20)
    with_est = sample(gmm, x_T, steps=20, estimators=["sensitivity"])
    assert torch.equal(plain.x0, with_est.x0)


def test_maps_depend_on_the_sample_index_only(single_thread):
    """Class-conditional tiny UNet: batch of 4 vs batches of 2 give the same maps (labels repeated copy-major)."""
    model = DiffusersUNet(tiny_unet(num_classes=3))
    indices = list(range(4))
    x_T = initial_noise(5, indices, model.sample_shape)
    y = initial_labels(5, indices, 3)
    assert len(set(y.tolist())) > 1

    def run(rows: list[int]) -> EstimatorResult:
        est = estimators.create("sensitivity", m=3, window=(40, 50), keep_steps=True)
        return sample(model, x_T[rows], steps=10, y=y[rows], estimators=[est], seed=5,
                      indices=rows).uncertainty["sensitivity"]

    full, first, second = run(indices), run([0, 1]), run([2, 3])
    torch.testing.assert_close(full.pixel, torch.cat([first.pixel, second.pixel]), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(full.score, torch.cat([first.score, second.score]), rtol=1e-5, atol=1e-7)
    # A different label changes the map: the labels really reach the re-noised copies.
    swapped = estimators.create("sensitivity", m=3, window=(40, 50))
    other = sample(model, x_T[:1], steps=10, y=(y[:1] + 1) % 3, estimators=[swapped], seed=5, indices=[0])
    assert not torch.allclose(other.uncertainty["sensitivity"].pixel, full.pixel[:1])


@pytest.mark.parametrize("field, value", [
    ("m", 1), ("m", 2.5), ("window", (49, 45)), ("window", (0, 51)), ("window", "45-49"),
    ("center", "median"), ("clip_x0", "yes"), ("keep_steps", 1),
])
def test_bad_parameters_name_the_field(field, value):
    with pytest.raises(ConfigError) as err:
        estimators.create("sensitivity", **{field: value})
    assert err.value.field == field


def test_unknown_parameter_is_refused():
    with pytest.raises(ConfigError, match="percentile"):
        estimators.create("sensitivity", percentile=95)
