"""Dropout masks drawn per sample, so that one batched call of all samples' copies stays reproducible.

torch's dropout layers draw their masks from one global generator, in batch order: row r of a batch gets
a mask that depends on every row before it. `per_sample_masks` replaces that, for the duration of one
network call, by one generator per *sample* (seeded by the caller, e.g. from (seed, sample index, step)):
sample b's M copies draw their masks from generator b only, in the order the network's dropout layers run.
Sample b's masks are then the same whether it is evaluated alone or among any other samples — and all
B x M rows can go through the network as ONE call.

Mask semantics are torch's (inverted dropout, E[mask] = 1):
    nn.Dropout:            mask_k = 1[u_k >= p] / (1 - p), one u_k ~ U(0, 1) per element
    nn.Dropout1d/2d/3d:    one such draw per (row, channel), broadcast over the spatial dims
AlphaDropout is affine (not a mask); a model using it is refused with a clear error.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch
from torch import nn

from benchmark.errors import CapabilityError

CHANNEL_DROPOUT = (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)


def _mask_shape(layer: nn.Module, x: torch.Tensor, copies: int) -> tuple[int, ...]:
    """Shape of one sample's mask block [copies, ...] for input rows x[copies * B, ...]."""
    if isinstance(layer, CHANNEL_DROPOUT):
        return (copies, x.shape[1]) + (1,) * (x.ndim - 2)
    return (copies,) + tuple(x.shape[1:])


def draw_masks(layer: nn.Module, x: torch.Tensor, generators: Sequence[torch.Generator], copies: int) -> torch.Tensor:
    """Masks for x [copies*B, ...] laid out copy-major (row m*B + b is copy m of sample b): [copies*B, ...].

    Sample b's block is drawn from generators[b] alone: mask = 1[u >= p] / (1 - p), u ~ U(0, 1).
    """
    keep = 1.0 - float(layer.p)
    shape = _mask_shape(layer, x, copies)
    blocks = [torch.rand(shape, generator=g, device=x.device, dtype=x.dtype) for g in generators]  # B x [M, ...]
    mask = torch.stack(blocks, dim=1)  # [M, B, ...]
    mask = (mask >= layer.p).to(x.dtype) / keep
    return mask.reshape(copies * len(generators), *shape[1:])


@contextlib.contextmanager
def per_sample_masks(layers: Sequence[nn.Module], seeds: Sequence[int], copies: int,
                     device: torch.device) -> Iterator[None]:
    """Within the block, every dropout layer in `layers` is active and draws per-sample masks.

    Inputs to the layers must hold copies * len(seeds) rows, copy-major. The layers' own training flags and
    torch's global RNG are left untouched.
    """
    unsupported = [type(layer).__name__ for layer in layers if not isinstance(layer, (nn.Dropout, *CHANNEL_DROPOUT))]
    if unsupported:
        raise CapabilityError(
            f"MC-Dropout draws its masks per sample and supports nn.Dropout and nn.Dropout1d/2d/3d, but the model "
            f"uses {unsupported[0]}. Fix: use a model with standard dropout layers or drop 'mc_dropout'.")
    generators = [torch.Generator(device=device).manual_seed(int(seed)) for seed in seeds]

    rows = copies * len(generators)

    def forward_for(layer: nn.Module):
        def forward(x: torch.Tensor) -> torch.Tensor:
            if x.shape[0] != rows and x.shape[0] % rows == 0:
                # classifier-free guidance evaluates every row in k branches (benchmark.models.guided: the
                # unconditional rows, then the conditional ones): the branches of a copy share its mask, so each
                # copy's guided eps comes from one network draw
                mask = draw_masks(layer, x[:rows], generators, copies)
                return x * mask.repeat(x.shape[0] // rows, *([1] * (x.ndim - 1)))
            return x * draw_masks(layer, x, generators, copies)
        return forward

    for layer in layers:
        layer.forward = forward_for(layer)  # instance attribute shadows the class's forward
    try:
        yield
    finally:
        for layer in layers:
            del layer.forward
