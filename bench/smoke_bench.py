"""Wall-clock of the CI smoke run (configs/smoke.toml) and of its report, against issue 18's targets.

Runs `python -m benchmark run --config configs/smoke.toml` in a fresh process into a temporary folder (the
same command CI runs, without the regression check) and reads the per-stage time breakdown that the run
writes into its manifest. Targets: the whole smoke run <= 45 s, writing the report <= 5 s.
Written to results/bench/smoke.md and results/bench/targets/smoke.json.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, Target, machine, record_targets, table, write_report

SMOKE_SECONDS, REPORT_SECONDS = 45.0, 5.0


def main() -> None:
    where = machine(threads=None)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "smoke"
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "benchmark", "run", "--config", "configs/smoke.toml",
                               "--out", str(out), "--quiet"], cwd=ROOT)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"the smoke run failed with exit code {done.returncode}")
        timings = json.loads((out / "manifest.json").read_text()).get("timings_seconds", {})
    stages = sorted(timings.items(), key=lambda kv: -kv[1])
    report = timings.get("report", float("nan"))
    write_report("smoke.md", "Smoke run (CI gate): wall-clock by stage", [
        f"`python -m benchmark run --config configs/smoke.toml` in a fresh process: {wall:.1f} s wall-clock "
        f"(process start and imports included). {where}. Written by `bench/smoke_bench.py`.",
        table(["stage", "seconds"], [[name, seconds] for name, seconds in stages]),
        "Stages come from the run's manifest (`timings_seconds`); `generation.<estimator>` is the time inside that "
        "estimator summed over the shards (part of `generation`), `features.<space>` part of `features`.",
    ])
    record_targets("smoke", [
        Target(f"smoke run <= {SMOKE_SECONDS:g} s", f"{wall:.1f} s", wall <= SMOKE_SECONDS, "bench/smoke_bench.py"),
        Target(f"report writing <= {REPORT_SECONDS:g} s (smoke)", f"{report:.2f} s", report <= REPORT_SECONDS,
               "manifest timings['report']"),
    ])


if __name__ == "__main__":
    main()
