"""Per-sample seeding: every random draw derives from (seed, stream, sample index, step).

This is what makes a run give the same images whatever the batch size or the number of processes; every draw is
made on the CPU and then moved to the run's device, so the noise is also the same on any device.
"""
from __future__ import annotations

import hashlib
from typing import Sequence

import torch


def derive_seed(seed: int, stream: str, index: int, step: int = -1) -> int:
    """A 63-bit seed from (seed, stream, index, step), stable across platforms and Python runs."""
    key = f"{int(seed)}|{stream}|{int(index)}|{int(step)}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little") & ((1 << 63) - 1)


def per_sample_randn(
    seed: int,
    indices: Sequence[int] | torch.Tensor,
    shape: Sequence[int],
    *,
    stream: str,
    step: int = -1,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Standard normal draws [len(indices), *shape], row i seeded by (seed, stream, indices[i], step).

    Every row is drawn on the CPU by a CPU generator and then moved to `device`: the noise of a run is the same
    bits on the CPU, a GPU or MPS (a CUDA generator would draw other numbers from the same seed)."""
    rows = []
    for index in _as_list(indices):
        gen = torch.Generator(device="cpu").manual_seed(derive_seed(seed, stream, index, step))
        rows.append(torch.randn(tuple(shape), generator=gen, dtype=dtype, device="cpu"))
    if not rows:
        return torch.empty((0, *shape), dtype=dtype, device=device)
    return torch.stack(rows).to(device)


def per_sample_randint(
    seed: int, indices: Sequence[int] | torch.Tensor, high: int, *, stream: str
) -> torch.Tensor:
    """One integer in [0, high) per sample index [len(indices)], seeded like `per_sample_randn`."""
    values = []
    for index in _as_list(indices):
        gen = torch.Generator(device="cpu").manual_seed(derive_seed(seed, stream, index))
        values.append(int(torch.randint(0, high, (1,), generator=gen, device="cpu")))
    return torch.tensor(values, dtype=torch.long, device="cpu")


def _as_list(indices: Sequence[int] | torch.Tensor) -> list[int]:
    if isinstance(indices, torch.Tensor):
        return [int(i) for i in indices.flatten().tolist()]
    return [int(i) for i in indices]
