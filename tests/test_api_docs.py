"""docs/python_api.md, the Python API as a notebook session, run as written: its python blocks in order, in one
namespace, from a folder that has the repository's configs/ (a notebook's last expression is evaluated, as a cell
shows it). What it shows is then checked against the files its runs wrote."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd

from tests.docs_pages import code_blocks

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "python_api.md"


def run_cell(source: str, namespace: dict, name: str) -> object:
    """Execute a cell; return the value of its last line when that is an expression (what a notebook shows)."""
    tree = ast.parse(source)
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    exec(compile(tree, name, "exec"), namespace)
    return None if last is None else eval(compile(ast.Expression(last.value), name, "eval"), namespace)


def test_the_notebook_page_runs_as_written(tmp_path, monkeypatch, capsys):
    cells = [body for language, body in code_blocks(PAGE.read_text()) if language == "python"]
    assert len(cells) >= 8
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    shown = [run_cell(body, namespace, f"{PAGE.name}, python block {i + 1}") for i, body in enumerate(cells)]

    run, other, board = namespace["run"], namespace["other"], namespace["board"]
    assert run.path == Path("runs/smoke_small") and other.config["run"]["seed"] == 1
    assert "a new folder: it holds a finished run" in capsys.readouterr().out  # the refused second run
    raw = pd.read_csv(run.path / "metrics.csv")
    assert np.array_equal(run.metrics.value.to_numpy(), raw.value.to_numpy(), equal_nan=True)
    assert shown[2].shape[0] == len(run.headline) and not shown[2].isna().all().all()  # the headline's values
    significant = namespace["significant"]
    assert (significant.adjusted_p <= 0.05).all() and len(significant) == (run.verdicts.adjusted_p <= 0.05).sum()
    assert namespace["maps"].shape[0] == 4 and namespace["images"].shape == namespace["maps"].shape
    scores = namespace["scores"]
    assert set(namespace["most_uncertain"]) == set(scores.sort_values().index[-4:])
    assert set(board.index.get_level_values("run")) == {"smoke_small", "smoke_small_seed1"}
    assert board.loc[~board["reference"], "quality_rank"].notna().all()
    assert shown[-1] is True  # the folder loaded again gives the same table
