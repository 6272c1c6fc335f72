"""Class-embedding heads: one network, several class-embedding tables swapped into it (DECU, Berry et al., UAI
2024: an ensemble of conditioning heads on a frozen diffusion network).

A class-conditional diffusers UNet2DModel adds a learned class vector to its timestep embedding,
    emb = TimeEmbedding(t) + E[y],        E: the `class_embedding` table [num_classes, dim]
so a head is nothing but a table E_k of that shape. `swapped_class_embedding` evaluates the same network with
E_k in place of its own E (no copy of the network), for training a head (E_k a trainable tensor, gradients flow
into it alone) and for the `ensemble` estimator's head members.

A head file is a safetensors file holding one tensor under HEAD_KEY (the table's name inside the UNet).
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from benchmark.errors import CapabilityError

#: where a model's heads live: <model folder>/ensemble_heads/head_<k>.safetensors (`train --what ensemble --heads`)
HEAD_FOLDER = "ensemble_heads"
#: the head's key in a head file: the class-embedding table's name inside a diffusers UNet2DModel
HEAD_KEY = "class_embedding.weight"


def class_embedding(model: nn.Module) -> nn.Embedding | None:
    """The class-embedding table of a model (an adapter with `.unet`, or the UNet itself), None without one."""
    network = getattr(model, "unet", model)
    table = getattr(network, "class_embedding", None)
    return table if isinstance(table, nn.Embedding) else None


def require_class_embedding(model: nn.Module, what: str) -> nn.Embedding:
    """`class_embedding(model)`, or a CapabilityError naming `what` needed it."""
    table = class_embedding(model)
    if table is None:
        raise CapabilityError(
            f"{what} needs a class-conditional model with a class-embedding table (a diffusers UNet2DModel with "
            f"num_class_embeds), but {type(model).__name__} has none. Fix: use full ensemble members (`train "
            "--what ensemble` without --heads) or a class-conditional model.")
    return table


@contextlib.contextmanager
def swapped_class_embedding(model: nn.Module, weight: torch.Tensor) -> Iterator[None]:
    """Inside the block the model's class-embedding table is `weight` [num_classes, dim] (not a copy: gradients of
    anything computed inside flow into `weight`); the model's own table is back afterwards, untouched."""
    table = require_class_embedding(model, "a class-embedding head")
    own = table.weight
    if tuple(weight.shape) != tuple(own.shape):
        raise ValueError(f"head shape {tuple(weight.shape)} != the model's class embedding {tuple(own.shape)}")
    del table.weight  # the Parameter leaves _parameters; a plain tensor attribute takes its place
    table.weight = weight.to(device=own.device, dtype=own.dtype)
    try:
        yield
    finally:
        del table.weight
        table.weight = own


def head_digest(model: nn.Module) -> str:
    """sha256 of the network a head belongs to (`weights_digest` of the adapter's `.unet`, or of the model)."""
    from benchmark.models.digest import weights_digest

    return weights_digest(getattr(model, "unet", model))


def save_head(path: Path, weight: torch.Tensor, metadata: dict[str, str]) -> None:
    """Write a head file: `weight` [num_classes, dim] under HEAD_KEY, string `metadata` beside it."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({HEAD_KEY: weight.detach().to("cpu").contiguous()}, str(path), metadata=metadata)


def is_head_state(state: dict[str, torch.Tensor]) -> bool:
    """Whether a loaded state dict is a head (one table under HEAD_KEY) rather than a whole network's."""
    return set(state) == {HEAD_KEY}


def head_metadata(path: Path) -> dict[str, str]:
    """The string metadata of a safetensors head file ({} for other formats or none)."""
    if path.suffix != ".safetensors":
        return {}
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return dict(handle.metadata() or {})


__all__ = ["HEAD_FOLDER", "HEAD_KEY", "class_embedding", "head_digest", "head_metadata", "is_head_state",
           "require_class_embedding", "save_head", "swapped_class_embedding"]
