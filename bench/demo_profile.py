"""Where the demo's time goes: the demo config at a reduced size in ONE process under cProfile (issue 35: profile
first, then pick levers that are measured).

The run is the real command (`python -m benchmark run --config configs/demo.toml --set ...`) with the sample counts
scaled by `--fraction` (N, K, the guided samples, the sparsification images; every estimator and protocol as shipped).
It reports, from the run's manifest, each stage's seconds and its cost per unit (per generated sample, per guided
sample, per sparsification image-draw), the projection of every stage to the full config's sizes (a linear scaling
by the stage's own unit count; protocols by N), the child's CPU time next to its wall-clock (a loaded machine
stretches wall-clock, not CPU time: the projection is scaled by CPU / wall), and the 20 functions with the most
own time (cProfile tottime: which kernels the network passes spend in).

    OMP_NUM_THREADS=1 python bench/demo_profile.py [--fraction 0.25] [--processes 2]
"""
from __future__ import annotations

import argparse
import io
import json
import os
import pstats
import resource
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import common  # noqa: F401  (puts the repository on sys.path)
from common import ROOT, machine, table, write_report

from benchmark.report.tables import top_level

CONFIG = ROOT / "configs" / "demo.toml"
#: the generation sub-stages that add up (the per-estimator and sampler timings are parts of generation.shards)
ADDITIVE = ("generation.shards", "generation.guided_pass", "generation.sparsification_pass")


def sizes(config: dict) -> dict[str, float]:
    """The unit counts that drive each stage: generated samples, guided samples, sparsification image-draws."""
    run, protocols = config["run"], config.get("protocols", {})
    sparse = protocols.get("sparsification", {})
    return {"samples": run["num_samples"], "guided": protocols.get("guidance", {}).get("num_samples", 0),
            "image_draws": sparse.get("num_images", 0) * sparse.get("noise_draws", 1)}


def overrides(config: dict, fraction: float) -> list[str]:
    """`--set` items that scale the run's sample counts by `fraction` (at least a few of each)."""
    run, protocols = config["run"], config.get("protocols", {})
    n = max(20, round(run["num_samples"] * fraction))
    items = [f"run.num_samples={n}", f"run.keep={max(10, round(n * run['keep'] / run['num_samples']))}",
             f"run.batch_size={min(run['batch_size'], n)}"]
    if "guidance" in protocols:
        items.append(f"protocols.guidance.num_samples={max(8, round(protocols['guidance']['num_samples'] * fraction))}")
    if "sparsification" in protocols:
        items.append(f"protocols.sparsification.num_images="
                     f"{max(4, round(protocols['sparsification']['num_images'] * fraction))}")
    return items


def unit_of(stage: str) -> str:
    """Which unit count drives a stage's time."""
    if stage == "generation.guided_pass":
        return "guided"
    if stage == "generation.sparsification_pass":
        return "image_draws"
    return "samples"


def reduced_sizes(full: dict, items: list[str]) -> dict[str, float]:
    """The unit counts of the reduced run (the full config with the `--set` items)."""
    from benchmark.config.overrides import apply_overrides

    return sizes(apply_overrides(full, items))


def profile(fraction: float, out: Path) -> tuple[dict, dict, float, float, str]:
    """Run the reduced demo under cProfile; (full sizes, reduced sizes, wall s, CPU s, top-functions text)."""
    full = tomllib.loads(CONFIG.read_text())
    items = overrides(full, fraction)
    prof = out / "demo.prof"
    command = [sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "benchmark", "run", "--config", str(CONFIG),
               "--out", str(out / "run"), "--overwrite", "--quiet"] + [a for item in items for a in ("--set", item)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    tick = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
                   stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - tick
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    text = io.StringIO()
    pstats.Stats(str(prof), stream=text).sort_stats("tottime").print_stats(20)
    return full, reduced_sizes(full, items), wall, cpu, text.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fraction", type=float, default=0.25)
    parser.add_argument("--processes", type=int, default=2, help="processes of `make demo` for the projection")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        full, small, wall, cpu, top = profile(args.fraction, Path(folder))
        manifest = json.loads((Path(folder) / "run" / "manifest.json").read_text())
    timings = manifest["timings_seconds"]
    stretch = min(1.0, cpu / wall)  # < 1 on a loaded machine: the stages' wall-clock overstates their CPU time
    big = sizes(full)
    rows, total = [], 0.0
    for stage, seconds in sorted(timings.items(), key=lambda kv: -kv[1]):
        if not stage.startswith(("generation.", "protocols.")) or seconds < 0.05:
            continue
        unit = unit_of(stage) if stage.startswith("generation.") else "samples"
        per = seconds * stretch / max(small[unit], 1)
        additive = stage in ADDITIVE or stage.startswith(("generation.features.", "generation.real_features.",
                                                          "protocols."))
        total += per * big[unit] if additive else 0.0
        rows.append([stage if additive else f"↳ {stage} (in shards)", unit, small[unit], round(seconds, 2),
                     round(per, 4), round(per * big[unit], 1)])
    fixed = sum(v for k, v in top_level(timings).items() if k not in ("generation", "protocols")) * stretch
    wall_projection = total / args.processes + fixed
    paragraphs = [
        f"The demo config (configs/demo.toml) with its sample counts scaled by {args.fraction:g} (N = "
        f"{small['samples']:g}, {small['guided']:g} guided samples, {small['image_draws']:g} sparsification "
        f"image-draws), every estimator and protocol as shipped, in one process with 1 intra-op thread under cProfile. "
        f"{machine(threads=1)}. Child wall-clock {wall:.0f} s, CPU time {cpu:.0f} s (ratio {stretch:.2f}: stage "
        f"seconds below are multiplied by it before projecting). Written by `bench/demo_profile.py`.",
        table(["stage", "unit", "units (reduced)", "seconds (reduced)", "CPU s per unit", "projected to the full "
               "config (s)"], rows),
        f"Projection for the full config (N = {big['samples']:g}, {big['guided']:g} guided, {big['image_draws']:g} "
        f"image-draws): {total:.0f} process-seconds of generation and protocols, {fixed:.0f} s of setup / features / "
        f"report, so about {wall_projection / 60:.1f} min with {args.processes} processes if the work splits evenly "
        "(protocols run after generation; cProfile itself adds a few per cent).",
        "Functions with the most own time (cProfile, tottime):\n\n```text\n" + top.split("Ordered by")[-1].strip()
        + "\n```",
    ]
    path = write_report("demo_profile.md", "Demo profile: where the time goes", paragraphs)
    print(path.read_text())


if __name__ == "__main__":
    main()
