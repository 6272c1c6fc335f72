"""Bad-input catalogue, part 5 (issue 34): `submit`, `verify`, `regress --mode errors` and its reports, `leaderboard
--recompute`. Same contract as tests/test_bad_inputs_catalogue.py: exit 2, one line naming the field and the fix,
nothing written."""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from benchmark.cli import main
from tests.report_runs import toy_run, use_toy_preset
from tests.test_bad_inputs_catalogue import Case, assert_refused, cli, file
from tests.test_bad_inputs_cli import write_baseline, write_run


def folder(name: str):
    def make(tmp: Path) -> Path:
        (tmp / name).mkdir(exist_ok=True)
        return tmp / name
    return make


def changed_run(tmp: Path) -> Path:
    run = Path(shutil.copytree(toy_run("base"), tmp / "changed"))
    frame = pd.read_csv(run / "metrics.csv")
    frame.loc[0, "value"] += 1
    frame.to_csv(run / "metrics.csv", index=False)
    return run


def bundle(tmp: Path) -> Path:
    assert main(["submit", str(toy_run("base")), "--out", str(tmp / "bundle")]) == 0
    return tmp / "bundle"


CASES = [
    Case("submit a missing run", cli("submit", lambda t: t / "nope", "--out", lambda t: t / "b"), "RUN",
         "give that folder"),
    Case("submit onto an existing folder", cli("submit", lambda t: toy_run("base"), "--out", folder("b")), "--out",
         "give a new path"),
    Case("submit onto a file", cli("submit", lambda t: toy_run("base"), "--out", file("b")), "--out",
         "choose another --out"),
    Case("submit a changed run", cli("submit", changed_run, "--out", lambda t: t / "b"), "metrics.csv was changed",
         "re-run its config"),
    Case("submit without --out", cli("submit", lambda t: toy_run("base")), "required: --out", "--help"),
    Case("verify a folder that is no bundle", cli("verify", folder("x")), "BUNDLE", "submit RUN --out BUNDLE"),
    Case("verify a missing bundle", cli("verify", lambda t: t / "nope"), "BUNDLE", "submit RUN --out BUNDLE"),
    Case("verify a broken bundle.json", cli("verify", lambda t: file("bundle.json", b"{oops")(folder("b")(t)).parent),
         "BUNDLE", "submit RUN --out BUNDLE"),
    Case("verify --recompute negative", cli("verify", bundle, "--recompute", "-1"), "--recompute", "--recompute 8"),
    Case("verify --recompute not a number", cli("verify", bundle, "--recompute", "all"), "invalid int value",
         "--help"),
    Case("regress errors: baseline without intervals", cli("regress", "--mode", "errors", "--baseline",
         lambda t: write_baseline(t / "b.csv"), "--run", lambda t: write_run(t / "run")), "--baseline",
         "use --mode tolerance"),
    Case("regress errors: run folder without metrics", cli("regress", "--mode", "errors", "--baseline",
         lambda t: write_run(t / "base"), "--run", folder("empty")), "--run", "--mode tolerance"),
    Case("regress --mode unknown", cli("regress", "--mode", "loose", "--baseline", "b.csv", "--run", "r"),
         "invalid choice: 'loose'", "--help"),
    Case("regress --alpha above 1", cli("regress", "--mode", "errors", "--alpha", "1.5", "--baseline",
         lambda t: write_run(t / "base"), "--run", lambda t: write_run(t / "run")), "--alpha", "--alpha 0.05"),
    Case("regress --multiplicity unknown", cli("regress", "--multiplicity", "bonferroni", "--baseline", "b",
         "--run", "r"), "invalid choice: 'bonferroni'", "--help"),
    Case("regress --junit a folder", cli("regress", "--baseline", lambda t: write_baseline(t / "b.csv"), "--run",
         lambda t: write_run(t / "run"), "--junit", folder("reports")), "--junit", "--junit reports/regress.xml"),
    Case("regress --json below a file", cli("regress", "--baseline", lambda t: write_baseline(t / "b.csv"), "--run",
         lambda t: write_run(t / "run"), "--json", lambda t: file("f")(t) / "r.json"), "--json", "give a file name"),
    Case("leaderboard --recompute negative", cli("leaderboard", lambda t: toy_run("base"), "--recompute", "-2",
         "--out", lambda t: t / "site"), "--recompute", "--recompute 4"),
]


@pytest.fixture(autouse=True)
def toy(monkeypatch):
    use_toy_preset()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_exits_with_one_line_and_writes_nothing(case: Case, tmp_path, monkeypatch, capsys):
    assert_refused(case, tmp_path, monkeypatch, capsys)
