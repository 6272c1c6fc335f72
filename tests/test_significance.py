"""metrics.significance against reference libraries and simulations with a known answer."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from metrics.significance import (
    adjust,
    benjamini_hochberg,
    holm,
    hypergeometric_test,
    paired_t_test,
    permutation_p_value,
    randomization_test,
)


@pytest.mark.parametrize("seed", range(5))
def test_holm_and_bh_match_statsmodels(seed):
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.uniform(size=30), rng.uniform(0, 0.01, size=10)])
    assert np.allclose(holm(p), multipletests(p, method="holm")[1], rtol=0, atol=1e-12)
    assert np.allclose(benjamini_hochberg(p), multipletests(p, method="fdr_bh")[1], rtol=0, atol=1e-12)
    assert np.allclose(benjamini_hochberg(p), stats.false_discovery_control(p, method="bh"), atol=1e-12)


def test_adjust_leaves_nan_out_of_the_family():
    p = np.array([0.01, np.nan, 0.02])
    out = adjust(p, "holm")
    assert np.isnan(out[1]) and out[0] == pytest.approx(0.02) and out[2] == pytest.approx(0.02)
    assert np.array_equal(adjust([0.3, 0.01], "none"), [0.3, 0.01])
    with pytest.raises(ValueError):
        adjust([0.1], "bonferonni")


def test_paired_t_test_matches_scipy():
    rng = np.random.default_rng(1)
    d = rng.normal(0.2, 1.0, size=40)
    ci = paired_t_test(d)
    ref = stats.ttest_1samp(d, 0.0)
    assert ci.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    low, high = ref.confidence_interval(0.95)
    assert (ci.low, ci.high) == pytest.approx((low, high), rel=1e-10)


def test_hypergeometric_test_is_exact_and_bounded():
    inside = np.zeros(100, dtype=bool)
    inside[:70] = True
    kept = np.zeros(100, dtype=bool)
    kept[:40] = True  # 40 kept, all inside: far above the 28 expected
    ci = hypergeometric_test(inside, kept)
    assert ci.value == pytest.approx(1.0 - 0.7)
    law = stats.hypergeom(100, 70, 40)
    assert ci.p_value == pytest.approx(min(1.0, 2 * law.sf(39)), rel=1e-9)
    assert -1.0 <= ci.low <= ci.high <= 1.0


def test_randomization_test_holds_its_level_on_a_simulated_null():
    """A value drawn from the same law as the R null draws: p <= 5 % in about 5 % of 4000 trials."""
    rng = np.random.default_rng(7)
    hits = 0
    for _ in range(4000):
        draws = rng.gamma(20.0, size=101)  # a skewed statistic, like FID over random subsets
        hits += randomization_test(draws[0], draws[1:]).p_value <= 0.05
    low, high = stats.binom.ppf([0.0005, 0.9995], 4000, 0.05)
    assert low <= hits <= high


def test_log_scale_randomization_test_holds_its_level_in_the_tail_of_a_skewed_null():
    """A lognormal statistic (skewed like FID over random subsets): at Holm's first threshold in a family of 48,
    0.05 / 48, the log-scale test rejects at about the nominal rate (20000 trials), the linear one far more often."""
    rng = np.random.default_rng(3)
    level, trials = 0.05 / 48, 20000
    log_hits = linear_hits = 0
    for _ in range(trials):
        draws = np.exp(0.3 * rng.normal(size=101))
        log_hits += randomization_test(draws[0], draws[1:], log_scale=True).p_value <= level
        linear_hits += randomization_test(draws[0], draws[1:]).p_value <= level
    assert log_hits <= stats.binom.ppf(0.999, trials, level)
    assert linear_hits > 2 * log_hits


def test_randomization_test_finds_a_shift_and_permutation_p_counts():
    null = np.arange(100, dtype=float)
    ci = randomization_test(-60.0, null)
    assert ci.p_value < 0.001 and ci.high < 0
    assert permutation_p_value(-60.0, null) == pytest.approx(2 / 101)
    assert permutation_p_value(49.5, null) == 1.0
