"""The import closure of a `[model] factory`: the files of the user's own code that importing and calling the
factory actually loaded, so that a resume and `validate` can refuse a run whose network code changed.

Only files under the closure's roots count: the factory file's folder (or a factory module's top-level package
folder) and every `sys.path` entry the user's code added while it ran. Each file is the module's `__file__` as
Python resolved it (so the same `import unet` that a run made is the one fingerprinted); the suite's own packages
are left out (their source has its own digest). For a factory file, the modules an earlier load in this process
recorded are dropped from `sys.modules` first, so every load imports them again from disk (an edited network file
is never served from a stale in-process cache, and is recorded again).
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

#: the closure files recorded by each factory's last load (factory string -> {name: file})
_CLOSURES: dict[str, dict[str, str]] = {}


def _under(path: Path, roots: list[Path]) -> Path | None:
    """The root `path` lies under (None: outside all of them, e.g. site-packages or the standard library)."""
    return next((root for root in roots if root == path.parent or root in path.parents), None)


def _module_file(module) -> Path | None:
    file = getattr(module, "__file__", None)
    if not isinstance(file, str):
        return None
    return Path(file).resolve()  # (a deleted file too: its stale module must still be forgotten)


SUITE = Path(__file__).resolve().parents[2]
SUITE_PACKAGES = tuple(SUITE / name for name in ("benchmark", "estimators", "metrics"))


def _forget(files: set[str]) -> None:
    """Drop the modules loaded from `files` from sys.modules (they are imported again from disk)."""
    for name, module in list(sys.modules.items()):
        file = _module_file(module)
        if file is not None and str(file) in files:
            del sys.modules[name]


@contextmanager
def recording(factory: str, roots: list[Path], exclude: Path | None = None) -> Iterator[None]:
    """Record, under `factory`, the files under `roots` (plus sys.path entries added inside the block) that the
    modules imported inside the block were loaded from; `exclude` (the factory file itself: a factory file is
    re-imported on every load) is left out, and only then are the modules that earlier loads recorded (of any factory:
two folders may both hold a `unet.py`) imported again."""
    roots = [Path(r).resolve() for r in roots]
    if exclude is not None:
        _forget({file for files in _CLOSURES.values() for file in files.values()})
    path_before, modules_before = list(sys.path), set(sys.modules)
    try:
        yield
    finally:
        added = [Path(p).resolve() for p in sys.path if p and p not in path_before and Path(p).is_dir()]
        every_root = roots + added
        files: dict[str, str] = {}
        for name in sorted(set(sys.modules) - modules_before):
            file = _module_file(sys.modules.get(name))
            file = file if file is not None and file.is_file() else None
            suite = file is not None and _under(file, list(SUITE_PACKAGES)) is not None
            root = None if file is None or file == exclude or suite else _under(file, every_root)
            if root is not None:
                files[file.relative_to(root).as_posix() if root in roots else str(file)] = str(file)
        _CLOSURES[factory] = files


def closure_files(factory: str) -> dict[str, str]:
    """{name (its path relative to the factory's folder): file} of the factory's last load in this process ({}
    before any load)."""
    return dict(_CLOSURES.get(factory, {}))
