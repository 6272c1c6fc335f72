"""Leaderboard ranks (CI-aware ties) and the regression check, on hand-made tables."""
from __future__ import annotations

import math

import pandas as pd

from benchmark.cli import main
from benchmark.publish.leaderboard import ci_aware_ranks, leaderboard_table
from benchmark.publish.regression import compare, make_baseline


def test_overlapping_intervals_tie_and_separated_ones_rank():
    values = pd.Series({"a": 1.0, "b": 1.1, "c": 3.0})
    lows = pd.Series({"a": 0.8, "b": 0.9, "c": 2.5})
    highs = pd.Series({"a": 1.2, "b": 1.3, "c": 3.5})
    assert ci_aware_ranks(values, lows, highs, higher_is_better=False).to_dict() == {"a": 1, "b": 1, "c": 3}
    assert ci_aware_ranks(values, lows, highs, higher_is_better=True).to_dict() == {"a": 2, "b": 2, "c": 1}


def _run_frame(run: str, ause_a: float) -> pd.DataFrame:
    rows = [("sparsification", "a", "ause", ause_a, ause_a - 0.01, ause_a + 0.01),
            ("sparsification", "b", "ause", 0.5, 0.49, 0.51),
            ("cost", "a", "nfe_ratio", 1.4, math.nan, math.nan),
            ("cost", "b", "nfe_ratio", 1.2, math.nan, math.nan)]
    return pd.DataFrame(rows, columns=["protocol", "estimator", "metric", "value", "ci_low", "ci_high"]).assign(run=run)


def test_leaderboard_ranks_one_track_across_runs_on_quality_only():
    """All rows of one track share the ranking: r1's a (AUSE 0.1) beats both b rows (0.5, overlapping: tied),
    which beat r2's a (0.9); the NFE ratio is cost, never part of the rank."""
    table = leaderboard_table(pd.concat([_run_frame("r1", 0.1), _run_frame("r2", 0.9)]))
    ranks = {(r.run, r.estimator): r["quality rank"] for _, r in table.iterrows()}
    assert ranks == {("r1", "a"): 1, ("r1", "b"): 2, ("r2", "b"): 2, ("r2", "a"): 4}
    assert list(table.estimator) == ["a", "b", "b", "a"] and "NFE ratio ↓" not in table.columns


def test_regression_flags_changes_beyond_tolerance_and_missing_metrics():
    run = _run_frame("r", 0.1)
    baseline = make_baseline(run, {}, (0.01, 0.0))
    assert compare(baseline, run) == []
    moved = run.copy()
    moved.loc[0, "value"] = 0.2
    found = compare(baseline, moved)
    assert [(r.estimator, r.metric) for r in found] == [("a", "ause")]
    assert "0.2 vs baseline 0.1" in found[0].describe()
    missing = compare(baseline, run.iloc[1:])
    assert "missing" in missing[0].describe()


def test_regress_cli_exit_codes(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    _run_frame("r", 0.1).drop(columns="run").to_csv(run_dir / "metrics.csv", index=False)
    base = tmp_path / "base.csv"
    assert main(["regress", "--baseline", str(base), "--run", str(run_dir), "--write-baseline", "--abs-tol", "0.01",
                 "--rel-tol", "0"]) == 0
    assert main(["regress", "--baseline", str(base), "--run", str(run_dir)]) == 0
    frame = pd.read_csv(run_dir / "metrics.csv")
    frame.loc[1, "value"] = 0.7
    frame.to_csv(run_dir / "metrics.csv", index=False)
    assert main(["regress", "--baseline", str(base), "--run", str(run_dir)]) == 1
    assert "REGRESSION" in capsys.readouterr().out
    assert main(["regress", "--baseline", str(tmp_path / "nope.csv"), "--run", str(run_dir)]) == 2
