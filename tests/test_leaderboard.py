"""Leaderboard semantics: reference rows never ranked, ranks over shared metrics only, tracks never mixed,
invalid runs and mixed protocol versions refused (exit 2, one line)."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from benchmark.cli import main
from benchmark.publish.leaderboard import build_boards, load_runs, rank_track
from benchmark.publish.validate import RunValidationError
from tests.report_runs import copy_run, toy_run, use_toy_preset

NAN = math.nan


def _frame(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["run", "protocol", "estimator", "metric", "value", "ci_low", "ci_high"])


def test_the_floor_is_never_ranked_even_when_its_numbers_are_best():
    rows = [("r", "sparsification", est, "ause", v, v - 0.01, v + 0.01) for est, v in
            (("random", 0.01), ("a", 0.2), ("b", 0.4))]
    rows += [("r", "cost", est, "extra_nfe_per_sample", v, NAN, NAN) for est, v in (("random", 0), ("a", 90), ("b", 5))]
    board, metrics, _ = rank_track(_frame(rows))
    by_name = {r.estimator: r for r in board}
    assert by_name["random"].reference and by_name["random"].quality_rank is None and not by_name["random"].ranks
    assert (by_name["a"].quality_rank, by_name["b"].quality_rank) == (1, 2)  # a is cheaper on nothing: cost unranked
    assert [label for label, _ in metrics] == ["AUSE ↓"] and by_name["a"].cost == {"extra NFE / sample ↓": 90.0}
    assert [r.estimator for r in board] == ["a", "b", "random"]


def test_ranks_use_only_metrics_every_ranked_row_has():
    rows = [("r", "sparsification", "a", "ause", 0.5, 0.49, 0.51), ("r", "sparsification", "b", "ause", 0.1, 0.09, 0.11),
            ("r", "sparsification", "a", "aurg", 0.9, 0.89, 0.91)]  # b has no AURG: AURG cannot rank anyone
    board, metrics, left_out = rank_track(_frame(rows))
    by_name = {r.estimator: r for r in board}
    assert [label for label, _ in metrics] == ["AUSE ↓"] and left_out == ["AURG ↑"]
    assert by_name["b"].quality_rank == 1 and by_name["a"].quality_rank == 2 and "AURG ↑" not in by_name["a"].ranks


def test_runs_of_one_track_share_a_board_and_other_tracks_get_their_own(tmp_path):
    use_toy_preset()
    base, seed1, other = toy_run("base"), toy_run("seed1"), toy_run("other_track")
    boards = build_boards(load_runs([base, seed1, other]))
    assert [sorted(r.name for r in b.runs) for b in boards] == [["toy base#1", "toy seed1#1"], ["toy other_track#1"]]
    first = boards[0]
    assert sorted((r.run, r.estimator) for r in first.ranked) == [
        ("toy base#1", "mc_dropout"), ("toy base#1", "sensitivity"), ("toy seed1#1", "mc_dropout"),
        ("toy seed1#1", "sensitivity")]
    assert {r.estimator for r in first.reference_rows} == {"random"}
    assert all(r.quality_rank is not None for r in first.ranked)
    assert main(["leaderboard", str(base), str(seed1), str(other), "--out", str(tmp_path / "site")]) == 0
    text = (tmp_path / "site" / "leaderboard.md").read_text()
    assert text.count(" (track ") == 2 and "| toy other_track#1 | random" in text
    # readable track titles (source · sampler · steps · N/K), the hash kept beside them
    assert f"## {first.title} (track {first.track_id})" in text and " · ddim · " in first.title and "N/K " in first.title
    assert "nan" not in text.replace("nan_", "")  # no "nan" ranks anywhere on the board


def test_changed_or_unfinished_runs_are_refused_in_one_line(tmp_path, capsys):
    run = copy_run("base", tmp_path / "changed")
    frame = pd.read_csv(run / "metrics.csv")
    frame.loc[0, "value"] += 1
    frame.to_csv(run / "metrics.csv", index=False)
    assert main(["leaderboard", str(run), "--out", str(tmp_path / "site")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "metrics.csv was changed after the run" in err
    unfinished = copy_run("base", tmp_path / "unfinished")
    (unfinished / "manifest.json").unlink()
    with pytest.raises(RunValidationError, match="unfinished"):
        load_runs([unfinished])
    assert not (tmp_path / "site").exists()


def test_mixed_protocol_versions_in_one_track_are_refused(tmp_path, capsys):
    newer = copy_run("base", tmp_path / "newer")
    manifest = json.loads((newer / "manifest.json").read_text())
    version = manifest["protocol_versions"]["sparsification"]
    manifest["protocol_versions"]["sparsification"] = version + 1
    (newer / "manifest.json").write_text(json.dumps(manifest))
    assert main(["leaderboard", str(toy_run("base")), str(newer), "--out", str(tmp_path / "site")]) == 2
    err = capsys.readouterr().err
    assert f"protocol sparsification versions {version} and {version + 1}" in err and err.strip().count("\n") == 0


def test_runs_in_folders_of_the_same_name_keep_apart(tmp_path):
    use_toy_preset()
    first, second = copy_run("base", tmp_path / "a" / "run"), copy_run("base", tmp_path / "b" / "run")
    runs = load_runs([first, second])
    assert [(r.name, r.slug) for r in runs] == [("a/run", "a-run"), ("b/run", "b-run")]
    with pytest.raises(RunValidationError, match="given twice"):
        load_runs([first, first])


def test_floor_marks_are_holm_adjusted_over_the_runs_family_and_empty_boards_show_no_nan():
    from benchmark.publish.leaderboard import leaderboard_table

    rows = [("r", "sparsification", est, "ause", v, v - 0.01, v + 0.01, NAN) for est, v in
            (("random", 0.3), ("a", 0.2), ("b", 0.25), ("c", 0.3))]
    rows += [("r", "sparsification", est, "ause_delta_vs_trivial", d, d - 0.02, d + 0.02, p) for est, d, p in
             (("a", -0.1, 1e-4), ("b", -0.05, 0.04), ("c", 0.0, 0.5))]
    frame = pd.DataFrame(rows, columns=["run", "protocol", "estimator", "metric", "value", "ci_low", "ci_high",
                                        "p_value"])
    board, _, _ = rank_track(frame)
    by_name = {r.estimator: r for r in board}
    # Holm over the family of 3: a 3e-4 -> beats the floor; b 0.04 x 2 = 0.08 -> no mark (raw 0.04 would have been)
    assert by_name["a"].floor == {"AUSE ↓": 1} and by_name["b"].floor == {} and by_name["c"].floor == {}
    table = leaderboard_table(frame)
    assert " ✓" in table.loc[table.estimator == "a", "AUSE ↓"].item()
    assert "✓" not in table.loc[table.estimator == "b", "AUSE ↓"].item()
    cost_only = _frame([("r", "cost", est, "extra_nfe_per_sample", v, NAN, NAN) for est, v in (("a", 1), ("b", 2))])
    shown = leaderboard_table(cost_only).astype(str)
    assert not shown.apply(lambda col: col.str.contains("nan")).any().any()
