"""Window arithmetic: a window of a 50-step run covers the same fraction of the trajectory at every step count
and for every sampler, and never includes the final step (the one landing on the data) unless asked.

Expected steps are computed here by brute force with exact fractions: step i of n spans [i/n, (i+1)/n) of the
trajectory and is in the window (a, b) when its midpoint lies in [a/50, b/50); the final step only if b = 50.
"""
from __future__ import annotations

from fractions import Fraction

import pytest
import torch

from benchmark.sampling import initial_noise, sample
from estimators.base import scale_window
from estimators.windowed import WindowedVarianceEstimator

SAMPLERS = ("ddim", "ddpm", "dpm2")


class StepRecorder(WindowedVarianceEstimator):
    """Records the step indices and timesteps it is asked for; its U_t is zero (no network calls)."""

    name = "step_recorder"
    uses_network = False

    def begin(self, batch) -> None:
        super().begin(batch)
        self.seen: list[tuple[int, int]] = []

    def step_variance(self, step) -> torch.Tensor:
        self.seen.append((step.index, step.t))
        return torch.zeros_like(step.x_t)


def expected_steps(window: tuple[int, int], n: int) -> list[int]:
    a, b = Fraction(window[0], 50), Fraction(window[1], 50)
    inside = [i for i in range(n) if a <= Fraction(2 * i + 1, 2 * n) < b]
    return [i for i in inside if i < n - 1 or window[1] == 50]


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("steps", [20, 25, 50, 100])
def test_paper_window_covers_the_same_fraction_and_never_the_final_step(gmm, sampler, steps):
    rec = StepRecorder(m=2, window=(45, 49))
    x_T = initial_noise(0, torch.arange(2), gmm.sample_shape)
    sample(gmm, x_T, sampler=sampler, steps=steps, estimators=[rec], seed=0)
    indices = [i for i, _ in rec.seen]
    assert indices == expected_steps((45, 49), steps)
    assert steps - 1 not in indices and min(t for _, t in rec.seen) > 0  # the step onto the data is excluded
    assert abs(Fraction(len(indices), steps) - Fraction(4, 50)) <= Fraction(1, steps)
    if sampler != "dpm2" and steps in (25, 50, 100):  # DDIM/DDPM timesteps: the paper's t = 80..20 band
        assert all(20 <= t <= 90 for _, t in rec.seen), rec.seen


@pytest.mark.parametrize("steps", [1, 2, 5, 10, 20, 25, 50, 100])
@pytest.mark.parametrize("window", [(45, 49), (40, 50), (0, 50), (49, 50), (0, 1), (10, 20), (30, 45)])
def test_scale_window_matches_the_midpoint_rule(window, steps):
    start, stop = scale_window(window, steps)
    expected = expected_steps(window, steps)
    if expected:
        assert list(range(start, stop)) == expected
    else:  # too short for this step count: one step, never the final one unless asked (or the only one)
        assert stop - start == 1 and (stop < steps or window[1] == 50 or steps == 1)


def test_asking_for_the_final_step_includes_it(gmm):
    rec = StepRecorder(m=2, window=(40, 50))
    sample(gmm, initial_noise(0, torch.arange(1), gmm.sample_shape), sampler="ddim", steps=20, estimators=[rec])
    assert [i for i, _ in rec.seen] == [16, 17, 18, 19] and rec.seen[-1][1] == 0
