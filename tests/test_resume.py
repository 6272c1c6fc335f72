"""Resume after SIGKILL: a run killed half-way through a write, during generation and during featurisation,
then started again with the same command, ends with results bit-identical to an uninterrupted run.

The kills are deterministic: a small driver runs the CLI in a fresh process with one writer wrapped so that
the process writes half a file and SIGKILLs itself at a chosen write (the second generation shard, then the
second feature cache). What is left must be ignored by the next run: a finished file is only ever
visible under its final name (temporary file + rename), so the half-written one stays a hidden temporary.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from benchmark.cli import main
from tests.test_distributed import REPO, assert_same_results, fresh_process_env, reference_run, result_files, toy_config

# argv: <kind> <out> <config>; kind "shard" dies writing the 2nd generation shard, "features" dies writing
# the 2nd feature cache of its process. One process takes the work items longest first: the real test images'
# features, then each generation shard followed by its features chunk, so the resumed run of "features" caches
# shard 2's chunk and dies writing shard 3's.
DRIVER = textwrap.dedent("""
    import os, signal, sys
    import numpy as np

    kind, out, config = sys.argv[1:4]

    def die_half_way(handle_or_path):
        data = b"half a file"
        if hasattr(handle_or_path, "write"):
            handle_or_path.write(data)
            handle_or_path.flush()
        else:
            open(handle_or_path, "wb").write(data)
        os.kill(os.getpid(), signal.SIGKILL)

    calls = []
    if kind == "shard":
        from benchmark.execution import generation
        from benchmark.execution import io
        def save_torch(obj, path):
            calls.append(path)
            if len(calls) == 2:
                io.atomic_write(path, die_half_way)
            io.save_torch(obj, path)
        generation.save_torch = save_torch
    else:
        real_save = np.save
        def save(file, arr, *args, **kwargs):
            calls.append(file)
            if len(calls) == 2:
                die_half_way(file)
            return real_save(file, arr, *args, **kwargs)
        np.save = save

    from benchmark.cli import main
    sys.exit(main(["run", "--config", config, "--out", out, "--quiet"]))
""")


def killed_run(kind: str, out: Path, config: Path, driver: Path) -> None:
    done = subprocess.run([sys.executable, str(driver), kind, str(out), str(config)], cwd=REPO,
                          env=fresh_process_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, (done.returncode, done.stderr[-3000:])
    assert not (out / "manifest.json").exists() and not (out / "metrics.csv").exists()


def hidden_temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp"))


def test_killed_runs_resume_to_identical_results(tmp_path, tmp_path_factory, monkeypatch, capsys):
    reference = reference_run(tmp_path_factory)
    config, out = toy_config(tmp_path), tmp_path / "run"
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)

    killed_run("shard", out, config, driver)  # killed while writing shard 2 of 3
    assert [p.name for p in (out / "shards").glob("*.pt")] == ["gen_0000000_0000004.pt"]
    assert len(hidden_temporaries(out / "shards")) == 1  # the half-written shard, never renamed
    assert (out / "laplace_last_layer.pt").is_file()  # the fitted posterior is kept for the resumed run

    killed_run("features", out, config, driver)  # resumes generation, dies caching the 2nd features
    assert len(list((out / "shards").glob("gen_*.pt"))) == 3
    cached = sorted((out / "features").glob("*.npy"))  # the real images' and shards 1-2's features, complete
    assert len(cached) == 3
    assert len(hidden_temporaries(out / "features")) == 1  # shard 3's features, half-written
    cached_at = {path: path.stat().st_mtime_ns for path in cached}

    env = fresh_process_env()  # the same command as a user would type it
    done = subprocess.run([sys.executable, "-m", "benchmark", "run", "--config", str(config), "--out", str(out),
                           "--quiet"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_results(out, reference)
    assert result_files(out) == result_files(reference)
    assert {path: path.stat().st_mtime_ns for path in cached} == cached_at  # read back, not recomputed

    # finished: the same command is refused without --overwrite and leaves the run as it was
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    assert main(["run", "--config", str(config), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "finished run" in err and "--overwrite" in err
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before


def test_unfinished_run_with_another_config_is_refused(tmp_path, monkeypatch, capsys):
    config, out = toy_config(tmp_path), tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text('{"run": {"preset": "toy", "num_samples": 99}}\n')
    monkeypatch.setenv("UQBENCH_EXTRA_PRESETS", "tests.toy_preset:ToyPreset")
    assert main(["run", "--config", str(config), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "unfinished run with a different config" in err and "--overwrite" in err
    assert sorted(os.listdir(out)) == ["config.json"]


def test_overwrite_replaces_a_run_folder_but_never_a_foreign_one(tmp_path):
    from benchmark.config import parse_config
    from benchmark.errors import ConfigError
    from benchmark.runner.setup import prepare_run_dir

    config = parse_config({"run": {"preset": "toy", "num_samples": 4, "keep": 2}, "protocols": {"cost": {}}})
    run = tmp_path / "run"
    (run / "shards").mkdir(parents=True)
    for name in ("config.json", "manifest.json", "metrics.csv", "shards/gen_0000000_0000004.pt"):
        (run / name).write_text("old")
    assert prepare_run_dir(run, config, overwrite=True) is False  # a fresh start, not a resume
    assert result_files(run) == ["config.json"] and (run / "config.json").read_text() != "old"

    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_text("keep me")
    with pytest.raises(ConfigError, match="holds other files"):
        prepare_run_dir(foreign, config, overwrite=True)
    assert (foreign / "holiday.jpg").read_text() == "keep me"
