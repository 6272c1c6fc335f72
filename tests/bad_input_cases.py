"""The bad-input catalogues' shared contract: a `Case` (its command line, the field and fix its one line must name,
its exit code), `assert_refused` (exit code, one line, nothing written) and the presets the cases may name."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from benchmark.cli import main
from tests.bad_input_presets import VARIANTS
from tests.test_bad_inputs import snapshot

Argv = Callable[[Path, pytest.MonkeyPatch], list[str]]


@dataclass
class Case:
    name: str
    argv: Argv  # builds the case's files in the tmp folder and returns the command line
    field: str  # must appear in the one line
    fix: str  # a phrase of the fix (after "Fix:") that must appear
    code: int = 2


@pytest.fixture(autouse=True)
def variant_presets(monkeypatch):
    monkeypatch.setenv("UQBENCH_EXTRA_PRESETS", VARIANTS)


def assert_refused(case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """The catalogue's contract for one case: its exit code, one line naming the field and the fix, nothing written."""
    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # relative paths (results/reference/demo/seed_0) from the root
    argv = case.argv(tmp_path, monkeypatch)
    before = snapshot(tmp_path)
    assert main(argv) == case.code, capsys.readouterr().err

    captured = capsys.readouterr()
    line = captured.err.strip()
    assert line.startswith("error: " if case.code == 2 else "fault: ") and "\n" not in line and "Traceback" not in \
        captured.err, captured.err
    assert case.field in line, line
    assert "Fix:" in line and case.fix in line, line
    assert snapshot(tmp_path) == before  # nothing written, created or changed (a dangling --out stays as it is)
