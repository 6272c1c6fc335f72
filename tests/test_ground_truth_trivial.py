"""Ground-truth usefulness against the best trivial baseline: the paired bootstrap test holds its level under a null
of two equally informative scores and detects a planted difference; rows are taken against the best baseline."""
from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr

from benchmark.protocols.ground_truth_trivial import trivial_rows
from benchmark.report import verdicts
from metrics.significance import paired_bootstrap_difference


def _spearman(score, target):
    return float(spearmanr(score, target)[0])


def test_the_paired_bootstrap_test_holds_its_level_and_sees_a_planted_difference():
    rng = np.random.default_rng(0)
    rejections, hits = 0, 0
    for _ in range(80):
        target = rng.normal(size=80)
        a, b = target + rng.normal(size=80), target + rng.normal(size=80)  # equally informative: H0 true
        rejections += paired_bootstrap_difference(_spearman, a, b, target, n_boot=100, seed=1).p_value <= 0.05
        strong = target + 0.3 * rng.normal(size=80)  # planted: much more informative than b
        hits += paired_bootstrap_difference(_spearman, strong, b, target, n_boot=100, seed=1).p_value <= 0.05
    assert rejections <= 10  # 5 % of 80: the binomial 99.5 % quantile is 10
    assert hits >= 72


def test_rows_compare_with_the_best_trivial_baseline_and_supersede_the_floor_test():
    rng = np.random.default_rng(1)
    target = rng.normal(size=100)
    scores = {"weak_trivial": rng.normal(size=100), "strong_trivial": target + 0.5 * rng.normal(size=100),
              "estimator": target + 0.2 * rng.normal(size=100)}
    rows = trivial_rows("ground_truth", scores, {"spearman_score_vs_neg_log_density": (_spearman, target)},
                        ["weak_trivial", "strong_trivial"], n_boot=50, seed=0)
    assert [(r.estimator, r.metric) for r in rows] == [("estimator",
                                                        "spearman_score_vs_neg_log_density_delta_vs_trivial")]
    expected = _spearman(scores["estimator"], target) - _spearman(scores["strong_trivial"], target)
    assert rows[0].value == expected and rows[0].p_value < 0.05 and rows[0].detectable_effect > 0
    # in the family the comparison with the trivial baseline replaces the test against rho = 0
    import pandas as pd

    frame = pd.DataFrame([("ground_truth", "estimator", "spearman_score_vs_neg_log_density", 0.9, 0.8, 0.95, 1e-9),
                          ("ground_truth", "estimator", rows[0].metric, rows[0].value, rows[0].ci_low, rows[0].ci_high,
                           rows[0].p_value)],
                         columns=["protocol", "estimator", "metric", "value", "ci_low", "ci_high", "p_value"])
    fam = verdicts.family(frame, lambda name: False)
    assert [v.metric for v in fam.verdicts] == [rows[0].metric]
    assert fam.outcome("estimator", "spearman_score_vs_neg_log_density") == 1
