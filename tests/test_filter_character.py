"""benchmark.report.filter_character on a hand-made metrics frame: which term ΔFID mainly comes from, and whether
KID and coverage agree (raw 5 % tests), with the numbers in the sentence."""
from __future__ import annotations

import math

import pandas as pd

from benchmark.report.filter_character import ALPHA, characterise

TERMS = ("mean", "trace", "cross")


def rows(estimator: str, space: str, delta: float, terms: tuple[float, float, float], extra: dict | None = None):
    """filtered_fid rows of one filter: ΔFID (p 0.001), its terms, and optional {metric base: (value, p)}."""
    out = [("filtered_fid", estimator, f"delta_vs_random[{space}]", delta, 0.001)]
    out += [("filtered_fid", estimator, f"fid_{t}_term_delta_vs_random[{space}]", v, 0.5) for t, v in zip(TERMS, terms)]
    out += [("filtered_fid", estimator, f"{base}[{space}]", v, p) for base, (v, p) in (extra or {}).items()]
    return out


def frame() -> pd.DataFrame:
    spread_terms, fidelity_terms = (-2.0, -5.0, -0.1), (-4.0, -1.0, 0.2)
    data = (rows("narrowing", "classifier", sum(spread_terms), spread_terms,
                 {"kid_delta_vs_random": (0.0004, 0.6), "coverage_delta_vs_random": (-0.05, ALPHA / 10),
                  "density_delta_vs_random": (0.02, 0.3)})
            + rows("cleaning", "classifier", sum(fidelity_terms), fidelity_terms,
                   {"kid_delta_vs_random": (-0.003, ALPHA / 5), "coverage_delta_vs_random": (0.01, 0.4)})
            + rows("cleaning", "inception", sum(fidelity_terms), fidelity_terms)
            + [("filtered_fid", "legacy", "delta_vs_random[classifier]", -1.0, 0.2),  # a run without the terms
               ("filtered_fid", "(not run)", "no_real_features_kid_coverage[inception]", math.nan, math.nan),
               ("precision_recall", "cleaning", "precision_delta_vs_random[classifier]", 0.01, 0.3)])
    return pd.DataFrame(data, columns=["protocol", "estimator", "metric", "value", "p_value"])


def test_each_filter_with_terms_gets_one_character_per_space():
    found = {(c.estimator, c.space): c for c in characterise(frame())}
    assert set(found) == {("narrowing", "classifier"), ("cleaning", "classifier"), ("cleaning", "inception")}


def test_a_delta_mainly_from_the_trace_term_reads_as_removing_spread_with_coverage_agreeing():
    c = {(c.estimator, c.space): c for c in characterise(frame())}[("narrowing", "classifier")]
    assert c.main_term == "trace" and c.kind == "spread"
    assert c.kid_agrees is False  # ΔKID is not significant (p 0.6) and positive: KID does not confirm
    assert c.coverage_agrees is True  # coverage falls significantly, as for a narrower set
    assert "removes spread" in c.sentence and f"{-7.1:+.3g}" in c.sentence and f"{-5.0:+.3g}" in c.sentence
    assert "coverage falls" in c.sentence and "KID does not confirm it" in c.sentence


def test_a_delta_mainly_from_the_mean_term_reads_as_removing_bad_samples():
    found = {(c.estimator, c.space): c for c in characterise(frame())}
    c = found[("cleaning", "classifier")]
    assert c.main_term == "mean" and c.kind == "fidelity"
    assert c.kid_agrees is True and c.coverage_agrees is True  # KID falls significantly, coverage does not fall
    assert "removes bad samples" in c.sentence and "KID agrees" in c.sentence
    without_real = found[("cleaning", "inception")]
    assert without_real.kid_agrees is None and without_real.coverage_agrees is None
    assert "not measured" in without_real.sentence
