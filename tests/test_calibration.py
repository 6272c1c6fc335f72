"""The calibration bench at reduced size (bench/calibration_bench.py, 40 runs on the synthetic source): under a
null with no signal every test rejects at about its nominal 5 %, the Holm-adjusted family rarely errs, and a planted
signal of rho = 0.5 is found. The bounds are binomial (a true 5 % rate fails them with probability < 0.1 %), so the
test fails only when a rate is far off, and the inputs are seeded (no flakiness)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binom

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import calibration_bench as cb  # noqa: E402

REPEATS = 40


@pytest.fixture(scope="module")
def calibration():
    return cb.calibrate(cb.synthetic_source(), REPEATS, old=False)


@pytest.mark.parametrize("test", cb.TESTS)
def test_false_positive_rate_under_the_null_is_near_five_percent(calibration, test):
    p = np.asarray(calibration.null[test])
    p = p[np.isfinite(p)]
    hits = int((p <= 0.05).sum())
    assert p.size >= REPEATS * cb.NULL_ESTIMATORS * 0.9
    assert binom.ppf(0.0005, p.size, 0.05) <= hits <= binom.ppf(0.9995, p.size, 0.05), (hits, p.size)


def test_null_deltas_are_centred_on_zero(calibration):
    deltas = np.asarray(calibration.null_deltas)
    assert abs(deltas.mean()) < 4 * deltas.std(ddof=1) / np.sqrt(deltas.size)


def test_family_wise_error_after_holm_is_at_most_five_percent(calibration):
    errors = sum(calibration.family_errors)
    assert errors <= binom.ppf(0.999, REPEATS, 0.05), errors


def test_a_planted_signal_of_rho_one_half_is_found(calibration):
    for test in ("ΔFID", "ρ(score, badness)", "AURG"):
        power = np.mean(np.asarray(calibration.planted[0.5][test]) <= 0.05)
        assert power >= 0.8, (test, power)


def test_clopper_pearson_matches_statsmodels_free_closed_form():
    low, high = cb.clopper_pearson(0, 20)
    assert low == 0.0 and high == pytest.approx(1 - 0.025 ** (1 / 20), rel=1e-9)  # the zero-hit closed form
    low, high = cb.clopper_pearson(20, 20)
    assert high == 1.0 and low == pytest.approx(0.025 ** (1 / 20), rel=1e-9)
