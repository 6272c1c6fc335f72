"""Every reference row the report shows is on the board's reference table of its track, with what it is and its
values in every column (the floor, trivial baselines, oracles, a plug-in's), never ranked; a ranked row that loses
to the best trivial baseline carries the ✗ mark; the runner's own rows stay off the board."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

import estimators
from benchmark.publish.leaderboard import RunInfo, board_markdown, build_boards, load_runs, rank_track
from benchmark.publish.site import board_html
from benchmark.report.manifest import class_explanation

NAN = math.nan
ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ["run", "protocol", "estimator", "metric", "value", "ci_low", "ci_high", "p_value"]


def _rows():
    rows = [("r", "sparsification", est, "ause", v, v - 0.01, v + 0.01, NAN) for est, v in
            (("random", 0.30), ("local_variance", 0.06), ("edge_plugin", 0.07), ("a", 0.10), ("b", 0.25))]
    rows += [("r", "sparsification", est, "ause_delta_vs_trivial", d, d - 0.01, d + 0.01, p) for est, d, p in
             (("a", 0.04, 1e-6), ("b", 0.19, 1e-9))]
    rows += [("r", "filtered_fid", est, "delta_vs_random[classifier]", v, v - 1, v + 1, p) for est, v, p in
             (("random", 0.2, 0.8), ("realism_oracle", -7.0, 1e-6), ("a", -3.0, 1e-5), ("b", 0.1, 0.9))]
    rows += [("r", "filtered_fid", "(all)", "fid_all[classifier]", 10.0, 9.0, 11.0, NAN)]
    return pd.DataFrame(rows, columns=COLUMNS)


def test_the_floor_trivial_baselines_and_oracles_are_all_reference_rows_with_values():
    refs = {"random", "local_variance", "realism_oracle", "edge_plugin"}
    board, metrics, _ = rank_track(_rows(), refs, refs | {"a", "b"})
    by_name = {r.estimator: r for r in board}
    assert {r.estimator for r in board if r.reference} == refs and "(all)" not in by_name
    assert by_name["local_variance"].values["AUSE ↓"][0] == 0.06 and by_name["local_variance"].quality_rank is None
    assert by_name["realism_oracle"].values["ΔFID vs random K [classifier] ↓"][0] == -7.0
    assert [r.estimator for r in board if not r.reference] == ["a", "b"]
    # a and b are worse than the best trivial baseline on AUSE (Holm over the family of 4): the board marks it
    assert by_name["a"].floor == {"AUSE ↓": -1, "ΔFID vs random K [classifier] ↓": 1}
    assert by_name["b"].floor == {"AUSE ↓": -1}


class _EdgePlugin(estimators.UncertaintyEstimator):
    """Laplacian magnitude of the final sample."""

    reference_row = True
    trivial_baseline = True


def _run(frame: pd.DataFrame) -> RunInfo:
    types = {"random": "random", "local_variance": "local_variance", "realism_oracle": "realism_oracle",
             "a": "sensitivity", "b": "mc_dropout"}
    records = {name: {"type": t, "kind": estimators.get_class(t).kind,
                      "reference_row": bool(estimators.get_class(t).reference_row)} for name, t in types.items()}
    records["edge_plugin"] = {"type": "edge_plugin", "kind": "heuristic", "reference_row": True,
                              "explanation": class_explanation(_EdgePlugin), "trivial_baseline": True}
    manifest = {"track": {"run": {"preset": "toy"}}, "protocol_versions": {"sparsification": 1, "filtered_fid": 1},
                "estimators": records, "config": {"run": {}}}
    refs = frozenset(n for n, r in records.items() if r["reference_row"])
    return RunInfo(Path("r"), "r", "r", frame.drop(columns="run"), manifest, refs)


def test_a_plugin_trivial_baseline_declared_as_reference_shows_up_with_its_line():
    board = build_boards([_run(_rows())])[0]
    assert {r.estimator for r in board.reference_rows} == {"random", "local_variance", "realism_oracle",
                                                           "edge_plugin"}
    text = board_markdown(board)
    assert "*edge_plugin* = a trivial baseline: laplacian magnitude of the final sample" in text
    assert "*local_variance* = a trivial baseline: local variance of the final x0" in text
    assert "*random* = the floor" in text and "*realism_oracle* = an oracle" in text
    page = board_html(board)
    assert "edge_plugin" in page and "local variance of the final x0" in page


def test_the_committed_demo_board_shows_local_variance_beside_the_ranked_rows():
    runs = load_runs([ROOT / "results" / "reference" / "demo" / "seed_0"], check_weights=False)
    board = build_boards(runs)[0]
    refs = {r.estimator: r for r in board.reference_rows}
    assert {"random", "local_variance", "realism_oracle"} <= set(refs)
    assert "AUSE ↓" in refs["local_variance"].values and refs["local_variance"].quality_rank is None
    assert "*local_variance* = a trivial baseline" in board_markdown(board)
