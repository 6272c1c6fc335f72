"""How a whole run's time and memory grow with the number of samples N (generation + features + metrics).

For each N the real command (`python -m benchmark run`) runs in a fresh process on the digits preset
(else the toy preset) with DDIM at few steps (4 by default, to keep the bench under ~3 minutes here;
generation time is linear in the steps), the sensitivity estimator (M = 2) and the filtered-FID,
precision/recall and cost protocols. Phase timings come from the run's manifest.json; memory is the
process's peak RSS (getrusage), next to its RSS once torch is imported (before the run starts).

Usage: python bench/scaling_bench.py [--sizes 1000 2000 4000 8000] [--steps 4] [--m 2] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import common  # noqa: F401  (puts the repository on sys.path)
from common import ROOT, machine, subject, table, write_report

PHASES = ("setup", "generation", "features", "protocols.filtered_fid", "protocols.precision_recall", "report")


def config_text(preset: str, n: int, steps: int, batch: int, bootstrap: int, m: int) -> str:
    return f"""
[run]
name = "scaling-{n}"
preset = "{preset}"
steps = {steps}
num_samples = {n}
keep_fraction = 0.8
batch_size = {batch}
bootstrap = {bootstrap}

[estimators.sensitivity]
m = {m}

[protocols.filtered_fid]
[protocols.precision_recall]
[protocols.cost]
"""


def child(config: str, out: str) -> None:
    """Run the CLI in this process; print the peak RSS and the RSS before the run (MiB) as JSON."""
    import torch  # noqa: F401  (imported before the baseline is taken, as the run would)

    from benchmark import presets  # noqa: F401
    from benchmark.cli import main

    before = _rss_mib()
    code = main(["run", "--config", config, "--out", out, "--quiet"])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"code": code, "rss_before_mib": before, "peak_rss_mib": peak}))


def _rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 4000, 8000])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--m", type=int, default=2, help="sensitivity estimator draws per window step")
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--bootstrap", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--child", nargs=2, metavar=("CONFIG", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    subj = subject()
    where = machine(threads=args.threads)
    env = {**os.environ, **subj.env, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": str(ROOT)}
    rows: list[list] = []
    totals: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            config = Path(tmp) / f"scaling-{n}.toml"
            config.write_text(config_text(subj.name, n, args.steps, args.batch, args.bootstrap, args.m))
            out = Path(tmp) / f"run-{n}"
            done = subprocess.run([sys.executable, __file__, "--child", str(config), str(out)], env=env, cwd=ROOT,
                                  capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"run with N = {n} failed:\n{done.stderr[-3000:]}")
            memory = json.loads(done.stdout.strip().splitlines()[-1])
            timings = json.loads((out / "manifest.json").read_text())["timings_seconds"]
            total = sum(timings.values())
            totals.append(total)
            rows.append([n, *(timings.get(p, 0.0) for p in PHASES), total, memory["rss_before_mib"],
                         memory["peak_rss_mib"]])
            print(f"[bench] N = {n}: {total:.1f} s, peak RSS {memory['peak_rss_mib']:.0f} MiB", file=sys.stderr)
    exponents = [[phase, growth_exponent(args.sizes, [row[1 + i] for row in rows])] for i, phase in enumerate(PHASES)]
    exponents.append(["total", growth_exponent(args.sizes, totals)])
    exponents.append(["peak RSS above the RSS before the run",
                      growth_exponent(args.sizes, [row[-1] - row[-2] for row in rows])])
    write_report("scaling.md", "Time and memory vs the number of samples N", [
        f"Preset `{subj.name}`, DDIM **{args.steps} steps** (few, to keep the bench short; generation is linear "
        f"in the steps), batch {args.batch}, estimator sensitivity (M = {args.m} on its window, the last step), "
        f"protocols filtered_fid, precision_recall, cost with {args.bootstrap} bootstrap replicates, classifier features. "
        f"One fresh `python -m benchmark run` process per N. {where}. Written by `bench/scaling_bench.py`.",
        table(["N", *(f"{p} (s)" for p in PHASES), "total (s)", "RSS before run (MiB)", "peak RSS (MiB)"], rows),
        f"Growth exponent b in time ~ N^b, fitted between N = {args.sizes[0]} and N = {args.sizes[-1]} "
        "(1 = linear, 2 = quadratic; phases that take well under a second are dominated by fixed costs):",
        table(["phase", "exponent b"], exponents),
        "Peak memory hardly grows with N: it is set by the libraries a run imports and by one batch's "
        "activations in the network (batch x (1 + M) rows at the window step); the N generated images, pixel "
        "maps and features are a few MiB each even at the largest N.",
    ])


def growth_exponent(sizes: list[int], values: list[float]) -> float:
    """b of values ~ sizes^b from the first and the last point (nan when a value is not positive)."""
    if len(sizes) < 2 or min(values[0], values[-1]) <= 0:
        return float("nan")
    return math.log(values[-1] / values[0]) / math.log(sizes[-1] / sizes[0])


if __name__ == "__main__":
    main()
