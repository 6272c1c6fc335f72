"""torchrun support: the process group, barriers, devices (the ranks share work through benchmark.execution.work_queue)."""
from __future__ import annotations

import os
from contextlib import contextmanager

import torch
import torch.distributed as dist


def rank_and_world() -> tuple[int, int]:
    """(rank, world size); initialises the process group (gloo on CPU, nccl on GPU) under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


_KEPT = [False]  # inside `keep_group`: finish() leaves the group alone


@contextmanager
def keep_group():
    """Several runs in one launch (replicates over seeds): each run's `finish` keeps the process group, which is
    destroyed when the block ends (a group destroyed under torchrun cannot be initialised again: the next run hung)."""
    _KEPT[0] = True
    try:
        yield
    finally:
        _KEPT[0] = False
        finish()


def finish() -> None:
    if not _KEPT[0] and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def device_for(rank: int, configured: str) -> str:
    """cuda:<local rank> when the config asks for cuda, else the configured device."""
    if configured.startswith("cuda"):
        return f"cuda:{int(os.environ.get('LOCAL_RANK', rank))}"
    return configured
