"""How often one run's call path steps back up the layers (README "Architecture"): every call from a function of a
lower layer into a function of a higher one (a callback: an estimator factory handed down, a protocol's hook).

Runs the smoke config at a tiny size under a profiler and prints the distinct upward (caller -> callee) module
pairs, the number of package modules the run visits and the count. Usage: python bench/layer_path.py
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.test_layers import layer_of  # noqa: E402  (the one definition of the layers)


def module_of(frame) -> str | None:
    name = frame.f_globals.get("__name__", "")
    return name if name.split(".")[0] in ("benchmark", "estimators", "metrics") else None


def main() -> int:
    import tomllib

    from benchmark.config import parse_config
    from benchmark.runner.run import run_benchmark

    data = tomllib.loads((ROOT / "configs" / "smoke.toml").read_text())
    data["run"].update(num_samples=24, keep=20, batch_size=12, bootstrap=10)
    data["protocols"]["guidance"]["num_samples"] = 6
    data["protocols"]["sparsification"]["num_images"] = 6
    config = parse_config(data)
    visited: set[str] = set()
    upward: dict[tuple[str, str], int] = {}

    def profile(frame, event, arg):
        if event != "call":
            return
        callee = module_of(frame)
        caller = module_of(frame.f_back) if frame.f_back is not None else None
        if callee is None:
            return
        visited.add(callee)
        if caller is not None and caller != callee and layer_of(callee) > layer_of(caller):
            upward[(caller, callee)] = upward.get((caller, callee), 0) + 1

    with tempfile.TemporaryDirectory() as out:
        sys.setprofile(profile)
        try:
            run_benchmark(config, Path(out) / "run", progress=False)
        finally:
            sys.setprofile(None)
    print(f"modules visited: {len(visited)}")
    print(f"distinct upward steps (lower layer calls a higher one): {len(upward)}")
    for (caller, callee), count in sorted(upward.items()):
        print(f"  {caller} (layer {layer_of(caller)}) -> {callee} (layer {layer_of(callee)}): {count} calls")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
