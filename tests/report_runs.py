"""Small finished run folders on the toy preset, made once per test session and shared by the report,
leaderboard and site tests (each run takes a few seconds).

`toy_run(name)` returns the folder of a finished run: "base" (N = 24, seed 0), "seed1" (same track, seed 1)
and "other_track" (K = 18: a different track). The toy preset is made visible through
$UQBENCH_EXTRA_PRESETS, so `validate` can reload its weights like a built-in preset's.
"""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

TOY_PRESET = "tests.toy_preset:ToyPreset"
WINDOW = [40, 49]  # fraction [0.8, 0.98) of the trajectory: one step of a 10-step run before the final one
BASE = {
    "run": {"name": "toy", "preset": "toy", "steps": 10, "num_samples": 24, "keep": 20, "batch_size": 24,
            "bootstrap": 20, "seed": 0},
    "estimators": {"sensitivity": {"m": 2, "window": WINDOW}, "mc_dropout": {"m": 2, "window": WINDOW}},
    "protocols": {"filtered_fid": {"curve_fractions": [0.5, 1.0]}, "precision_recall": {},
                  "sparsification": {"num_images": 4}, "cost": {}},
}
VARIANTS = {"base": {}, "seed1": {"seed": 1}, "other_track": {"keep": 18}}


@lru_cache(maxsize=None)
def _root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="uqbench-report-runs-"))
    atexit.register(shutil.rmtree, root, True)
    return root


def use_toy_preset() -> None:
    """Make `preset = "toy"` loadable by name (also by `validate`, which reloads the weights)."""
    current = os.environ.get("UQBENCH_EXTRA_PRESETS", "")
    if TOY_PRESET not in current:
        os.environ["UQBENCH_EXTRA_PRESETS"] = ",".join(p for p in (current, TOY_PRESET) if p)


def toy_run(variant: str = "base") -> Path:
    """The finished run folder of `variant` (built on first use), with the toy preset visible for this test
    (tests/conftest.py restores $UQBENCH_EXTRA_PRESETS after every test)."""
    use_toy_preset()
    return _build_toy_run(variant)


@lru_cache(maxsize=None)
def _build_toy_run(variant: str) -> Path:
    from benchmark.config import parse_config
    from benchmark.runner.run import run_benchmark

    config = {**BASE, "run": {**BASE["run"], **VARIANTS[variant], "name": f"toy-{variant}"}}
    out = _root() / f"toy {variant}#1"  # a space and a '#' in the folder name: the site must cope
    run_benchmark(parse_config(config), out, progress=False)
    return out


def copy_run(variant: str, target: Path) -> Path:
    """A byte-for-byte copy of a finished run (still valid: same files, same checksums)."""
    shutil.copytree(toy_run(variant), target)
    return target
