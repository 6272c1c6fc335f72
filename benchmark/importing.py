"""Importing a Python file by path (plug-ins, `[model] factory`), the lowest layer: imports nothing of the package."""
from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path


def file_module_name(path: Path, prefix: str) -> str:
    """A module name unique to a file's path: <prefix>_<stem>_<8 hex digits of the path's sha1>."""
    return f"{prefix}_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"


def import_file(path: Path, module_name: str):
    """Import a .py file as `module_name` (registered in sys.modules: pickling and dataclasses look classes up by
    module name; removed again when the import fails)."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    except BaseException:
        del sys.modules[module_name]
        raise
    return module
