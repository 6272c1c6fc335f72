"""The report says what an estimator's values mean where a calibration ratio was measured."""
from __future__ import annotations

import pandas as pd

from benchmark.report.value_findings import scale_phrase, value_lines


def test_a_well_ranking_map_with_small_values_is_read_as_a_ranking():
    frame = pd.DataFrame([
        ("ground_truth", "bayesdiff", "calibration_ratio[skip=1]", 1 / 150),
        ("ground_truth", "bayesdiff", "calibration_ratio[skip=5]", 1 / 600),
        ("ground_truth", "bayesdiff", "calibration_ratio[skip=5,rule=public]", 0.5),
        ("ground_truth", "bayesdiff", "spearman_pixel_vs_shared_theta_var", 0.61),
        ("ground_truth", "other", "calibration_ratio[skip=1]", 1.3),
    ], columns=["protocol", "estimator", "metric", "value"])
    lines = value_lines(frame)
    assert len(lines) == 2
    assert lines[0].startswith("- `bayesdiff` ranks the spread of its own posterior with ρ = 0.61")
    assert "150× below the spread it models at skip=1" in lines[0] and "600× below" in lines[0]
    assert "rule=public" not in lines[0] and lines[0].endswith("read its map as a ranking, not as a variance.")
    assert "within 2× of the spread" in lines[1] and "ranking, not" not in lines[1]


def test_scale_phrases():
    assert scale_phrase(4.0) == "4× above" and scale_phrase(0.01) == "100× below"
    assert scale_phrase(float("nan")) == "not comparable with"


def test_agreement_with_the_gold_standard_is_said_and_a_reversed_order_flagged():
    from benchmark.report.value_findings import agreement_lines

    frame = pd.DataFrame([
        ("ensemble_agreement", "mc_dropout", "score_spearman_vs_ensemble", 0.59, 0.41, 0.75),
        ("ensemble_agreement", "mc_dropout", "map_spearman_vs_ensemble", 0.44, 0.42, 0.46),
        ("ensemble_agreement", "bayesdiff", "score_spearman_vs_ensemble", -0.46, -0.65, -0.27),
    ], columns=["protocol", "estimator", "metric", "value", "ci_low", "ci_high"])
    lines = agreement_lines(frame)
    assert lines[0] == ("- `mc_dropout`: scores ρ = 0.59 [0.41, 0.75] against `ensemble`; maps ρ = 0.44 [0.42, 0.46] "
                        "against `ensemble`.")
    assert lines[1].endswith("it ranks samples in the opposite order to `ensemble`.")
