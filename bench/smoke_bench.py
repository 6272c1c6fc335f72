"""Wall-clock of the CI smoke run (configs/smoke.toml) and of its report, against issue 18's targets.

Runs `python -m benchmark run --config configs/smoke.toml` in a fresh process into a temporary folder (the
same command CI runs, without the regression check) and reads the per-stage time breakdown that the run
writes into its manifest. Targets: the whole smoke run <= 45 s, writing the report <= 5 s.
Written to results/bench/smoke.md and results/bench/targets/smoke.json.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, Target, machine, record_targets, table, write_report

SMOKE_SECONDS, REPORT_SECONDS = 45.0, 5.0


def _children_cpu() -> float:
    """User + system CPU seconds of the finished child processes of this process."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    where = machine(threads=None)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "smoke"
        start, children = time.perf_counter(), _children_cpu()
        done = subprocess.run([sys.executable, "-m", "benchmark", "run", "--config", "configs/smoke.toml",
                               "--out", str(out), "--quiet"], cwd=ROOT)
        wall, cpu = time.perf_counter() - start, _children_cpu() - children
        if done.returncode != 0:
            raise SystemExit(f"the smoke run failed with exit code {done.returncode}")
        timings = json.loads((out / "manifest.json").read_text()).get("timings_seconds", {})
    stages = sorted(timings.items(), key=lambda kv: -kv[1])
    report = timings.get("report", float("nan"))
    write_report("smoke.md", "Smoke run (CI gate): wall-clock by stage", [
        f"`python -m benchmark run --config configs/smoke.toml` in a fresh process: {wall:.1f} s wall-clock "
        f"(process start and imports included), {cpu:.1f} s of CPU time (user + system of the run's process; at "
        f"one intra-op thread about what an idle machine's wall-clock would be, I/O waits aside). {where}. "
        "Written by `bench/smoke_bench.py`.",
        table(["stage", "seconds"], [[name, seconds] for name, seconds in stages]),
        "Stages come from the run's manifest (`timings_seconds`); `generation.<estimator>` is the time inside that "
        "estimator summed over the shards (part of `generation`), `features.<space>` part of `features`.",
    ])
    record_targets("smoke", [
        Target(f"smoke run <= {SMOKE_SECONDS:g} s", f"{wall:.1f} s", wall <= SMOKE_SECONDS,
               f"bench/smoke_bench.py, wall-clock; {cpu:.1f} s CPU time (the idle machine's wall-clock at 1 thread), "
               f"load average {os.getloadavg()[0]:.1f} at the end"),
        Target(f"report writing <= {REPORT_SECONDS:g} s (smoke)", f"{report:.2f} s", report <= REPORT_SECONDS,
               "manifest timings['report']"),
    ])


if __name__ == "__main__":
    main()
