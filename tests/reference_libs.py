"""The parity-only reference libraries (torch-fidelity, laplace-torch, BackPACK, curvlinops, ASDL) live in a
folder of their own, `<venv>/reference-libs` (the Makefile's REFERENCE_LIBS), off the runtime import path:
torchmetrics imports torch_fidelity whenever it is importable, and torch_fidelity imports torchvision,
which cannot be installed here. Only parity tests reach them, through this module:

- `on_path()`: a context manager that appends the folder to sys.path (after site-packages, so nothing of the
  runtime environment is shadowed) and restores sys.path and sys.modules of those libraries afterwards;
- `subprocess_env()`: the environment of a child interpreter that should see them (PYTHONPATH).
UQBENCH_REFERENCE_LIBS overrides the folder.
"""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

LIBRARIES = ("torch_fidelity", "laplace", "backpack", "curvlinops", "asdl")


def folder() -> Path:
    """Where the reference libraries are installed (they may be absent: callers skip then)."""
    return Path(os.environ.get("UQBENCH_REFERENCE_LIBS", Path(sys.prefix) / "reference-libs"))


def available(module: str) -> bool:
    """True when `module` (a top-level name) is installed in the reference folder."""
    return (folder() / module).is_dir() or (folder() / f"{module}.py").is_file()


@contextlib.contextmanager
def on_path():
    """sys.path with the reference folder appended, for the duration of the block."""
    path, saved_path = str(folder()), list(sys.path)
    before = set(sys.modules)
    if path not in sys.path:
        sys.path.append(path)
    try:
        yield folder()
    finally:
        sys.path[:] = saved_path
        for name in set(sys.modules) - before:
            if name.split(".")[0] in LIBRARIES:
                del sys.modules[name]


def subprocess_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of `env` (default os.environ) whose PYTHONPATH ends with the reference folder."""
    out = dict(os.environ if env is None else env)
    out["PYTHONPATH"] = os.pathsep.join(p for p in (out.get("PYTHONPATH", ""), str(folder())) if p)
    return out
