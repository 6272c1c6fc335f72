"""A work queue shared by the ranks of a run: independent items, longest first, each claimed by whichever rank is
free (a file created with O_EXCL in the run folder), so two processes stay busy until the queue is empty.

Every item computes the same thing on whichever rank runs it (same calls, same thread count), and leaves its
result in the run folder; what each item took is written next to its claim, and `run_queue` returns the CPU
seconds per group, summed over the items (on rank 0, after the barrier that ends the phase).

An item that raises stops the queue on every rank (no rank takes another item once a failure is on record);
after the barrier rank 0 raises the error (its own exception, or another rank's traceback as a RuntimeError)
and the other ranks raise PeerFailed, which the runner ends quietly on, so rank 0 is the one that reports.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from benchmark.execution import distributed

WORK_DIR = ".work"  # under the run folder; removed when the run is finished


@dataclass(frozen=True)
class WorkItem:
    """One independent piece of a phase. `cost` (any unit, e.g. expected seconds) only orders the queue:
    longest first, so the last item to finish is a short one."""

    group: str  # the timing it counts towards, e.g. "generation.features.inception"
    run: Callable[[], object]  # may return {group: seconds} to split its time between groups
    cost: float = 1.0


class PeerFailed(RuntimeError):
    """Raised on ranks other than 0 when an item failed: rank 0 raises the error itself."""


def schedule(items: Sequence[WorkItem]) -> list[WorkItem]:
    """Longest first; ties keep their given order (stable sort)."""
    return sorted(items, key=lambda item: -item.cost)


def run_queue(items: Sequence[WorkItem], run_dir: Path, phase: str, rank: int, world: int,
              progress: bool = False) -> dict[str, float]:
    """Run `items` on all ranks (each once, on the first rank to claim it); returns {group: seconds} on rank 0
    (summed over the items of the group, whichever rank ran them) and {} on the other ranks. With `progress`,
    a line on stderr per finished item."""
    folder = run_dir / WORK_DIR / phase
    if rank == 0:
        shutil.rmtree(folder, ignore_errors=True)  # claims of an interrupted earlier run
        folder.mkdir(parents=True)
    distributed.barrier()
    own_error: BaseException | None = None
    for position, item in enumerate(schedule(items)):
        if own_error is not None or any(folder.glob("*.error")):
            break
        if world > 1 and not _claim(folder / f"{position}.claim"):
            continue
        tick = time.perf_counter()
        try:
            result = item.run()
        except Exception as err:  # noqa: BLE001 - every rank stops; rank 0 raises it after the barrier
            own_error = err
            (folder / f"{position}.error").write_text(f"rank {rank}, {item.group}:\n{traceback.format_exc()}")
            continue
        seconds = result if isinstance(result, dict) else {item.group: time.perf_counter() - tick}
        (folder / f"{position}.done").write_text(json.dumps({"seconds": seconds, "rank": rank}))
        if progress:
            done = sum(1 for _ in folder.glob("*.done"))
            print(f"{phase}: {done}/{len(items)} done ({item.group}, {time.perf_counter() - tick:.1f} s, rank {rank})",
                  file=sys.stderr, flush=True)
    distributed.barrier()
    failures = sorted(folder.glob("*.error"))
    if rank != 0:
        if failures:
            raise PeerFailed(failures[0].read_text())
        return {}
    if own_error is not None:
        raise own_error
    if failures:
        raise RuntimeError(f"a work item failed on another rank: {failures[0].read_text()}")
    totals: dict[str, float] = {}
    for done in sorted(folder.glob("*.done")):
        for group, seconds in json.loads(done.read_text())["seconds"].items():
            totals[group] = totals.get(group, 0.0) + float(seconds)
    return totals


def _claim(path: Path) -> bool:
    """Whether this process created `path` (and so owns the item)."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        return False
    return True


def clean(run_dir: Path) -> None:
    """Remove the queue's bookkeeping from a finished run folder."""
    shutil.rmtree(run_dir / WORK_DIR, ignore_errors=True)
