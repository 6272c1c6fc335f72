"""`validate` and `leaderboard` on runs whose inputs moved (issue 36): a deleted network file is named, a file a line
above already names is not said twice, a run copied from another machine is pointed to `--skip-weights` (which then
checks it without the model's files), and `leaderboard` on an unfinished run says the fix."""
from __future__ import annotations

import shutil

from benchmark.cli import main
from tests.test_factory_import_closure import _folder


def test_a_foreign_run_is_named_once_per_file_and_pointed_to_skip_weights(tmp_path, capsys):
    config = _folder(tmp_path)
    out = tmp_path / "out"
    assert main(["run", "--config", str(config), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()

    (tmp_path / "mynet.py").unlink()  # the network file the glue imports
    assert main(["validate", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert any("mynet.py" in line and "no longer exists" in line for line in lines), lines
    assert any("--skip-weights" in line for line in lines), lines

    (tmp_path / "glue.py").unlink()  # as on another machine: the model's files are not there at all
    assert main(["validate", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert sum(str(tmp_path / "glue.py") in line for line in lines) == 1, lines  # said once, not "changed" again
    assert "--skip-weights" in lines[0] and not any("changed" in line for line in lines), lines

    assert main(["validate", str(out), "--skip-weights"]) == 0, capsys.readouterr().err  # absent, not changed


def test_leaderboard_on_an_unfinished_run_says_the_fix(tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree("results/reference/demo/seed_0", run)
    (run / "manifest.json").unlink()
    assert main(["leaderboard", str(run), "--out", str(tmp_path / "board")]) == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and "no manifest.json" in line and "Fix: finish it" in line, line
    assert not (tmp_path / "board").exists()
