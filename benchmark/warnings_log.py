"""Warnings of the code a command runs (the user's network, third-party libraries) kept off stderr: `python -m
benchmark` promises one line for a refusal, and a model's own `UserWarning` (e.g. torch.meshgrid's) printed on every
command broke that. While `collecting()` is active, warnings are buffered instead of printed; a run appends them to
its folder's `warnings.log` (`flush_to`) once the folder exists. `--debug` (or UQBENCH_DEBUG=1) prints them as
Python does. The lowest layer: imports nothing of the package.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

LOG_FILE = "warnings.log"
_BUFFER: list[str] = []


@contextmanager
def collecting(debug: bool = False) -> Iterator[list[str]]:
    """Buffer the warnings shown inside the block (Python's filters still decide which are shown, e.g. once per
    place); with `debug` nothing changes. Yields the buffer."""
    if debug:
        yield _BUFFER
        return
    previous = warnings.showwarning

    def keep(message, category, filename, lineno, file=None, line=None) -> None:
        _BUFFER.append(warnings.formatwarning(message, category, filename, lineno, line).rstrip())

    warnings.showwarning = keep
    try:
        yield _BUFFER
    finally:
        warnings.showwarning = previous


def flush_to(folder: Path) -> Path | None:
    """Append the buffered warnings to `folder`/warnings.log and empty the buffer (None: there were none)."""
    if not _BUFFER:
        return None
    path = Path(folder) / LOG_FILE
    with path.open("a", encoding="utf-8") as log:
        log.write("\n".join(_BUFFER) + "\n")
    _BUFFER.clear()
    return path
