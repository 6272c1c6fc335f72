"""The minimum detectable effect each test reports is what it says: over 400 planted runs with an effect of the
reported size, the test rejects 80 % +- 5 % of the time (at the raw 5 % level, and at a family's level)."""
from __future__ import annotations

import numpy as np
import pytest

from metrics.significance import detectable_at_level, paired_t_test, randomization_test

RUNS = 400


def _power(test, effect: float, rng, alpha: float = 0.05) -> float:
    return float(np.mean([test(effect, rng).p_value <= alpha for _ in range(RUNS)]))


def _paired(effect: float, rng):
    return paired_t_test(effect + rng.normal(0.0, 1.0, size=60))


def _randomization(effect: float, rng):
    null = rng.normal(10.0, 1.0, size=100)  # the statistic on R random subsets
    return randomization_test(10.0 - effect + rng.normal(0.0, 1.0), null)


def _log_randomization(effect: float, rng):
    null = np.exp(rng.normal(np.log(20.0), 0.1, size=100))  # a positive, right-skewed statistic such as FID
    return randomization_test(float(np.exp(rng.normal(np.log(20.0), 0.1))) - effect, null, log_scale=True)


@pytest.mark.parametrize("test, dof", [(_paired, 59), (_randomization, 99), (_log_randomization, 99)])
def test_power_at_the_reported_effect_is_80_percent(test, dof):
    rng = np.random.default_rng(0)
    reported = float(np.mean([test(0.0, rng).detectable for _ in range(50)]))  # what null runs report
    assert reported > 0
    assert abs(_power(test, reported, rng) - 0.80) <= 0.05
    # and at a family's Bonferroni level (Holm's first step over 40 tests)
    family = detectable_at_level(reported, 0.05 / 40, dof=dof)
    assert abs(_power(test, family, rng, alpha=0.05 / 40) - 0.80) <= 0.05


def test_half_the_reported_effect_is_mostly_missed():
    rng = np.random.default_rng(1)
    reported = float(np.mean([_paired(0.0, rng).detectable for _ in range(50)]))
    assert _power(_paired, reported / 2, rng) < 0.4
