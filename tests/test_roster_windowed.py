"""x0_trajectory, flip, zigzag and noise_perturbation against brute-force loops and closed forms.

Closed forms use a single Gaussian N(mu, s^2 I) (GaussianMixtureModel with K = 1), whose exact noise
prediction is affine, eps(x) = c (x - a mu) with c = s_t / v_t (see tests/test_sensitivity.py):
- noise_perturbation: eps(x + sigma n_i) = eps(x) + c sigma n_i, so U_t = (c sigma)^2 Var_i(n_i) exactly.
- flip on an elementwise-linear model eps(x) = w * x: F(eps(F x)) = F(w) * x, so U_t = ((w - F(w)) x)^2.
"""
from __future__ import annotations

import math

import pytest
import torch

import estimators
from benchmark.errors import ConfigError
from benchmark.models import GaussianMixtureModel
from benchmark.models.base import DiffusionModel, linear_beta_alphas_cumprod
from benchmark.sampling import build_grid, initial_noise, sample
from estimators.noise_perturbation import perturbation_variance
from estimators.sensitivity import sensitivity_variance
from estimators.zigzag import zigzag_variance
from tests.test_sensitivity import MU, STD, TrajectoryRecorder, gaussian_terms


class ElementwiseLinear(DiffusionModel):
    """eps(x, t) = w * x with a fixed, left-right asymmetric weight map w [1,1,2,3] (no learned parts)."""

    def __init__(self) -> None:
        super().__init__(alphas_cumprod=linear_beta_alphas_cumprod(), sample_shape=(1, 2, 3))
        self.register_buffer("w", torch.tensor([[[[0.2, 0.5, 0.9], [1.1, -0.3, 0.4]]]], dtype=torch.float64))

    def predict_eps(self, x, t, y=None):
        return self.w.to(x.dtype) * x


# ---------------------------------------------------------------------------------------------- x0_trajectory
def test_x0_trajectory_equals_a_loop_over_stored_predictions(gmm):
    x_T = initial_noise(0, range(3), gmm.sample_shape).to(torch.float64)
    recorder = TrajectoryRecorder()
    out = sample(gmm, x_T, steps=50, estimators=[estimators.create("x0_trajectory", last_steps=10), recorder])
    res = out.uncertainty["x0_trajectory"]
    assert res.nfe == 0 and out.nfe == 50
    grid = build_grid("ddim", gmm.alphas_cumprod, 50)
    last = [g.t for g in grid[-10:]]
    preds = []
    for t in last:  # x0_hat written out from the stored states and predictions
        ab = float(gmm.alphas_cumprod[t])
        preds.append((recorder.x_t[t] - math.sqrt(1 - ab) * recorder.eps[t]) / math.sqrt(ab))
    mean = sum(preds) / len(preds)
    expected = sum((p - mean) ** 2 for p in preds) / (len(preds) - 1)
    torch.testing.assert_close(res.pixel, expected)
    torch.testing.assert_close(res.score, expected.flatten(1).sum(1))


def test_x0_trajectory_scales_last_steps_and_validates(gmm):
    x_T = initial_noise(0, range(2), gmm.sample_shape)
    est = estimators.create("x0_trajectory", last_steps=10)
    sample(gmm, x_T, steps=25, estimators=[est])
    assert len(est._predictions) == 5  # 10 of 50 -> 5 of 25
    one = sample(gmm, x_T, steps=1, estimators=["x0_trajectory"])  # a one-step run: no variance
    assert float(one.uncertainty["x0_trajectory"].score.abs().sum()) == 0.0
    for bad in (1, 51, 2.5, True):
        with pytest.raises(ConfigError, match="last_steps"):
            estimators.create("x0_trajectory", last_steps=bad)


def test_x0_trajectory_flags_samples_between_modes():
    """Mode interpolation (Aithal et al.): two far-apart modes and a score that blends them smoothly.

    The 'learned' model is the exact two-mode mixture score whose responsibilities see a variance inflated by
    tau = 1 (v_t + tau instead of v_t): like a network, it cannot represent the sharp switch between modes at
    small t, so some trajectories end between the modes. Samples whose final x0 is farther than 0.4 (= 4 s
    sqrt(d), d = 4 pixels) from both means are 'between modes'; the score must rank them first.
    (Measured: 68 of 300 between modes; AUROC 0.94 with the last 5 steps, 0.74 with 10, 0.20 with 20: the
    signal lives in the very last steps.)
    """
    from sklearn.metrics import roc_auc_score

    means = torch.zeros(2, 1, 2, 2, dtype=torch.float64)
    means[0] -= 0.7
    means[1] += 0.7

    class SmoothedMixture(GaussianMixtureModel):
        def responsibilities(self, x_t, t):
            x = x_t.to(torch.float64)
            t = self._timesteps(t, x.shape[0], x.device)
            a, _, v = self._coefficients(t, x)
            diff = x.unsqueeze(1) - a.unsqueeze(1) * self.means.unsqueeze(0)
            logits = self.log_weights - diff.pow(2).flatten(2).sum(-1) / (2 * (v.view(-1, 1) + 1.0))
            return torch.softmax(logits, dim=1)

    model = SmoothedMixture(means, std=0.05)
    x_T = initial_noise(1, range(300), model.sample_shape).to(torch.float64)
    out = sample(model, x_T, steps=50, estimators=[estimators.create("x0_trajectory", last_steps=5)])
    dist = (out.x0.unsqueeze(1) - means.unsqueeze(0)).flatten(2).norm(dim=-1).min(1).values
    between = (dist > 0.4).numpy()
    assert 30 < between.sum() < 270
    auroc = roc_auc_score(between, out.uncertainty["x0_trajectory"].score.numpy())
    assert auroc > 0.9, auroc


# ---------------------------------------------------------------------------------------------- flip
def test_flip_matches_the_manual_flip_of_a_known_model():
    model = ElementwiseLinear()
    x_T = initial_noise(0, range(2), model.sample_shape).to(torch.float64)
    recorder = TrajectoryRecorder()
    out = sample(model, x_T, steps=50, estimators=[estimators.create("flip", keep_steps=True), recorder])
    res = out.uncertainty["flip"]
    assert res.nfe == 4  # 1 x steps 45..48
    w_flipped = torch.flip(model.w, dims=(-1,))
    assert sorted(res.per_step) == [20, 40, 60, 80]
    for t, u in res.per_step.items():
        torch.testing.assert_close(u, ((model.w - w_flipped) * recorder.x_t[t]).pow(2))
    torch.testing.assert_close(res.pixel, sum(res.per_step.values()))
    # the middle column is its own mirror image: no disagreement there
    assert float(res.pixel[..., 1].abs().max()) == 0.0


def test_flip_public_code_options_vertical_axis_and_x0_hat_input():
    """axis="vertical", input="x0_hat": U = (w x_t - F_v(w) x0c)^2 with x0c = clip((x_t - s w x_t) / a)."""
    model = ElementwiseLinear()
    x_T = 3 * initial_noise(0, range(2), model.sample_shape).to(torch.float64)
    recorder = TrajectoryRecorder()
    est = estimators.create("flip", axis="vertical", input="x0_hat", keep_steps=True)
    res = sample(model, x_T, steps=50, estimators=[est, recorder]).uncertainty["flip"]
    w_vertical = torch.flip(model.w, dims=(-2,))
    for t, u in res.per_step.items():
        ab = float(model.alphas_cumprod[t])
        x_t = recorder.x_t[t]
        x0c = ((x_t - math.sqrt(1 - ab) * model.w * x_t) / math.sqrt(ab)).clamp(-1, 1)
        torch.testing.assert_close(u, (model.w * x_t - w_vertical * x0c).pow(2))
    for field, value in (("axis", "diagonal"), ("input", "x0")):
        with pytest.raises(ConfigError, match=field):
            estimators.create("flip", **{field: value})


def test_flip_of_a_flip_equivariant_model_is_zero():
    model = GaussianMixtureModel(torch.zeros(1, 1, 2, 2, dtype=torch.float64), std=0.3)  # symmetric mean
    x_T = initial_noise(0, range(2), model.sample_shape).to(torch.float64)
    out = sample(model, x_T, steps=10, estimators=[estimators.create("flip", window=(0, 50))])
    assert out.uncertainty["flip"].nfe == 10
    assert float(out.uncertainty["flip"].score.abs().max()) < 1e-20


# ---------------------------------------------------------------------------------------------- zigzag
def test_zigzag_with_one_pass_is_sensitivity():
    model = GaussianMixtureModel(MU, STD)
    t = 200
    ab = float(model.alphas_cumprod[t])
    gen = torch.Generator().manual_seed(0)
    x_t = torch.randn((3, 1, 2, 2), generator=gen, dtype=torch.float64)
    eps = model.eps(x_t, t)
    noise = torch.randn((1, 6, 3, 1, 2, 2), generator=gen, dtype=torch.float64)
    for center in ("mean", "prediction"):
        expected = sensitivity_variance(model, x_t, eps, t, ab, noise[0], center=center, clip_x0=True)
        torch.testing.assert_close(zigzag_variance(model, x_t, eps, t, ab, noise, center=center), expected)


def test_zigzag_equals_a_per_copy_loop_and_counts_its_nfe():
    model = GaussianMixtureModel(MU, STD)
    t, m, zigzags = 400, 3, 4
    a, sig, _ = gaussian_terms(model, t)
    ab = float(model.alphas_cumprod[t])
    gen = torch.Generator().manual_seed(1)
    x_t = 1.5 * torch.randn((2, 1, 2, 2), generator=gen, dtype=torch.float64)
    eps = model.eps(x_t, t)
    noise = torch.randn((zigzags, m, 2, 1, 2, 2), generator=gen, dtype=torch.float64)
    finals = []
    for copy in range(m):  # one copy at a time, one pass at a time
        z = ((x_t - sig * eps) / a).clamp(-1, 1)
        for j in range(zigzags):
            x = a * z + sig * noise[j, copy]
            e = model.eps(x, t)
            z = (x - sig * e) / a
        finals.append(e)
    expected = sum((e - eps) ** 2 for e in finals) / m
    model.reset_nfe()
    torch.testing.assert_close(zigzag_variance(model, x_t, eps, t, ab, noise), expected)
    assert model.nfe_counter["sampler"] == m * zigzags * 2  # rows: M x Z x B
    x_T = initial_noise(0, range(2), model.sample_shape).to(torch.float64)
    out = sample(model, x_T, steps=50, estimators=[estimators.create("zigzag", m=3, num_zigzag=2)])
    assert out.uncertainty["zigzag"].nfe == 3 * 2 * 10  # M x Z x steps 40..49


# ---------------------------------------------------------------------------------------------- noise_perturbation
def test_noise_perturbation_closed_form_on_a_single_gaussian():
    model = GaussianMixtureModel(MU, STD)
    t, sigma = 300, 0.2
    _, _, c = gaussian_terms(model, t)
    gen = torch.Generator().manual_seed(4)
    x_t = torch.randn((3, 1, 2, 2), generator=gen, dtype=torch.float64)
    noise = torch.randn((7, 3, 1, 2, 2), generator=gen, dtype=torch.float64)
    u = perturbation_variance(model, x_t, t, sigma, noise)
    torch.testing.assert_close(u, (c * sigma) ** 2 * noise.var(dim=0, unbiased=True))  # exact, draw by draw
    big = torch.randn((4000, 3, 1, 2, 2), generator=gen, dtype=torch.float64)
    u_big = perturbation_variance(model, x_t, t, sigma, big)
    assert abs(float(u_big.mean()) / (c * sigma) ** 2 - 1) < 0.02  # unbiased: E[U] = (c sigma)^2


def test_noise_perturbation_nfe_and_validation(gmm):
    x_T = initial_noise(0, range(2), gmm.sample_shape)
    out = sample(gmm, x_T, steps=50, estimators=[estimators.create("noise_perturbation", m=4, sigma=0.05)])
    assert out.uncertainty["noise_perturbation"].nfe == 16 and out.nfe == 50
    for field, value in (("sigma", 0.0), ("sigma", float("nan")), ("m", 1), ("window", (10, 5))):
        with pytest.raises(ConfigError, match=field):
            estimators.create("noise_perturbation", **{field: value})


def test_kinds_and_estimators_leave_the_trajectory_unchanged(gmm):
    kinds = {"x0_trajectory": "heuristic", "flip": "heuristic", "zigzag": "aleatoric",
             "noise_perturbation": "aleatoric"}
    for name, kind in kinds.items():
        cls = estimators.get_class(name)
        assert cls.kind == kind and cls.reference_row is False
    x_T = initial_noise(0, range(2), gmm.sample_shape)
    plain = sample(gmm, x_T, steps=20)
    observed = sample(gmm, x_T, steps=20, estimators=list(kinds))
    torch.testing.assert_close(observed.x0, plain.x0)
