"""The `make demo` wall-clock target (issue 35: <= 6 min on this machine when idle) read from a finished run, and the
time of `make reference` (the demo config at N = 600 over 3 seeds) read from its seed folders.

A demo run takes 9-13 min here, so this bench does not start one: it reads the run's manifest (its wall-clock
from the run process's start, `process_seconds`, and the per-stage breakdown `timings_seconds`, whose
top-level stages add up to the run's wall-clock without process start and imports) and records the target.
Run `make demo` (or `make demo DEMO_OUT=...`) on an idle machine first, then:

    python bench/demo_bench.py --run results/runs/demo [--label "current demo config"]
    python bench/demo_bench.py --reference results/reference/demo     # after `make reference`

A seeds run is one process: each seed's manifest counts `process_seconds` from that process's start, so the
reference's time is the largest of them.
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from common import ROOT, Target, record_targets

from benchmark.report.tables import top_level

LIMIT_MINUTES = 6.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    latest = ROOT / "results" / "runs" / "demo"
    parser.add_argument("--run", type=Path, default=latest if (latest / "manifest.json").is_file()
                        else ROOT / "results" / "reference" / "demo" / "seed_0")
    parser.add_argument("--label", default="current demo config")
    parser.add_argument("--reference", type=Path, default=None, help="a `make reference` folder (seed_<s>/ inside)")
    args = parser.parse_args()
    if args.reference is not None:
        record_reference(args.reference)
        return
    manifest = json.loads((args.run / "manifest.json").read_text())
    timings = manifest["timings_seconds"]
    top = top_level(timings)  # wall-clock stages, without their sub-stages
    total = sum(top.values())
    estimators = len(manifest.get("estimators", {}))
    stages = ", ".join(f"{k} {v:.0f} s" for k, v in sorted(top.items(), key=lambda kv: -kv[1]) if v >= 10)
    slug = re.sub(r"[^a-z0-9]+", "-", args.label.lower()).strip("-")
    process = manifest.get("process_seconds")  # the run's process from its start (imports included)
    judged = process or total  # a run made before process_seconds was recorded: its stages
    figure = f"{total / 60:.2f} min of stages" + (f"; {process / 60:.2f} min from process start" if process else "")
    processes = manifest.get("processes")
    record_targets(f"demo-{slug}", [Target(
        f"make demo <= {LIMIT_MINUTES:g} min, idle machine ({args.label}, {estimators} estimators)",
        figure, judged <= 60 * LIMIT_MINUTES,
        f"{args.run.name}/manifest.json stages: {stages}" + (f"; {processes} processes" if processes else ""))])
    print(f"{args.label}: {figure}")


def record_reference(folder: Path) -> None:
    """`make reference`'s time: the largest process_seconds of its seed folders (one process runs them in turn)."""
    manifests = [json.loads(p.read_text()) for p in sorted(folder.glob("seed_*/manifest.json"))]
    if not manifests:
        raise SystemExit(f"error: --reference {folder} holds no seed_<s>/manifest.json. Fix: run `make reference` first")
    seconds = max(float(m.get("process_seconds") or 0.0) for m in manifests)
    run = manifests[0]["config"]["run"]
    record_targets("reference", [Target(
        "make reference exists and its time is recorded (no limit; idle machine)", f"{seconds / 60:.1f} min",
        True, f"{len(manifests)} seeds x N = {run['num_samples']} (K = {run['keep']}), "
              f"{manifests[0].get('processes')} processes; {folder.name}/seed_*/manifest.json process_seconds")])
    print(f"make reference: {seconds / 60:.1f} min for {len(manifests)} seeds")


if __name__ == "__main__":
    main()
