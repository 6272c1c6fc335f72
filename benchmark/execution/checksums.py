"""Checksummed files of a run folder: each file `X` has a sidecar `X.sha256` with the SHA-256 of its bytes.

The file is written first (atomically), the sidecar second, so a file without a matching sidecar is one whose
write was cut short, a truncated copy, or a file changed on disk: `problem()` says which, and the generation
pass discards and regenerates it on resume.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmark.errors import RunFault
from benchmark.execution.io import load_torch, save_text, save_torch
from metrics.features import file_sha256

SUFFIX = ".sha256"


def sidecar(path: Path) -> Path:
    return path.with_name(path.name + SUFFIX)


def record_checksum(path: Path) -> None:
    """Write the checksum of the (finished) file `path` beside it."""
    save_text(file_sha256(path) + "\n", sidecar(path))


def save_checked(obj: Any, path: Path) -> None:
    """torch.save `obj` to `path` atomically, then its checksum beside it."""
    save_torch(obj, path)
    record_checksum(path)


def problem(path: Path) -> str | None:
    """None when `path` matches its recorded checksum, else what is wrong with it (in words)."""
    if not path.is_file():
        return "missing"
    try:
        recorded = sidecar(path).read_text().strip()
    except FileNotFoundError:
        return "no checksum recorded (its write was cut short)"
    except OSError as err:
        return f"checksum unreadable ({err.strerror})"
    try:
        actual = file_sha256(path)
    except OSError as err:
        return f"unreadable ({err.strerror})"
    if actual != recorded:
        return f"corrupt or truncated ({path.stat().st_size} bytes; checksum {actual[:12]} != recorded {recorded[:12]})"
    return None


def discard(path: Path) -> None:
    path.unlink(missing_ok=True)
    sidecar(path).unlink(missing_ok=True)


def load_checked(path: Path) -> Any:
    """torch.load a checksummed file; RunFault (exit 3) naming the file when it is corrupt or unreadable."""
    issue = problem(path)
    if issue is None:
        try:
            return load_torch(path)
        except Exception as err:  # a file that matches its checksum but does not load: written by a broken run
            issue = f"unloadable ({type(err).__name__}: {err})"
    raise RunFault(f"{path} is {issue}. Fix: run the same command again: the run discards and regenerates it")
