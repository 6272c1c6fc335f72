"""[protocols.guidance] options (issue 11 item 6): center, clip_x0 and Alg. 2's calibrated step-wise thresholds.

The calibrated tau_t is checked against a brute-force recomputation: a plain trajectory is recorded, U_t is
recomputed at every guided step from the recorded (x_t, eps) with Alg. 1 written out here (re-noise x0_hat,
variance of eps over the copies) and the guidance's documented draws, and numpy's percentile is taken over all
pixels of all calibration samples.
"""
from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from benchmark.models import GaussianMixtureModel
from benchmark.protocols import guided
from benchmark.sampling import initial_noise, sample
from benchmark.seeding import per_sample_randn
from estimators.base import EstimatorResult, UncertaintyEstimator
from estimators.guidance import NOISE_STREAM, UncertaintyGuidance, calibrate_thresholds
from tests.helpers import tiny_gmm_means


class Recorder(UncertaintyEstimator):
    name = "recorder"
    uses_network = False

    def begin(self, batch) -> None:
        super().begin(batch)
        self.states: dict[int, tuple[int, int, torch.Tensor, torch.Tensor]] = {}

    def observe(self, step) -> None:
        self.states[step.t] = (step.index, step.ab_t, step.x_t.clone(), step.eps.clone())

    def result(self) -> EstimatorResult:
        zeros = torch.zeros(self.batch.size, *self.batch.sample_shape)
        return EstimatorResult(zeros, zeros.flatten(1).sum(1))


def brute_force_u(model, x_t, eps, t, ab, noise):
    """Alg. 1 written out: x^i = a x0_hat + s n_i, U = unbiased variance over i of eps(x^i)."""
    a, s = math.sqrt(ab), math.sqrt(1 - ab)
    x0_hat = (x_t - s * eps) / a
    e = torch.stack([model.eps(a * x0_hat + s * n, t) for n in noise])
    return e.var(dim=0, unbiased=True)


@pytest.fixture
def mixture():
    return GaussianMixtureModel(tiny_gmm_means(3, (1, 4, 4)), std=0.2)


def test_calibrated_thresholds_are_the_percentile_of_plain_uncertainty(mixture):
    guidance = UncertaintyGuidance(m=3, percentile=90.0, window=(40, 49))
    idx = torch.arange(7, 19)
    x_T = initial_noise(0, idx, mixture.sample_shape).to(torch.float64)
    tau = calibrate_thresholds(mixture, guidance, x_T, sampler="ddim", steps=20, seed=0, indices=idx, batch_size=5)
    rec = Recorder()
    sample(mixture, x_T, sampler="ddim", steps=20, seed=0, indices=idx, estimators=[rec])
    guided_t = [t for t, (i, *_rest) in rec.states.items() if guidance.active(i, 20)]
    assert sorted(tau) == sorted(guided_t) and len(tau) == 3  # steps 16..18 of 20 (the final step excluded)
    for t in guided_t:
        index, ab, x_t, eps = rec.states[t]
        noise = per_sample_randn(0, idx, (3, *mixture.sample_shape), stream=NOISE_STREAM, step=index,
                                 dtype=torch.float64).transpose(0, 1)
        u = brute_force_u(mixture, x_t, eps, t, ab, noise)
        assert tau[t] == pytest.approx(float(np.percentile(u.numpy(), 90.0)), rel=1e-9)
        assert float((u > tau[t]).double().mean()) == pytest.approx(0.1, abs=1 / u.numel() + 1e-12)


def test_protocol_calibrates_once_saves_the_thresholds_and_forwards_the_options(mixture, tmp_path, monkeypatch):
    params = {"m": 2, "percentile": 95.0, "strength": 1.0, "window": [40, 49], "center": "prediction",
              "clip_x0": True, "thresholds": "calibrated", "calibration_samples": 6, "num_samples": 4}
    config = SimpleNamespace(num_samples=10, seed=3, sampler="ddim", steps=20, batch_size=4)
    inputs = SimpleNamespace(config=config, model=mixture, run_dir=tmp_path)
    base = guided.guidance_from_params(params)
    assert base.center == "prediction" and base.clip_x0 is True and base.thresholds is None
    first = guided.calibrated_guidance(inputs, params, base)
    saved = json.loads((tmp_path / guided.THRESHOLDS_FILE).read_text())
    assert saved["settings"]["first_index"] == 10 and saved["settings"]["center"] == "prediction"
    assert {int(t): v for t, v in saved["thresholds"].items()} == first.thresholds
    assert first.center == "prediction" and first.clip_x0 is True
    # the thresholds come from samples 10..15, never from the evaluated ones, with the guidance's options
    idx = torch.arange(10, 16)
    expected = calibrate_thresholds(mixture, base, initial_noise(3, idx, mixture.sample_shape), sampler="ddim",
                                    steps=20, seed=3, indices=idx)
    assert first.thresholds == pytest.approx(expected)
    monkeypatch.setattr(guided, "calibrate_thresholds", lambda *a, **k: pytest.fail("recomputed"))
    assert guided.calibrated_guidance(inputs, params, base).thresholds == first.thresholds  # computed once


def test_mean_centred_guidance_moves_x0_far_less_than_prediction_centred(mixture):
    """The second-order smallness documented in estimators.guidance, measured as mean |Delta x0|."""
    x_T = initial_noise(1, torch.arange(6), mixture.sample_shape).to(torch.float64)
    plain = sample(mixture, x_T, steps=20).x0
    moved = {}
    for center in ("mean", "prediction"):
        g = UncertaintyGuidance(m=4, window=(30, 49), center=center)
        moved[center] = float((sample(mixture, x_T, steps=20, guidance=g).x0 - plain).abs().mean())
    assert moved["prediction"] > 0 and moved["mean"] < 0.1 * moved["prediction"]
