"""Issue 32 point 5: the report lines of benchmark.report.sample_truth on a hand-made metrics frame."""
from __future__ import annotations

import pandas as pd

from benchmark.report.sample_truth import hallucination_lines, width_ratio_lines


def frame(rows):
    return pd.DataFrame(rows, columns=["protocol", "estimator", "metric", "value", "ci_low", "ci_high"])


def test_width_ratio_lines_say_informative_or_not():
    lines = width_ratio_lines(frame([
        ("conformal", "a", "pixel_width_ratio[alpha=0.1]", 0.7, 0.6, 0.8),
        ("conformal", "a", "pixel_coverage[alpha=0.1]", 0.91, 0.89, 0.93),
        ("conformal", "b", "pixel_width_ratio[alpha=0.1]", 1.3, 1.2, 1.4),
        ("conformal", "c", "pixel_width_ratio[alpha=0.1]", 1.0, 0.9, 1.1)]))
    assert len(lines) == 3
    assert "0.700 [0.600, 0.800]" in lines[0] and "coverage 0.910" in lines[0] and "informative" in lines[0]
    assert "wider than a constant map" in lines[1] and "not distinguishable" in lines[2]


def test_hallucination_lines_put_the_detector_beside_the_paper():
    lines = hallucination_lines(frame([
        ("hallucination", "(samples)", "hallucination_rate[ddpm_50]", 0.2, 0.18, 0.22),
        ("hallucination", "(exact score)", "hallucination_rate[ddpm_50]", 0.0, 0.0, 0.01),
        ("hallucination", "x0_trajectory", "removed_at_retention_0.96_hallucination[ddpm_50]", 0.5, 0.4, 0.6),
        ("hallucination", "x0_trajectory", "auroc_hallucination[ddpm_50]", 0.8, 0.75, 0.85)]))
    assert "`ddpm_50`: hallucination rate 0.200 [0.180, 0.220] (exact score: 0.000" in lines[0]
    assert "removes 0.500 [0.400, 0.600]" in lines[0] and "AUROC 0.800" in lines[0]
    assert "over 95 %" in lines[-1]
    assert hallucination_lines(frame([])) == [] and width_ratio_lines(frame([])) == []
