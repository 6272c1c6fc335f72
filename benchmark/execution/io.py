"""Atomic file writes and the layout of a run directory.

Files are written through a temporary file that is renamed over the target, so readers never see half a
file. `tempfile.mkstemp` creates that file with mode 0600; it is given the mode an ordinary `open()` would
have (0666 minus the process umask: 0644 under the usual umask 022) before the rename, so results stay
readable by colleagues and web servers. Directories are created 0777 minus the umask (0755).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch


def current_umask() -> int:
    """The process umask (read by setting and restoring it; there is no read-only call)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file in the same folder, then rename: readers never see half a file.

    The file ends with mode 0666 & ~umask, as if created by `open(path, "w")`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_torch(obj: Any, path: Path) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def save_text(text: str, path: Path) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text))


def save_bytes(data: bytes, path: Path) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def save_json(obj: Any, path: Path) -> None:
    save_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n", path)


def load_torch(path: Path) -> Any:
    return torch.load(path, map_location="cpu", weights_only=False)
