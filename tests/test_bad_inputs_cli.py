"""Catalogue of bad command lines and bad files given to `regress` / `leaderboard` (issue 17): each exits with
code 2 and one line that names the argument (or file) and the fix, writes nothing, and never exits 1 (which
means "regression found" and nothing else). The config catalogue is tests/test_bad_inputs.py.
"""
from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import pytest

from benchmark.cli import main
from tests.test_bad_inputs import snapshot

ROWS = [("sparsification", "a", "ause", 0.1, 0.09, 0.11, 8, 0), ("sparsification", "b", "ause", 0.5, 0.49, 0.51, 8, 0),
        ("cost", "a", "nfe_ratio", 1.4, math.nan, math.nan, 8, 0)]
COLUMNS = ["protocol", "estimator", "metric", "value", "ci_low", "ci_high", "n", "seed"]


def write_run(folder: Path) -> Path:
    """A run folder whose metrics.csv is well formed (what regress reads)."""
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(ROWS, columns=COLUMNS).to_csv(folder / "metrics.csv", index=False)
    return folder


def write_baseline(path: Path) -> Path:
    frame = pd.DataFrame(ROWS, columns=COLUMNS)[["protocol", "estimator", "metric", "value"]]
    frame.assign(abs_tol=0.01, rel_tol=0.0).to_csv(path, index=False)
    return path


def damaged(make: Callable[[Path], Path], damage: Callable[[Path], None], name: str) -> Callable[[Path], Path]:
    """make(tmp) then damage the file `name` below what it made (or the file itself)."""
    def build(tmp: Path) -> Path:
        made = make(tmp)
        damage(made / name if made.is_dir() else made)
        return made
    return build


def truncate(path: Path) -> None:
    """Cut inside the last line, as a write killed half-way leaves a file that is not written atomically."""
    path.write_bytes(path.read_bytes()[:-5])


def binary(path: Path) -> None:
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))


def empty(path: Path) -> None:
    path.write_bytes(b"")


def header_only(path: Path) -> None:
    path.write_text(path.read_text().splitlines()[0] + "\n")


def columnless(path: Path) -> None:
    path.write_text("a;b;c\n1;2;3\n")


def words_for_numbers(path: Path) -> None:
    path.write_text(path.read_text().replace("0.5,", "half,", 1))


def good_run(tmp: Path) -> Path:
    return write_run(tmp / "run")


def good_baseline(tmp: Path) -> Path:
    return write_baseline(tmp / "baseline.csv")


@dataclass
class CliCase:
    name: str
    argv: Callable[[Path], list[str]]  # the command line, given the case's tmp folder (after any files are made)
    field: str
    fix: str


def regress_with(baseline: Callable[[Path], Path] = good_baseline, run: Callable[[Path], Path] = good_run):
    def argv(tmp: Path) -> list[str]:
        return ["regress", "--baseline", str(baseline(tmp)), "--run", str(run(tmp))]
    return argv


CLI_CASES = [
    # ---- command-line arguments
    CliCase("run without --config", lambda tmp: ["run"], "required: --config", "uqbench run --help"),
    CliCase("unknown command", lambda tmp: ["benchmark"], "invalid choice: 'benchmark'", "uqbench --help"),
    CliCase("unknown option", lambda tmp: ["run", "--config", "x.toml", "--fast"], "unrecognized arguments: --fast",
            "--help"),
    CliCase("steps given as a flag", lambda tmp: ["run", "--config", "x.toml", "--steps", "10"],
            "unrecognized arguments", "--help"),
    CliCase("config file missing", lambda tmp: ["run", "--config", str(tmp / "nope.toml"), "--out", str(tmp / "o")],
            "--config", "give the path of a file"),
    CliCase("config is a folder", lambda tmp: ["run", "--config", str(tmp), "--out", str(tmp / "o")], "--config",
            "give the path of a file"),
    CliCase("negative tolerance", lambda tmp: [*regress_with()(tmp), "--abs-tol", "-1"], "--abs-tol = -1.0",
            "e.g. --abs-tol 0.05"),
    CliCase("NaN tolerance", lambda tmp: [*regress_with()(tmp), "--rel-tol", "nan"], "--rel-tol = nan",
            "e.g. --rel-tol 0.05"),
    CliCase("tolerance not a number", lambda tmp: [*regress_with()(tmp), "--abs-tol", "tight"],
            "argument --abs-tol: invalid float value", "--help"),
    CliCase("leaderboard of nothing", lambda tmp: ["leaderboard"], "required: runs", "uqbench leaderboard --help"),
    # ---- files given to regress
    CliCase("baseline missing", regress_with(baseline=lambda tmp: tmp / "nope.csv"), "--baseline",
            "regress --write-baseline"),
    CliCase("baseline empty", regress_with(baseline=damaged(good_baseline, empty, "")), "the file is empty",
            "regress --write-baseline"),
    CliCase("baseline binary", regress_with(baseline=damaged(good_baseline, binary, "")), "the file is binary",
            "regress --write-baseline"),
    CliCase("baseline truncated", regress_with(baseline=damaged(good_baseline, truncate, "")), "truncated",
            "regress --write-baseline"),
    CliCase("baseline without columns", regress_with(baseline=damaged(good_baseline, columnless, "")),
            "missing protocol, estimator, metric", "regress --write-baseline"),
    CliCase("baseline of a header only", regress_with(baseline=damaged(good_baseline, header_only, "")),
            "at least one row", "regress --write-baseline"),
    CliCase("baseline with words for numbers", regress_with(baseline=damaged(good_baseline, words_for_numbers, "")),
            "numbers in column value, but line 3 has 'half'", "regress --write-baseline"),
    CliCase("run folder missing", regress_with(run=lambda tmp: tmp / "no-run"), "--run", "run the config first"),
    CliCase("run without metrics.csv", regress_with(run=lambda tmp: (tmp / "empty-run").mkdir() or tmp / "empty-run"),
            "metrics.csv", "give a finished run folder"),
    CliCase("run metrics truncated", regress_with(run=damaged(good_run, truncate, "metrics.csv")), "truncated",
            "give a finished run folder"),
    CliCase("run metrics binary", regress_with(run=damaged(good_run, binary, "metrics.csv")), "binary",
            "give a finished run folder"),
    CliCase("run metrics empty", regress_with(run=damaged(good_run, empty, "metrics.csv")), "empty",
            "give a finished run folder"),
    CliCase("run metrics without columns", regress_with(run=damaged(good_run, columnless, "metrics.csv")),
            "missing protocol, estimator, metric, value", "give a finished run folder"),
    CliCase("write a baseline from a truncated run",
            lambda tmp: [*regress_with(run=damaged(good_run, truncate, "metrics.csv"))(tmp), "--write-baseline"],
            "truncated", "give a finished run folder"),
    # ---- run folders given to leaderboard
    CliCase("leaderboard of a missing folder", lambda tmp: ["leaderboard", str(tmp / "nope"), "--out", str(tmp / "b")],
            "nope", "python -m benchmark run"),
    CliCase("leaderboard of an unfinished run", lambda tmp: ["leaderboard", str(good_run(tmp)), "--out", str(tmp / "b")],
            "unfinished", "resume the run"),
]


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.name for c in CLI_CASES])
def test_bad_command_line_or_file_exits_2_with_one_line(case: CliCase, tmp_path, capsys):
    argv = case.argv(tmp_path)
    before = snapshot(tmp_path)
    assert main(argv) == 2
    captured = capsys.readouterr()
    line = captured.err.strip()
    assert line.startswith("error: ") and "\n" not in line and "Traceback" not in line, captured.err
    assert case.field in line and case.fix in line, line
    assert snapshot(tmp_path) == before  # nothing written


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """The toy reference run of the suite (made once per session, shared with test_distributed / test_resume)."""
    from tests.test_distributed import reference_run

    return reference_run(tmp_path_factory)


@pytest.mark.parametrize("damage", [truncate, binary, empty, columnless], ids=lambda d: d.__name__)
def test_leaderboard_of_a_run_with_a_damaged_metrics_file(damage, finished_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("UQBENCH_EXTRA_PRESETS", "tests.toy_preset:ToyPreset")  # the leaderboard reloads the weights
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    assert main(["leaderboard", str(finished_run), "--out", str(tmp_path / "ok-board")]) == 0  # intact: fine
    capsys.readouterr()
    damage(run / "metrics.csv")
    board = tmp_path / "board"
    assert main(["leaderboard", str(run), "--out", str(board)]) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith("error: ") and "\n" not in line and str(run) in line and "metrics.csv" in line, line
    assert not board.exists()  # no partial board


def test_regress_exit_1_means_a_regression_and_a_crash_is_3(tmp_path, monkeypatch, capsys):
    """CI can tell them apart: 0 within tolerance, 1 a real regression, 3 a crash of the command itself."""
    run, baseline = write_run(tmp_path / "run"), write_baseline(tmp_path / "baseline.csv")
    assert main(["regress", "--baseline", str(baseline), "--run", str(run)]) == 0
    frame = pd.read_csv(run / "metrics.csv")
    frame.loc[1, "value"] = 0.7  # |0.7 - 0.5| > 0.01
    frame.to_csv(run / "metrics.csv", index=False)
    assert main(["regress", "--baseline", str(baseline), "--run", str(run)]) == 1
    assert "REGRESSION: 1 of 3" in capsys.readouterr().out

    def crash(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr("benchmark.publish.regression.compare", crash)
    assert main(["regress", "--baseline", str(baseline), "--run", str(run)]) == 3
    line = capsys.readouterr().err.strip()
    assert line == "fault: unexpected RuntimeError: a bug. Fix: rerun with --debug for the traceback and report it"


@pytest.mark.parametrize("make, phrase", [
    (lambda tmp, ref: tmp / "nope", "a folder that `python -m benchmark run --out DIR` wrote"),
    (lambda tmp, ref: good_run(tmp), "unfinished: no manifest.json"),
    (lambda tmp, ref: damaged(lambda t: Path(shutil.copytree(ref, t / "copy")), truncate, "metrics.csv")(tmp),
     "metrics.csv"),
], ids=["missing folder", "unfinished run", "truncated metrics"])
def test_validate_refuses_bad_run_folders_with_one_line(make, phrase, finished_run, tmp_path, capsys):
    run = make(tmp_path, finished_run)
    before = snapshot(tmp_path)
    assert main(["validate", str(run), "--skip-weights"]) == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and "Traceback" not in line and str(run) in line and phrase in line, line
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("argv, field, fix", [
    (["validate", "{tmp}/a_file.txt"], "run folder = ", "give that folder"),
    (["leaderboard", "{tmp}/a_file.txt", "--out", "{tmp}/board"], "run folder = ", "give that folder"),
    (["leaderboard", "{tmp}/missing", "--out", "{tmp}/board"], "run folder = ", "give that folder"),
    (["train", "--what", "classifier", "--epochs", "x"], "argument --epochs", "see `python -m benchmark train --help`"),
    (["train", "--what", "nothing"], "argument --what", "see `python -m benchmark train --help`"),
], ids=["validate a file", "leaderboard a file", "leaderboard a missing run", "train --epochs x", "train --what"])
def test_run_arguments_that_are_no_run_and_bad_train_arguments_get_one_line(argv, field, fix, tmp_path, capsys):
    (tmp_path / "a_file.txt").write_text("not a run")
    before = snapshot(tmp_path)
    code = main([a.format(tmp=tmp_path) for a in argv])
    line = capsys.readouterr().err.strip()
    assert code == 2 and line.startswith("error: ") and "\n" not in line, line
    assert field in line and f"Fix: {fix}" in line, line
    assert snapshot(tmp_path) == before
