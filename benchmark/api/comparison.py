"""`benchmark.compare(runs)`: the leaderboard's boards of several runs as one DataFrame.

The runs are checked and ranked by the code that builds the site (benchmark.publish.leaderboard: `load_runs`, the
rule of `validate`; `build_boards`: tracks, CI-aware ranks per metric, the quality rank, the floor's ✓/✗ by each
run's family), so the ranks are the site's. A `Replicates` (or a replicate folder) stands for its seed runs, as
`leaderboard` takes the seed folders.
"""
from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from benchmark.api.results import Replicates, Run
from benchmark.errors import ConfigError
from benchmark.publish.leaderboard import Board, BoardRow, build_boards, load_runs
from benchmark.publish.replicates_validity import is_replicates_folder

#: the stats of a quality metric's columns (value and interval, CI-aware rank, +1 / -1 / 0 against the floor)
METRIC_STATS = ("value", "ci_low", "ci_high", "rank", "floor")
FRONT = ("track", "track_id", "reference", "quality_rank", "mean_rank")


def _folders(runs: Iterable[Run | Replicates | str | os.PathLike]) -> list[Path]:
    folders: list[Path] = []
    for item in runs:
        if isinstance(item, Replicates):
            folders += [r.path for r in item.runs]
        elif isinstance(item, Run):
            folders.append(item.path)
        elif isinstance(item, (str, os.PathLike)) and is_replicates_folder(Path(item)):
            folders += sorted(p for p in Path(item).glob("seed_*") if p.is_dir())
        elif isinstance(item, (str, os.PathLike)):
            folders.append(Path(item))
        else:
            raise ConfigError("runs", type(item).__name__, "run folders or benchmark.Run / Replicates objects",
                              "e.g. benchmark.compare([run_a, 'results/runs/demo'])")
    if not folders:
        raise ConfigError("runs", [], "at least one run", "give the runs to compare")
    return folders


def _record(board: Board, row: BoardRow, labels: list[str]) -> dict[tuple[str, str], object]:
    rank = row.quality_rank if not row.reference else None
    record: dict[tuple[str, str], object] = {
        ("run", ""): row.run, ("estimator", ""): row.estimator, ("track", ""): board.title,
        ("track_id", ""): board.track_id, ("reference", ""): row.reference,
        ("quality_rank", ""): pd.NA if rank is None else rank,
        ("mean_rank", ""): math.nan if row.reference else row.mean_rank}
    for label in labels:
        value, low, high = row.values.get(label, (math.nan, math.nan, math.nan))
        rank_of = row.ranks.get(label)
        record.update({(label, "value"): value, (label, "ci_low"): low, (label, "ci_high"): high,
                       (label, "rank"): pd.NA if rank_of is None else rank_of,
                       (label, "floor"): row.floor.get(label, 0)})
    record.update({(label, "value"): row.cost.get(label, math.nan) for label in board.cost_labels})
    return record


def compare(runs: Iterable[Run | Replicates | str | os.PathLike], *, check_weights: bool = True) -> pd.DataFrame:
    """The leaderboard of `runs` (Run / Replicates objects or folders): one row per (run, estimator), ranked rows of
    each track first in the order of their quality rank, then its reference rows (never ranked), as on the site.

    Columns (two levels): ("run" | "estimator" | "track" | "track_id" | "reference" | "quality_rank" | "mean_rank",
    ""), per quality metric label (label, value | ci_low | ci_high | rank | floor) and per cost label (label,
    "value"). `rank` is the CI-aware rank (1 + the ranked rows significantly better), `floor` +1 / -1 / 0 the
    run's adjusted verdict against the floor (the site's ✓ / ✗). Invalid runs are refused (RunValidationError)
    as `leaderboard` refuses them; `check_weights=False` is its --skip-weights."""
    boards = build_boards(load_runs(_folders(runs), check_weights=check_weights))
    records = []
    for board in boards:
        labels = [label for label, _ in board.metrics]
        labels += [lab for r in board.rows for lab in r.values]  # left-out metrics, references' own
        labels = list(dict.fromkeys(labels))
        records += [_record(board, row, labels) for row in [*board.ranked, *board.reference_rows]]
    table = pd.DataFrame.from_records(records)
    table.columns = pd.MultiIndex.from_tuples(list(table.columns), names=["column", "stat"])
    for column in table.columns:
        if column[0] == "quality_rank" or column[1] == "rank":
            table[column] = table[column].astype("Int64")
    return table.set_index([("run", ""), ("estimator", "")]).rename_axis(["run", "estimator"])
