"""diffusion-uq-bench: a benchmark of pixel-wise uncertainty estimators for diffusion models.

The Python API for notebooks (docs/python_api.md), the command line's `run`, `validate` and `leaderboard` as calls:

    import benchmark
    run = benchmark.run("configs/smoke.toml", out="results/smoke")   # or a dict with the TOML's structure
    run.headline; run.verdicts; run.metrics                          # pandas DataFrames
    benchmark.compare([run, benchmark.load("results/runs/demo")])    # the leaderboard's ranks

The names are imported on first use (PEP 562): `import benchmark` imports neither torch nor pandas.
"""
from __future__ import annotations

from importlib import import_module

__all__ = ["Replicates", "Run", "compare", "load", "run"]

#: public name -> the module of benchmark.api that defines it
_HOMES = {"run": "benchmark.api.running", "load": "benchmark.api.results", "Run": "benchmark.api.results",
          "Replicates": "benchmark.api.results", "compare": "benchmark.api.comparison"}


def __getattr__(name: str):
    if name in _HOMES:
        value = getattr(import_module(_HOMES[name]), name)
        globals()[name] = value  # once imported, a plain attribute
        return value
    raise AttributeError(f"module 'benchmark' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
