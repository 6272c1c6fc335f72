"""Shared pieces of the performance benchmarks: the model under test, timing, the machine, Markdown tables.

The benches use the `digits` preset (16x16, class-conditional UNet) when its weights are present, else the
test suite's toy preset (a random 8x8 UNet), and say which in every report.
"""
from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

RESULTS = ROOT / "results" / "bench"
TOY_PRESET = "tests.toy_preset:ToyPreset"


@dataclass
class Subject:
    """The preset the benches run on: its name for configs, the preset object and its loaded model."""

    name: str
    preset: Any
    model: Any
    env: dict[str, str]  # extra environment a fresh process needs to find the preset


def subject(prefer: str = "digits") -> Subject:
    """`prefer` when its weights load, else the toy preset (reached through UQBENCH_EXTRA_PRESETS)."""
    from benchmark import presets
    from benchmark.errors import UQBenchError

    if prefer in presets.names():
        try:
            preset = presets.get(prefer)
            return Subject(prefer, preset, preset.load_model().eval(), {})
        except UQBenchError as err:
            print(f"[bench] preset {prefer!r} unavailable ({err}); using the toy preset", file=sys.stderr)
    os.environ["UQBENCH_EXTRA_PRESETS"] = TOY_PRESET
    from tests.toy_preset import ToyPreset

    preset = ToyPreset()
    return Subject("toy", preset, preset.load_model().eval(), {"UQBENCH_EXTRA_PRESETS": TOY_PRESET})


def median_seconds(function: Callable[[], Any], repeats: int) -> tuple[float, list[float]]:
    """Median wall-clock seconds of `repeats` calls (after one untimed warm-up call) and all the timings."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def machine(threads: int | None = -1) -> str:
    """One line about where the numbers were measured (they depend on it, and on the load).

    threads: the intra-op thread count to report (-1: this process's; None: leave it out)."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    threads = torch.get_num_threads() if threads == -1 else threads
    with_threads = f" with {threads} intra-op thread(s)" if threads is not None else ""
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}"
            f"{with_threads}, Python {platform.python_version()}; "
            f"1-minute load average {load:.1f} at the start (the machine is shared: wall-clock numbers are noisy)")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub Markdown table; floats with 4 significant digits."""
    def cell(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass
class Target:
    """One performance target of issue 18 with the figure a bench measured for it."""

    target: str  # e.g. "MC-Dropout: CPU time ratio / NFE ratio - 1 <= 5 %"
    figure: str  # what was measured, e.g. "+3.1 %"
    met: bool
    note: str = ""  # where the figure comes from, or why it is not met


def record_targets(bench: str, targets: Sequence[Target]) -> Path:
    """Write a bench's targets to results/bench/targets/<bench>.json; `run_all.py` puts them in summary.md."""
    import json
    from dataclasses import asdict

    from benchmark.execution.io import save_text

    path = RESULTS / "targets" / f"{bench}.json"
    save_text(json.dumps([asdict(t) for t in targets], indent=1) + "\n", path)
    return path


def load_targets() -> list[tuple[str, Target]]:
    import json

    found = []
    for path in sorted((RESULTS / "targets").glob("*.json")):
        found += [(path.stem, Target(**row)) for row in json.loads(path.read_text())]
    return found


def write_report(name: str, title: str, paragraphs: Sequence[str]) -> Path:
    from benchmark.execution.io import save_text

    path = RESULTS / name
    save_text(f"# {title}\n\n" + "\n\n".join(paragraphs) + "\n", path)
    print(f"[bench] wrote {path.relative_to(ROOT)}")
    return path
