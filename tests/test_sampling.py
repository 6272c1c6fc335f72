"""Samplers against diffusers' schedulers, NFE accounting, batch invariance, user models, bad input.

Reference numbers come from diffusers' DDIMScheduler / DDPMScheduler / DPMSolverSinglestepScheduler run
step by step on the same model and x_T, never from our own sampling code.
"""
from __future__ import annotations

import pytest
import torch

from benchmark.errors import ConfigError
from benchmark.models import DiffusersUNet, DiffusionModel, GaussianMixtureModel
from benchmark.sampling import build_grid, initial_noise, sample
from estimators import UncertaintyEstimator, create
from estimators.base import EstimatorResult
from tests.helpers import tiny_gmm_means, tiny_unet

pytestmark = pytest.mark.usefixtures("single_thread")

T = 1000
BETA_START, BETA_END = 1e-4, 0.02  # the models' default (DDPM linear) schedule


# ----------------------------------------------------------------------------- diffusers references
def _check_same_schedule(model: DiffusionModel, scheduler) -> None:
    """The reference scheduler must run on exactly the model's ab_t (otherwise the comparison is void)."""
    torch.testing.assert_close(scheduler.alphas_cumprod.to(torch.float64), model.alphas_cumprod, rtol=0, atol=0)


def diffusers_ddim(model: DiffusionModel, x_T: torch.Tensor, steps: int) -> torch.Tensor:
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler(num_train_timesteps=T, beta_start=BETA_START, beta_end=BETA_END,
                              beta_schedule="linear", timestep_spacing="leading", steps_offset=0,
                              set_alpha_to_one=True, clip_sample=False)
    _check_same_schedule(model, scheduler)
    scheduler.set_timesteps(steps)
    x = x_T
    with torch.no_grad():
        for t in scheduler.timesteps:
            x = scheduler.step(model.predict_eps(x, t.expand(x.shape[0])), t, x, eta=0.0).prev_sample
    return x


def diffusers_ddpm(model: DiffusionModel, x_T: torch.Tensor, steps: int,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    from diffusers import DDPMScheduler

    scheduler = DDPMScheduler(num_train_timesteps=T, beta_start=BETA_START, beta_end=BETA_END,
                              beta_schedule="linear", variance_type="fixed_small", clip_sample=False,
                              timestep_spacing="leading", steps_offset=0)
    _check_same_schedule(model, scheduler)
    scheduler.set_timesteps(steps)
    x = x_T
    with torch.no_grad():
        for t in scheduler.timesteps:
            x = scheduler.step(model.predict_eps(x, t.expand(x.shape[0])), t, x, generator=generator).prev_sample
    return x


def dpm_scheduler(steps: int):
    """DPM-Solver-2 singlestep as diffusers runs it: 2*steps grid points, orders [1, 2, 1, 2, ...]."""
    from diffusers import DPMSolverSinglestepScheduler

    scheduler = DPMSolverSinglestepScheduler(
        num_train_timesteps=T, beta_start=BETA_START, beta_end=BETA_END, beta_schedule="linear",
        solver_order=2, algorithm_type="dpmsolver", solver_type="midpoint", final_sigmas_type="sigma_min",
        lower_order_final=False)
    scheduler.set_timesteps(2 * steps)
    return scheduler


def diffusers_dpm2(model: DiffusionModel, x_T: torch.Tensor, steps: int) -> torch.Tensor:
    scheduler = dpm_scheduler(steps)
    _check_same_schedule(model, scheduler)
    x = x_T
    with torch.no_grad():
        for t in scheduler.timesteps:
            x = scheduler.step(model.predict_eps(x, t.expand(x.shape[0])), t, x).prev_sample
    return x


def _models() -> dict[str, DiffusionModel]:
    return {"gmm": GaussianMixtureModel(tiny_gmm_means(3, (1, 4, 4)), std=0.2, weights=[0.5, 0.3, 0.2]),
            "unet": DiffusersUNet(tiny_unet())}


MODEL_NAMES = ("gmm", "unet")


@pytest.fixture(scope="module")
def models() -> dict[str, DiffusionModel]:
    return _models()


def _x_T(model: DiffusionModel, n: int = 4, seed: int = 11) -> torch.Tensor:
    return initial_noise(seed, range(n), model.sample_shape)


def assert_x0_close(ours: torch.Tensor, reference: torch.Tensor) -> None:
    """float32 agreement: 1e-5 relative to the sample's scale (and absolute 1e-5)."""
    assert ours.dtype == reference.dtype == torch.float32
    assert torch.isfinite(reference).all()
    scale = max(1.0, float(reference.abs().max()))
    err = float((ours - reference).abs().max())
    assert err <= 1e-5 * scale, f"max |ours - diffusers| = {err:.3g} (scale {scale:.3g})"


# ----------------------------------------------------------------------------- timestep grids
def test_ddim_timesteps_are_diffusers_leading_grid():
    from diffusers import DDIMScheduler

    ab = GaussianMixtureModel(tiny_gmm_means(1), std=0.2).alphas_cumprod
    grid = build_grid("ddim", ab, 50)
    assert [g.t for g in grid] == list(range(980, -1, -20))
    assert [g.t_prev for g in grid] == list(range(960, -1, -20)) + [-1]
    assert grid[-1].ab_prev == 1.0  # set_alpha_to_one
    scheduler = DDIMScheduler(num_train_timesteps=T, timestep_spacing="leading", steps_offset=0)
    for steps in (1, 3, 7, 10, 33, 50, 64, 100, 250, 999, 1000):
        scheduler.set_timesteps(steps)
        for sampler in ("ddim", "ddpm"):
            assert [g.t for g in build_grid(sampler, ab, steps)] == scheduler.timesteps.tolist(), (sampler, steps)


def test_dpm2_timesteps_are_diffusers_grid_for_every_step_count():
    """Solver step i goes s -> t with its midpoint s1: diffusers' grid is [s_0, s1_0, s_1, s1_1, ...]."""
    ab = GaussianMixtureModel(tiny_gmm_means(1), std=0.2).alphas_cumprod
    for steps in [*range(1, 61), 84, 92, 101, 125, 200, 249, 250]:
        grid = build_grid("dpm2", ab, steps)
        expected = dpm_scheduler(steps).timesteps.tolist()
        assert [v for g in grid for v in (g.t, g.t_mid)] == expected, steps
        assert [g.t_prev for g in grid] == expected[2::2] + [0], steps  # the last step lands on t = 0


# ----------------------------------------------------------------------------- x0 against diffusers
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_ddim_matches_diffusers(models, name):
    model = models[name]
    x_T = _x_T(model)
    ours = sample(model, x_T, sampler="ddim", steps=50).x0
    assert_x0_close(ours, diffusers_ddim(model, x_T, 50))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_ddpm_matches_diffusers_with_the_same_generator(models, name):
    """generator= path: both draw the step noise from equal-state generators, in the same order."""
    model = models[name]
    x_T = _x_T(model)
    ours = sample(model, x_T, sampler="ddpm", steps=50, generator=torch.Generator().manual_seed(5)).x0
    reference = diffusers_ddpm(model, x_T, 50, generator=torch.Generator().manual_seed(5))
    assert_x0_close(ours, reference)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_ddpm_matches_diffusers_with_our_per_sample_noise(models, name, monkeypatch):
    """Default path: record the per-sample noise our engine draws, replay it into diffusers' DDPM step."""
    import diffusers.schedulers.scheduling_ddpm as ddpm_module

    import benchmark.sampling.engine as engine

    model = models[name]
    x_T = _x_T(model)
    drawn: list[torch.Tensor] = []
    original = engine.per_sample_randn

    def recording_randn(*args, **kwargs):
        noise = original(*args, **kwargs)
        drawn.append(noise.clone())
        return noise

    monkeypatch.setattr(engine, "per_sample_randn", recording_randn)
    ours = sample(model, x_T, sampler="ddpm", steps=50, seed=3).x0
    assert len(drawn) == 49  # no noise is added on the last step (t = 0)
    assert all(not torch.equal(drawn[0], d) for d in drawn[1:])  # a fresh draw every step

    replay = iter(drawn)

    def replayed_randn(shape, generator=None, device=None, dtype=None, layout=None):
        noise = next(replay)
        assert tuple(noise.shape) == tuple(shape)
        return noise.to(device=device, dtype=dtype)

    monkeypatch.setattr(ddpm_module, "randn_tensor", replayed_randn)
    reference = diffusers_ddpm(model, x_T, 50)
    assert next(replay, None) is None
    assert_x0_close(ours, reference)


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("steps", [10, 13])
def test_dpm2_matches_diffusers_singlestep(models, name, steps):
    model = models[name]
    x_T = _x_T(model)
    result = sample(model, x_T, sampler="dpm2", steps=steps)
    assert_x0_close(result.x0, diffusers_dpm2(model, x_T, steps))
    assert result.nfe == 2 * steps


# ----------------------------------------------------------------------------- NFE accounting
class CallingEstimator(UncertaintyEstimator):
    """Test estimator: per step, `calls` network calls on `copies` stacked copies of the batch."""

    def __init__(self, name: str, calls: int = 1, copies: int = 1, effective: bool = False) -> None:
        self.name, self.calls, self.copies, self.effective = name, calls, copies, effective

    def observe(self, step) -> None:
        x = step.x_t.repeat(self.copies, 1, 1, 1)
        for _ in range(self.calls):
            if self.effective:
                step.effective_eps(x)
            else:
                step.model.eps(x, step.t, step.repeat_labels(self.copies))

    def result(self) -> EstimatorResult:
        b = self.batch.size
        return EstimatorResult(pixel=torch.zeros((b, *self.batch.sample_shape)), score=torch.zeros(b))


@pytest.mark.parametrize("sampler,steps,per_step", [("ddim", 50, 1), ("ddpm", 20, 1), ("dpm2", 10, 2)])
def test_sampler_nfe_per_sample(models, sampler, steps, per_step):
    model = models["gmm"]
    result = sample(model, _x_T(model, n=3), sampler=sampler, steps=steps)
    assert result.nfe == steps * per_step
    assert model.nfe_counter["sampler"] == 3 * steps * per_step  # rows, before dividing by the batch


def test_estimator_nfe_is_attributed_by_name(models):
    model = models["gmm"]
    ests = [CallingEstimator("once"), CallingEstimator("thrice", calls=3),
            CallingEstimator("stacked", copies=4), create("random")]
    result = sample(model, _x_T(model, n=3), sampler="ddim", steps=50, estimators=ests)
    assert result.nfe == 50
    assert {k: v.nfe for k, v in result.uncertainty.items()} == {
        "once": 50, "thrice": 150, "stacked": 200, "random": 0}
    assert all(v.seconds >= 0 for v in result.uncertainty.values()) and result.seconds >= 0


def test_dpm2_effective_eps_costs_two_calls_per_step(models):
    model = models["gmm"]
    est = CallingEstimator("stage_aware", effective=True, copies=2)
    result = sample(model, _x_T(model, n=3), sampler="dpm2", steps=10, estimators=[est])
    assert result.nfe == 20
    assert result.uncertainty["stage_aware"].nfe == 40  # 10 steps x 2 stages x 2 copies


class SlowResultEstimator(CallingEstimator):
    """Spends `pause` seconds in result(): that time is the estimator's, never taken off the sampler's."""

    def __init__(self, name: str, pause: float) -> None:
        super().__init__(name, calls=0)
        self.pause = pause

    def result(self) -> EstimatorResult:
        import time

        time.sleep(self.pause)
        return super().result()


def test_estimator_time_is_not_charged_to_the_sampler(models):
    model = models["gmm"]
    result = sample(model, _x_T(model, n=2), steps=10, estimators=[SlowResultEstimator("slow", 0.3)])
    assert result.uncertainty["slow"].seconds >= 0.3
    assert 0 < result.seconds < 0.3  # ten GMM steps; the pause after the loop is not subtracted from them


# ----------------------------------------------------------------------------- batch invariance
@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("sampler", ["ddim", "ddpm", "dpm2"])
def test_batch_size_does_not_change_samples(models, name, sampler):
    """12 images in one batch of 12 or in batches of 5, 5, 2 (indices passed) give the same x0 and maps."""
    model = models[name]
    seed, n, steps = 21, 12, 10
    full_x_T = initial_noise(seed, range(n), model.sample_shape)
    full = sample(model, full_x_T, sampler=sampler, steps=steps, seed=seed, estimators=["random"])
    parts, maps = [], []
    for start in range(0, n, 5):
        idx = list(range(start, min(start + 5, n)))
        x_T = initial_noise(seed, idx, model.sample_shape)
        assert torch.equal(x_T, full_x_T[idx])
        part = sample(model, x_T, sampler=sampler, steps=steps, seed=seed, indices=idx, estimators=["random"])
        parts.append(part.x0)
        maps.append(part.uncertainty["random"].pixel)
    assert torch.equal(torch.cat(maps), full.uncertainty["random"].pixel)
    # the maps above are per-sample seeded draws (no arithmetic): the same bits. Network and mixture arithmetic on
    # other batch shapes may round differently on some CPUs (BLAS/conv kernels choose by shape): a tolerance of a
    # few ulps per call, float64 for the mixture, float32 for the networks
    if name == "gmm":
        torch.testing.assert_close(torch.cat(parts), full.x0, rtol=1e-12, atol=1e-12)
    else:
        scale = float(full.x0.abs().max())
        assert float((torch.cat(parts) - full.x0).abs().max()) <= 1e-6 * scale


def test_ddpm_noise_depends_on_seed_and_index(models):
    model = models["gmm"]
    x_T = initial_noise(0, [0, 0], model.sample_shape)  # the same x_T twice
    same_index = sample(model, x_T, sampler="ddpm", steps=10, seed=1, indices=[4, 4]).x0
    assert torch.equal(same_index[0], same_index[1])
    other_index = sample(model, x_T, sampler="ddpm", steps=10, seed=1, indices=[4, 5]).x0
    assert not torch.equal(other_index[0], other_index[1])
    other_seed = sample(model, x_T, sampler="ddpm", steps=10, seed=2, indices=[4, 4]).x0
    assert not torch.equal(other_seed[0], same_index[0])


# ----------------------------------------------------------------------------- a user's own model
class LinearGaussianModel(DiffusionModel):
    """Written as a user outside the package would: data N(mu, s^2 I), exact noise prediction.

    x_t = a_t x0 + s_t n with x0 ~ N(mu, s^2 I) gives x_t ~ N(a_t mu, v_t I), v_t = a_t^2 s^2 + s_t^2, and
    E[n | x_t] = Cov(n, x_t) Var(x_t)^-1 (x_t - a_t mu) = s_t (x_t - a_t mu) / v_t.
    """

    def __init__(self, mu: torch.Tensor, s: float) -> None:
        betas = torch.linspace(BETA_START, BETA_END, T, dtype=torch.float32)
        super().__init__(alphas_cumprod=torch.cumprod(1 - betas, 0), sample_shape=tuple(mu.shape))
        self.mu, self.s = mu.to(torch.float64), s

    def predict_eps(self, x, t, y=None):
        ab = self.alphas_cumprod[t].view(-1, 1, 1, 1)
        v = ab * self.s**2 + (1 - ab)
        return ((1 - ab).sqrt() * (x.double() - ab.sqrt() * self.mu) / v).to(x.dtype)


@pytest.mark.parametrize("sampler,steps", [("ddim", 20), ("ddpm", 20), ("dpm2", 10)])
def test_user_model_samples_through_every_sampler(sampler, steps):
    mu = tiny_gmm_means(1, (2, 3, 3), seed=4)[0]
    user = LinearGaussianModel(mu, s=0.3)
    oracle = GaussianMixtureModel(mu[None], std=0.3)  # the same distribution, built in
    x_T = initial_noise(8, range(5), user.sample_shape)
    ours = sample(user, x_T, sampler=sampler, steps=steps, seed=8, estimators=["random"])
    reference = sample(oracle, x_T, sampler=sampler, steps=steps, seed=8)
    assert ours.x0.shape == (5, 2, 3, 3) and torch.isfinite(ours.x0).all()
    torch.testing.assert_close(ours.x0, reference.x0, rtol=1e-5, atol=1e-6)
    assert ours.nfe == steps * (2 if sampler == "dpm2" else 1)
    assert ours.uncertainty["random"].pixel.shape == (5, 2, 3, 3)


# ----------------------------------------------------------------------------- estimators do not perturb
@pytest.mark.parametrize("sampler", ["ddim", "ddpm", "dpm2"])
def test_random_estimator_leaves_the_trajectory_unchanged(models, sampler):
    model = models["gmm"]
    x_T = _x_T(model, n=3)
    plain = sample(model, x_T, sampler=sampler, steps=10, seed=2)
    observed = sample(model, x_T, sampler=sampler, steps=10, seed=2, estimators=["random"])
    assert torch.equal(plain.x0, observed.x0)
    assert observed.uncertainty["random"].score.shape == (3,)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs,field", [
    ({"sampler": "euler"}, "sampler"),
    ({"steps": 0}, "steps"),
    ({"steps": -3}, "steps"),
    ({"steps": 1001}, "steps"),
    ({"steps": 2.5}, "steps"),
    ({"steps": "50"}, "steps"),
    ({"steps": True}, "steps"),
    ({"sampler": "dpm2", "steps": 251}, "steps"),
    ({"indices": [0, 1, 2]}, "indices"),
])
def test_bad_sampling_arguments_name_the_field(models, kwargs, field):
    model = models["gmm"]
    with pytest.raises(ConfigError) as err:
        sample(model, _x_T(model, n=2), **kwargs)
    assert err.value.field == field
    assert field in str(err.value)


def test_unknown_sampler_lists_the_valid_ones(models):
    with pytest.raises(ConfigError, match="ddim.*ddpm.*dpm2"):
        sample(models["gmm"], _x_T(models["gmm"]), sampler="heun")


@pytest.mark.parametrize("shape", [(2, 1, 8, 8), (2, 2, 4, 4), (1, 4, 4), (2, 16)])
def test_wrong_x_T_shape_names_the_field(models, shape):
    with pytest.raises(ConfigError) as err:
        sample(models["gmm"], torch.zeros(shape))
    assert err.value.field == "x_T"
    assert "1, 4, 4" in str(err.value)  # says which shape is expected


def test_numpy_integer_steps_are_accepted(models):
    import numpy as np

    model = models["gmm"]
    x_T = _x_T(model, n=2)
    assert torch.equal(sample(model, x_T, steps=np.int64(10)).x0, sample(model, x_T, steps=10).x0)
