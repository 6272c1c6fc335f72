"""torchrun on CPU: two processes (gloo) give bit-identical shards, images, scores and metrics to one process.

Seeds are per sample index and a shard is the same batch of indices in both runs, so nothing may differ but
the timing metrics. Both runs use the same intra-op thread count (run.threads, default 1; another thread
count changes float32 conv sums in the last bits, ~1e-7 relative in x0, as measured). The ranks take the
items of both phases from one queue (benchmark.execution.work_queue: which rank takes which item depends on
timing), so a spy wraps os.replace (every atomic write ends with it) to check that every shard and every feature
chunk is written exactly once over both ranks, that both ranks did part of the work, and that the Laplace fit
runs on rank 0 only.

The helpers here are shared with tests/test_resume.py: the toy run config, the environment that makes the
toy preset reachable from a fresh process (UQBENCH_EXTRA_PRESETS), and the uninterrupted reference run.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
TOY_PRESET = "tests.toy_preset:ToyPreset"
TIMING_METRICS = ("seconds_per_sample", "time_ratio")

# 10 samples in shards of 4: shards [0,4), [4,8), [8,10); under 2 ranks rank 0 gets the first and the last.
TOY_TOML = """
[run]
name = "toy"
preset = "toy"
steps = 4
num_samples = 10
keep = 8
batch_size = 4
bootstrap = 10

[estimators.sensitivity]
m = 2
window = [40, 50]  # (45, 49) holds no step of a 4-step run: refused by the config check
[estimators.mc_dropout]
m = 2
window = [40, 50]
[estimators.bayesdiff]
mc_samples = 3
skip = 2
fit_images = 16

[protocols.filtered_fid]
curve_fractions = [1.0]
[protocols.guidance]
num_samples = 4
m = 2
window = [40, 50]
[protocols.cost]
[protocols.ground_truth]
"""


def toy_config(folder: Path) -> Path:
    path = folder / "toy.toml"
    path.write_text(TOY_TOML)
    return path


def fresh_process_env() -> dict[str, str]:
    """The environment of a subprocess run: the toy preset by name, the repo importable (and OMP_NUM_THREADS=1
    as torchrun sets it: the run itself uses run.threads)."""
    env = dict(os.environ)
    env.update(UQBENCH_EXTRA_PRESETS=TOY_PRESET, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    env.pop("WORLD_SIZE", None)
    return env


def run_in_process(config: Path, out: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """`python -m benchmark run --config config --out out --quiet` in this process."""
    from benchmark.cli import main

    monkeypatch.setenv("UQBENCH_EXTRA_PRESETS", TOY_PRESET)
    return main(["run", "--config", str(config), "--out", str(out), "--quiet"])


def reference_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted one-process toy run, made once per test session and shared by the test files."""
    out = tmp_path_factory.getbasetemp() / "toy-reference" / "run"
    if not (out / "manifest.json").is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        with pytest.MonkeyPatch.context() as mp:
            assert run_in_process(toy_config(out.parent), out, mp) == 0
    return out


def result_files(run: Path) -> list[str]:
    """Relative paths of the files a run left, temporary files excluded."""
    return sorted(p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file() and not p.name.startswith("."))


def assert_same_results(run: Path, reference: Path) -> None:
    """Every shard tensor bit-identical; metrics.csv identical except the timing metrics."""
    shards = sorted(p.name for p in (reference / "shards").glob("*.pt"))
    assert shards == sorted(p.name for p in (run / "shards").glob("*.pt"))
    for name in shards:
        a = torch.load(run / "shards" / name, weights_only=False)
        b = torch.load(reference / "shards" / name, weights_only=False)
        assert torch.equal(a["indices"], b["indices"]) and torch.equal(a["x0"], b["x0"]), name
        for group in ("scores", "pixels", "extras"):
            assert a[group].keys() == b[group].keys(), (name, group)
            for key in a[group]:
                assert torch.equal(a[group][key], b[group][key]), (name, group, key)
        assert a["nfe"] == b["nfe"], name
    frame, expected = (pd.read_csv(r / "metrics.csv") for r in (run, reference))
    frame, expected = (f[~f.metric.isin(TIMING_METRICS)].reset_index(drop=True) for f in (frame, expected))
    assert len(expected) > 40
    pd.testing.assert_frame_equal(frame, expected, check_exact=True)


# The spy: runs the CLI like `python -m benchmark`, logging (rank, kind, path) for every atomic write (the
# final os.replace) and every Laplace fit, one JSON line per event in $SPY_LOG.
SPY = textwrap.dedent("""
    import json, os, sys

    def log(kind, detail):
        with open(os.environ["SPY_LOG"], "a") as handle:
            handle.write(json.dumps([int(os.environ.get("RANK", 0)), kind, str(detail)]) + "\\n")

    real_replace = os.replace
    def replace(src, dst, *args, **kwargs):
        real_replace(src, dst, *args, **kwargs)
        log("write", dst)
    os.replace = replace

    from estimators.laplace import LastLayerLaplace
    real_fit = LastLayerLaplace.fit
    def fit(self, *args, **kwargs):
        log("laplace_fit", "")
        return real_fit(self, *args, **kwargs)
    LastLayerLaplace.fit = fit

    from benchmark.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def test_two_processes_match_one_bit_for_bit(tmp_path, tmp_path_factory):
    reference = reference_run(tmp_path_factory)
    spy, log = tmp_path / "spy.py", tmp_path / "spy.jsonl"
    spy.write_text(SPY)
    out = tmp_path / "two"
    env = {**fresh_process_env(), "SPY_LOG": str(log)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(spy),
           "run", "--config", str(toy_config(tmp_path)), "--out", str(out), "--quiet"]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    assert_same_results(out, reference)
    assert result_files(out) == result_files(reference)
    assert json.loads((out / "manifest.json").read_text())["config"] == json.loads(
        (reference / "manifest.json").read_text())["config"]

    events = [json.loads(line) for line in log.read_text().splitlines()]
    writes = [(rank, Path(path)) for rank, kind, path in events if kind == "write"]
    made = [path for _, path in writes if path.parent in (out / "shards", out / "features")]
    assert len(made) == len(set(made)), "a shard or feature chunk was made twice"
    shards = sorted(p.name for p in made if p.parent == out / "shards" and p.suffix == ".pt")
    assert shards == ["gen_0000000_0000004.pt", "gen_0000004_0000008.pt", "gen_0000008_0000010.pt",
                      "guided_0000000_0000004.pt", "placebo_0000000_0000004.pt", "plainmatched_0000000_0000004.pt"]
    # every feature chunk (3 generated shards, the guided one unless guidance left it unchanged, the real test set)
    assert sorted(p.name for p in made if p.parent == out / "features") == sorted(
        p.name for p in (out / "features").iterdir())
    assert {rank for rank, path in writes if path in made} == {0, 1}, "one rank did all the work"
    assert [rank for rank, kind, _ in events if kind == "laplace_fit"] == [0]
