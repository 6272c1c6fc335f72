"""Reading a metrics table a user hands to a command (a run's metrics.csv, a regression baseline), checked.

One function serves `regress`, `leaderboard` and `regress --write-baseline`: an empty, binary, truncated or
column-less file, or one whose values are not numbers, is bad input (ConfigError, exit 2) with one line that
names the file and what is wrong, never a traceback or a partial table.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd

from benchmark.errors import ConfigError
from benchmark.protocols.table import COLUMNS, LEGACY_COLUMNS

BASELINE_COLUMNS = ["protocol", "estimator", "metric", "value", "abs_tol", "rel_tol"]
KEY_COLUMNS = ["protocol", "estimator", "metric"]
#: numeric columns (empty = NaN is allowed: an interval a metric does not have)
NUMERIC_COLUMNS = ("value", "ci_low", "ci_high", "n", "seed", "p_value", "detectable_effect", "abs_tol", "rel_tol")


def read_table(path: Path, columns: list[str], field: str, *, fix: str) -> pd.DataFrame:
    """The CSV at `path` with at least `columns`, at least one row, every row complete, numeric columns numeric.

    `field` names the argument that gave the file (e.g. "--baseline"); `fix` is the fix shown on error.
    """
    path = Path(path)

    def bad(what: str) -> ConfigError:
        return ConfigError(field, str(path), what, fix)

    if not path.is_file():
        raise bad("an existing CSV file" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise bad(f"a readable file ({err.strerror})") from None
    if not raw.strip():
        raise bad("a CSV table, but the file is empty")
    if b"\x00" in raw:
        raise bad("a text CSV table, but the file is binary")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise bad(f"a UTF-8 CSV table (byte {err.start} is not UTF-8)") from None
    rows = list(csv.reader(io.StringIO(text)))
    header = rows[0] if rows else []
    missing = [c for c in columns if c not in header]
    if missing:
        raise bad(f"a CSV with columns {', '.join(columns)}; missing {', '.join(missing)} (header: {','.join(header)[:80]})")
    body = [(i, r) for i, r in enumerate(rows[1:], start=2) if r]
    if not body:
        raise bad("a table with at least one row, but it has only a header")
    for line, row in body:
        if len(row) != len(header):
            raise bad(f"rows of {len(header)} fields, but line {line} has {len(row)} (truncated or hand-edited)")
    if not text.endswith(("\n", "\r")):
        raise bad("a complete file, but its last line has no line end (truncated)")
    frame = pd.read_csv(io.StringIO(text), dtype={c: str for c in KEY_COLUMNS if c in header}, keep_default_na=False,
                        na_values={c: [""] for c in NUMERIC_COLUMNS if c in header})
    for column in (c for c in NUMERIC_COLUMNS if c in frame.columns):
        numbers = pd.to_numeric(frame[column], errors="coerce")
        wrong = frame[column].notna() & numbers.isna()
        if wrong.any():
            first = int(wrong.to_numpy().nonzero()[0][0])
            raise bad(f"numbers in column {column}, but line {first + 2} has {frame[column].iloc[first]!r}")
        frame[column] = numbers
    for column in KEY_COLUMNS:
        if column in frame.columns and (frame[column].astype(str).str.strip() == "").any():
            first = int((frame[column].astype(str).str.strip() == "").to_numpy().nonzero()[0][0])
            raise bad(f"a {column} on every row, but line {first + 2} has none")
    return frame


#: what `regress` needs of a run's metrics.csv
REGRESS_COLUMNS = KEY_COLUMNS + ["value"]


def read_metrics(run_dir: Path, field: str = "--run", columns: list[str] = LEGACY_COLUMNS) -> pd.DataFrame:
    """A finished run's metrics.csv with at least `columns` (default: every column of benchmark.protocols.table
    .COLUMNS but `detectable_effect`, which a run written before it lacks: it is then added as NaN, "not
    recorded")."""
    frame = read_table(Path(run_dir) / "metrics.csv", columns, field,
                       fix="give a finished run folder (python -m benchmark run ... writes metrics.csv), or re-run it")
    if "detectable_effect" not in frame.columns and list(frame.columns) == LEGACY_COLUMNS:
        frame["detectable_effect"] = float("nan")
    return frame


def read_baseline(path: Path) -> pd.DataFrame:
    """A regression baseline (protocol, estimator, metric, value, abs_tol, rel_tol)."""
    return read_table(path, BASELINE_COLUMNS, "--baseline",
                      fix="point --baseline at a file written by `regress --write-baseline` (see results/baselines/)")
