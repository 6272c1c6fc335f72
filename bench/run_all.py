"""`make bench`: every performance benchmark, one fresh process each; reports in results/bench/*.md.

    estimators_bench.py  -> estimator_overhead.md, shared_trajectory.md
    metrics_bench.py     -> metrics.md (metrics vs reference implementations, peak memory at N = 10k)
    scaling_bench.py     -> scaling.md (time and memory of a run vs N = 1k, 2k, 4k, 8k)
    smoke_bench.py       -> smoke.md (the CI smoke run by stage)
    demo_bench.py        -> the `make demo` <= 6 min target, from the latest demo run's manifest
    gpu.py --tiny        -> gpu_tiny_cpu.md (the GPU bench's code on a tiny CPU batch, so it cannot rot;
                            the GPU table itself is `python bench/gpu.py` on a GPU -> gpu.md)
Not run here (too long for `make bench`; each writes its own report and targets): demo_profile.py
(demo_profile.md, the demo under cProfile), paper_size_bench.py (paper_size.md, the metrics at N = 50 000, about
40 CPU-minutes), demo_bench.py --reference (make reference's time), gpu.py on a GPU (gpu.md).
And summary.md: the wall-clock each bench took and one table of the targets with the figure measured
(benches record them in results/bench/targets/*.json) and whether each is met. Extra arguments after `--only NAME` run one bench.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time

from common import RESULTS, ROOT, load_targets, machine, table, write_report

BENCHES = {
    "estimators": ("estimators_bench.py", ["estimator_overhead.md", "shared_trajectory.md"]),
    "metrics": ("metrics_bench.py", ["metrics.md"]),
    "scaling": ("scaling_bench.py", ["scaling.md"]),
    "smoke": ("smoke_bench.py", ["smoke.md"]),
    "gpu-tiny": ("gpu.py --tiny", ["gpu_tiny_cpu.md"]),
    "demo": ("demo_bench.py", []),  # reads the latest demo run's manifest (make demo first)
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=sorted(BENCHES), nargs="+", default=list(BENCHES))
    args = parser.parse_args()
    where = machine(threads=None)  # each bench reports the thread count it used
    rows, failed = [], []
    for name in args.only:
        script, reports = BENCHES[name]
        start = time.perf_counter()
        program, *extra = script.split()
        done = subprocess.run([sys.executable, str(ROOT / "bench" / program), *extra], cwd=ROOT)
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            failed.append(name)
        rows.append([name, script, ", ".join(f"[{r}]({r})" for r in reports),
                     "ok" if done.returncode == 0 else f"failed ({done.returncode})", seconds])
    write_report("summary.md", "Performance benchmarks", [
        f"`make bench` ran {len(rows)} bench(es). {where}.",
        table(["bench", "script", "reports", "status", "wall-clock (s)"], rows),
        "## Targets (issues 18 and 35)",
        table(["target", "measured", "met", "source / reason"],
              [[t.target, t.figure, "met" if t.met else "NOT met", t.note] for _, t in load_targets()]),
        "Figures come from the latest run of each bench (results/bench/targets/*.json); a bench not run this "
        "time keeps its previous figures.",
    ])
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)} (reports in {RESULTS})")


if __name__ == "__main__":
    main()
