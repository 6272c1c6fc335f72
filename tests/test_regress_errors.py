"""`regress --mode errors` (benchmark.publish.regress_errors): changes judged by the runs' own standard errors.

Proved by simulation on synthetic metric tables with a known answer (tests/regress_simulation.py): reruns with other
seeds raise at most 5 % false alarms (Holm over 30 metrics: the theory says 1 - (1 - 0.05/30)^30 = 4.88 %), and a
planted shift of 3 standard errors of the change is flagged in at least 90 % of runs (one metric: the one-sided
power Φ(3 - 1.645) = 91.2 %; one estimator's five metrics among 30; every metric). Plus the formulas against scipy,
the practical threshold, and one end-to-end comparison of two tiny real runs with every report format.
"""
from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET

import pandas as pd
import pytest
from scipy.stats import norm

from benchmark.cli import main
from benchmark.publish.regress_errors import judge
from tests.regress_simulation import Case, flag_rate
from tests.report_runs import copy_run

ALPHA = 0.05


def _within(measured: float, expected: float, reps: int, sds: float = 3.0) -> bool:
    return abs(measured - expected) <= sds * math.sqrt(expected * (1 - expected) / reps) + 1e-12


def _not_above(measured: float, bound: float, reps: int) -> bool:
    """The simulated rate is not significantly above `bound` (3 simulation standard errors: 0.65 points at 10 000
    reps). Holm's true rate here is 4.88 %, so a finite simulation lands on either side of 5 % by chance."""
    return measured <= bound + 3 * math.sqrt(bound * (1 - bound) / reps)


def test_reruns_with_other_seeds_raise_at_most_five_percent_false_alarms():
    reps = 10_000
    holm = flag_rate(Case(metrics=30), reps)
    theory = 1 - (1 - ALPHA / 30) ** 30  # Holm with every null true: a flag iff the smallest p < alpha / m
    assert theory <= ALPHA and _not_above(holm.any_flag, ALPHA, reps) and _within(holm.any_flag, theory, reps), holm
    bare = flag_rate(Case(metrics=30, practical=False), reps)  # the threshold is not what keeps it down
    assert _not_above(bare.any_flag, ALPHA, reps) and _within(bare.any_flag, theory, reps), bare
    bh = flag_rate(Case(metrics=30, method="bh"), reps)  # BH with every null true: P(any flag) = alpha exactly
    assert _within(bh.any_flag, ALPHA, reps), bh


def test_a_planted_shift_of_three_standard_errors_is_flagged_in_ninety_percent_of_runs():
    reps = 4000
    one = flag_rate(Case(metrics=1, shift=3.0, shifted=1), reps)
    theory = norm.cdf(3.0 - norm.ppf(1 - ALPHA))  # one-sided z-test at alpha: 0.912
    assert one.any_flag >= 0.90 and _within(one.any_flag, theory, reps), (one, theory)
    estimator = flag_rate(Case(metrics=30, shift=3.0, shifted=5), 1000)  # one estimator's five metrics moved
    assert estimator.any_flag >= 0.90, estimator
    everything = flag_rate(Case(metrics=30, shift=3.0, shifted=30), 500)
    assert everything.any_flag >= 0.90, everything
    # the price of controlling 30 tests: one lone metric moved by 3 se is found about half the time (Holm's first
    # step, p < alpha / 30); stated in docs/ci.md
    lone = flag_rate(Case(metrics=30, shift=3.0, shifted=1), 2000)
    assert abs(lone.shifted_flagged - norm.cdf(3.0 - norm.ppf(1 - ALPHA / 30))) < 0.04, lone


def _table(values, lows, highs, metrics=("ause", "aurg", "fid_trace_term_delta_vs_random")) -> pd.DataFrame:
    return pd.DataFrame({"protocol": "p", "estimator": "e", "metric": list(metrics), "value": values,
                         "ci_low": lows, "ci_high": highs})


def test_z_and_p_follow_the_stated_rule():
    base = _table([0.30, 0.20, 1.0], [0.25, 0.15, 0.9], [0.35, 0.25, 1.1])
    run = _table([0.40, 0.10, 1.3], [0.33, 0.06, 1.1], [0.47, 0.14, 1.5])
    found = {c.metric: c for c in judge(base, run)}
    for metric, sign in (("ause", -1), ("aurg", +1)):  # ause: lower is better; aurg: higher is better
        b, r = base.set_index("metric").loc[metric], run.set_index("metric").loc[metric]
        se = math.hypot((b.ci_high - b.ci_low) / (2 * 1.96), (r.ci_high - r.ci_low) / (2 * 1.96))
        z = (r.value - b.value) / se
        assert found[metric].z == pytest.approx(z, rel=1e-3)
        assert found[metric].p_value == pytest.approx(norm.cdf(z) if sign > 0 else norm.sf(z), rel=1e-3)
    b, r = base.iloc[2], run.iloc[2]  # a FID trace term: no direction, two-sided
    z = (r.value - b.value) / math.hypot((b.ci_high - b.ci_low) / 3.92, (r.ci_high - r.ci_low) / 3.92)
    assert found["fid_trace_term_delta_vs_random"].p_value == pytest.approx(2 * norm.sf(abs(z)), rel=1e-3)
    holm = sorted(c.p_value for c in found.values())
    assert min(c.p_adjusted for c in found.values()) == pytest.approx(3 * holm[0], rel=1e-9)


def test_an_improvement_is_no_regression_and_a_tiny_change_is_below_the_practical_threshold():
    base = _table([0.30, 0.20], [0.299, 0.199], [0.301, 0.201], metrics=("ause", "aurg"))
    better = _table([0.20, 0.30], [0.199, 0.299], [0.201, 0.301], metrics=("ause", "aurg"))
    assert {c.status for c in judge(base, better)} == {"ok"}  # z = ±140, but towards better
    # 0.005 worse: z = -7 (se 0.0005), yet below AUSE's cross-machine tolerance 0.01 + 0.02 * 0.3 = 0.016
    tiny = _table([0.305, 0.195], [0.304, 0.194], [0.306, 0.196], metrics=("ause", "aurg"))
    assert {c.status for c in judge(base, tiny)} == {"ok"}
    worse = _table([0.33, 0.17], [0.329, 0.169], [0.331, 0.171], metrics=("ause", "aurg"))
    assert {c.status for c in judge(base, worse)} == {"regressed"}


def test_rows_without_intervals_are_exact_for_counts_and_untested_otherwise():
    nan = math.nan
    base = _table([90.0, 0.30], [nan, nan], [nan, nan], metrics=("extra_nfe_per_sample", "ause_pooled"))
    run = _table([91.0, 0.40], [nan, nan], [nan, nan], metrics=("extra_nfe_per_sample", "ause_pooled"))
    found = {c.metric: c.status for c in judge(base, run)}
    assert found == {"extra_nfe_per_sample": "regressed", "ause_pooled": "untested"}


def test_two_tiny_real_runs_with_other_seeds_pass_and_a_planted_shift_fails_in_every_format(tmp_path, capsys):
    base, rerun = copy_run("base", tmp_path / "base"), copy_run("seed1", tmp_path / "seed1")
    reports = [f"--{k}" for k in ("json", "junit", "markdown")]
    paths = {k: tmp_path / "out" / f"r.{k}" for k in ("json", "junit", "markdown")}
    argv = ["regress", "--mode", "errors", "--baseline", str(base), "--run", str(rerun)]
    argv += [x for flag, path in zip(reports, paths.values()) for x in (flag, str(path))]
    assert main(argv) == 0, capsys.readouterr()
    report = json.loads(paths["json"].read_text())
    assert report["flagged"] == 0 and report["compared"] > 30 and "sqrt(se_run² + se_base²)" in report["rule"]
    tested = [m for m in report["metrics"] if m["status"] == "ok"]
    assert len(tested) > 20 and all(m["p_adjusted"] >= m["p_value"] for m in tested)
    suite = ET.parse(paths["junit"]).getroot()
    assert suite.get("failures") == "0" and int(suite.get("tests")) == report["compared"]
    assert "No regression" in paths["markdown"].read_text()

    frame = pd.read_csv(rerun / "metrics.csv")  # plant: the sensitivity AUSE worse by 6 standard errors
    row = frame.index[(frame.estimator == "sensitivity") & (frame.metric == "ause")][0]
    se = (frame.ci_high[row] - frame.ci_low[row]) / 3.92
    frame.loc[row, ["value", "ci_low", "ci_high"]] += 6 * math.sqrt(2) * se
    frame.to_csv(rerun / "metrics.csv", index=False)
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "1 of" in out and "sparsification/sensitivity/ause:" in out
    failures = ET.parse(paths["junit"]).getroot().findall("testcase/failure")
    assert [f.get("type") for f in failures] == ["regressed"]
    assert "| `sparsification/sensitivity/ause` | regressed |" in paths["markdown"].read_text()
    assert json.loads(paths["json"].read_text())["flagged"] == 1


def test_the_tolerance_mode_writes_the_same_report_formats(tmp_path, capsys):
    run = copy_run("base", tmp_path / "run")
    baseline = tmp_path / "baseline.csv"
    assert main(["regress", "--baseline", str(baseline), "--run", str(run), "--write-baseline"]) == 0
    assert {"ci_low", "ci_high"} <= set(pd.read_csv(baseline).columns)  # one baseline serves both modes
    assert main(["regress", "--baseline", str(baseline), "--run", str(run), "--junit", str(tmp_path / "t.xml"),
                 "--json", str(tmp_path / "t.json")]) == 0
    assert ET.parse(tmp_path / "t.xml").getroot().get("failures") == "0"
    assert json.loads((tmp_path / "t.json").read_text())["mode"] == "tolerance"
    assert main(["regress", "--mode", "errors", "--baseline", str(baseline), "--run", str(run)]) == 0
    assert "OK: " in capsys.readouterr().out.splitlines()[-1]  # the same run against itself: nothing changed
