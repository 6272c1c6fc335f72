"""Faults during a run (issue 17 part 3), each against an uninterrupted reference run of the same config:
the run-folder lock, shard checksums, Ctrl-C, inputs that changed under a resume, output confined to --out.

One tiny config (toy preset, 8 samples in 2 shards of 4, 4 steps, sensitivity + bayesdiff, cost protocol) keeps
every run to seconds. "Resumable" is proved the strong way: the resumed run ends bit-identical (shards, metrics
apart from timings) to the reference.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from benchmark.cli import main
from benchmark.errors import RunFault
from benchmark.execution import checksums, generation, lock
from benchmark.execution.generation import load_generation, shard_path

TOY_PRESET = "tests.toy_preset:ToyPreset"
TIMING_METRICS = ("seconds_per_sample", "time_ratio")
CONFIG = """
[run]
name = "faults"
preset = "toy"
steps = 4
num_samples = 8
keep = 6
batch_size = 4
bootstrap = 10

[estimators.sensitivity]
m = 2
window = [40, 50]
[estimators.bayesdiff]
mc_samples = 3
skip = 2
fit_images = 8

[protocols.cost]
"""
SHARDS = ("gen_0000000_0000004.pt", "gen_0000004_0000008.pt")


@pytest.fixture(autouse=True)
def toy_preset(monkeypatch):
    monkeypatch.setenv("UQBENCH_EXTRA_PRESETS", TOY_PRESET)


def run_cli(config: Path, out: Path, *extra: str) -> int:
    return main(["run", "--config", str(config), "--out", str(out), "--quiet", *extra])


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, Path]:
    """(config, finished uninterrupted run) shared by the tests of this file."""
    folder = tmp_path_factory.mktemp("faults-reference")
    config = folder / "faults.toml"
    config.write_text(CONFIG)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UQBENCH_EXTRA_PRESETS", TOY_PRESET)
        assert run_cli(config, folder / "run") == 0
    return config, folder / "run"


def unfinished_copy(reference_run: Path, out: Path) -> Path:
    """The reference run folder as an interrupted run leaves it: shards and posterior, no results yet."""
    shutil.copytree(reference_run, out)
    for name in ("manifest.json", "metrics.csv", "report.md"):
        (out / name).unlink(missing_ok=True)
    shutil.rmtree(out / "plots", ignore_errors=True)
    return out


def assert_same_results(run: Path, reference: Path) -> None:
    for name in SHARDS:
        a, b = (torch.load(r / "shards" / name, weights_only=False) for r in (run, reference))
        assert torch.equal(a["x0"], b["x0"]), name
        for key in b["scores"]:
            assert torch.equal(a["scores"][key], b["scores"][key]) and torch.equal(a["pixels"][key], b["pixels"][key])
    frame, expected = (pd.read_csv(r / "metrics.csv") for r in (run, reference))
    frame, expected = (f[~f.metric.isin(TIMING_METRICS)].reset_index(drop=True) for f in (frame, expected))
    assert len(expected) >= 4
    pd.testing.assert_frame_equal(frame, expected, check_exact=True)


def one_line(err: str, start: str) -> str:
    line = err.strip()
    assert line.startswith(start) and "\n" not in line and "Traceback" not in line, err
    return line


# ------------------------------------------------------------------------------------------------------- lock
def test_a_second_run_on_a_locked_folder_is_refused_and_a_stale_lock_is_taken_over(reference, tmp_path, capsys):
    config, ref = reference
    out = unfinished_copy(ref, tmp_path / "run")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:  # a live process holds the lock: refused with that process named, nothing changed
        (out / lock.LOCK_NAME).write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname(),
                                                      "command": "uqbench run (the first one)", "since": "now"}))
        before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
        assert run_cli(config, out) == 2
        line = one_line(capsys.readouterr().err, "error: --out")
        assert f"locked by pid {sleeper.pid}" in line and "(the first one)" in line and "Fix: wait" in line
        assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before
    finally:
        sleeper.kill()
        sleeper.wait()
    # the holder is gone (SIGKILL leaves its lock behind): the next run takes the lock over and finishes
    assert run_cli(config, out) == 0
    assert_same_results(out, ref)
    assert not (out / lock.LOCK_NAME).exists()  # released at the end


def test_lock_is_exclusive_between_processes(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    code = ("import sys; from pathlib import Path; from benchmark.execution import lock; "
            "lock.acquire(Path(sys.argv[1])); print('held', flush=True); sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", code, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, cwd=Path(__file__).resolve().parents[1])
    try:
        assert holder.stdout.readline().strip() == "held"
        from benchmark.errors import ConfigError

        with pytest.raises(ConfigError, match=f"locked by pid {holder.pid}"):
            lock.acquire(out)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    lock.acquire(out)  # its holder exited without releasing: stale, taken over
    assert lock.read_owner(out).pid == os.getpid()
    lock.release(out)
    assert not (out / lock.LOCK_NAME).exists()


# -------------------------------------------------------------------------------------------------- checksums
def test_corrupt_and_truncated_shards_are_named_discarded_and_regenerated(reference, tmp_path, capsys):
    config, ref = reference
    out = unfinished_copy(ref, tmp_path / "run")
    first, second = (out / "shards" / name for name in SHARDS)
    first.write_bytes(first.read_bytes()[: first.stat().st_size // 2])  # truncated
    data = bytearray(second.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: still loads, wrong numbers without the checksum
    second.write_bytes(bytes(data))
    assert run_cli(config, out) == 0
    err = capsys.readouterr().err
    for path in (first, second):
        assert f"discarding shard {path}: corrupt or truncated" in err, err
    assert_same_results(out, ref)
    assert checksums.problem(first) is None and checksums.problem(second) is None


def test_a_shard_damaged_after_generation_is_a_fault_that_names_it(reference, tmp_path, capsys):
    config, ref = reference
    out = unfinished_copy(ref, tmp_path / "run")
    path = shard_path(out, 4, 8)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(RunFault, match=f"{path} is corrupt or truncated .* Fix: run the same command again"):
        load_generation(out, 8, 4)
    path.unlink()
    with pytest.raises(RunFault, match=f"{path} is missing"):
        load_generation(out, 8, 4)


# ------------------------------------------------------------------------------------------------------ Ctrl-C
def test_ctrl_c_prints_one_line_and_leaves_a_resumable_folder(reference, tmp_path, monkeypatch, capsys):
    config, ref = reference
    out = tmp_path / "run"
    real_sample, calls = generation.sample, []

    def interrupted_at_second_shard(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_sample(*args, **kwargs)

    monkeypatch.setattr(generation, "sample", interrupted_at_second_shard)
    monkeypatch.chdir(tmp_path)
    assert run_cli(config, out) == 130
    line = one_line(capsys.readouterr().err, "interrupted: ")
    assert str(out) in line and "run the same command to resume" in line
    assert [p.name for p in (out / "shards").glob("*.pt")] == [SHARDS[0]]
    assert not (out / lock.LOCK_NAME).exists() and not (out / "metrics.csv").exists()

    monkeypatch.setattr(generation, "sample", real_sample)
    assert run_cli(config, out) == 0
    assert_same_results(out, ref)
    # everything the run wrote lies inside --out (the config file was there before)
    assert {p.relative_to(tmp_path).parts[0] for p in tmp_path.rglob("*")} == {"run"}


def test_debug_shows_the_traceback(reference, tmp_path, monkeypatch, capsys):
    config, _ = reference
    monkeypatch.setattr(generation, "sample", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt))
    assert run_cli(config, tmp_path / "run", "--debug") == 130
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("interrupted: ")


# ------------------------------------------------------------------------------------------- changed inputs
def test_a_resume_with_another_config_field_names_it(reference, tmp_path, capsys):
    config, ref = reference
    out = unfinished_copy(ref, tmp_path / "run")
    changed = tmp_path / "faults.toml"
    changed.write_text(CONFIG.replace("fit_images = 8", "fit_images = 12"))
    assert run_cli(changed, out) == 2
    line = one_line(capsys.readouterr().err, "error: --out")
    assert "estimators.bayesdiff.fit_images: 8 -> 12" in line and "--overwrite" in line


def test_a_resume_with_changed_model_weights_is_refused(reference, tmp_path, monkeypatch, capsys):
    from benchmark.models import DiffusersUNet
    from tests.helpers import tiny_unet
    from tests.toy_preset import ToyPreset

    config, ref = reference
    out = unfinished_copy(ref, tmp_path / "run")
    monkeypatch.setattr(ToyPreset, "load_model", lambda self: DiffusersUNet(tiny_unet(dropout=0.1, seed=1)))
    assert run_cli(config, out) == 2
    line = one_line(capsys.readouterr().err, "error: --out")
    assert "but the model's weights" in line and "changed since it started" in line and "--overwrite" in line
    assert sorted(p.name for p in (out / "shards").glob("*.pt")) == list(SHARDS)  # nothing touched
    assert run_cli(config, out, "--overwrite") == 0  # starts over with the current model
    fresh = torch.load(out / "shards" / SHARDS[0], weights_only=False)
    old = torch.load(ref / "shards" / SHARDS[0], weights_only=False)
    assert not torch.equal(fresh["x0"], old["x0"])


def test_a_resume_with_a_changed_posterior_is_refused(reference, tmp_path, capsys):
    config, ref = reference
    out = unfinished_copy(ref, tmp_path / "run")
    posterior = out / "laplace_last_layer.pt"
    state = torch.load(posterior, weights_only=True)
    state["data_term"] = {k: 2 * v for k, v in state["data_term"].items()}  # same settings, other numbers
    torch.save(state, posterior)
    assert run_cli(config, out) == 2
    line = one_line(capsys.readouterr().err, "error: --out")
    assert "the fitted last-layer posterior (" in line and "changed since it started" in line


# ------------------------------------------------------------------------------------------- I/O failure
def test_a_write_failure_is_a_fault_with_one_line_and_the_run_resumes(reference, tmp_path, monkeypatch, capsys):
    import errno

    config, ref = reference
    out = tmp_path / "run"
    real_save = generation.save_torch

    def disk_full(obj, path):
        if path.name == SHARDS[1]:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_save(obj, path)

    monkeypatch.setattr(generation, "save_torch", disk_full)
    assert run_cli(config, out) == 3
    line = one_line(capsys.readouterr().err, "fault: No space left on device")
    assert SHARDS[1] in line and "run the same command again" in line
    assert not (out / lock.LOCK_NAME).exists()
    monkeypatch.setattr(generation, "save_torch", real_save)
    assert run_cli(config, out) == 0
    assert_same_results(out, ref)


def test_a_real_sigint_ends_python_m_benchmark_with_one_line(tmp_path):
    """`python -m benchmark run` in a fresh process, SIGINT once the first shard is on disk: exit 130, one line
    on stderr, no traceback, the lock released; the same command then finishes the run (8 shards)."""
    import signal
    import time

    config, out = tmp_path / "many_shards.toml", tmp_path / "run"
    config.write_text(CONFIG.replace("num_samples = 8", "num_samples = 32").replace("keep = 6", "keep = 24")
                      .split("[estimators.bayesdiff]")[0] + "[protocols.cost]\n")
    env = {**os.environ, "UQBENCH_EXTRA_PRESETS": TOY_PRESET, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    command = [sys.executable, "-m", "benchmark", "run", "--config", str(config), "--out", str(out), "--quiet"]
    # the child gets the default SIGINT disposition: a suite started in the background (`make test &`) ignores
    # SIGINT, and an ignored disposition is inherited through exec, so the run would never see the Ctrl-C
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[1],
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    def one_shard_done() -> bool:  # any generation shard on disk (written atomically; the queue's order is not the
        return any((out / "shards").glob("gen_*.pt"))  # index order); read from the file system only

    deadline = time.monotonic() + 240
    while not one_shard_done() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    line = one_line(err, "interrupted: ")
    assert "run the same command to resume" in line
    assert not (out / lock.LOCK_NAME).exists() and not (out / "manifest.json").exists()
    assert run_cli(config, out) == 0  # the same command (in this process: the imports are paid already)
    assert len(list((out / "shards").glob("gen_*.pt"))) == 8 and (out / "manifest.json").is_file()
