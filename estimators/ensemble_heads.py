"""Head members of the `ensemble` estimator: DECU's class-embedding heads (Berry et al., UAI 2024) on the run's own
network, one network in memory and K small tables swapped into it (benchmark.models.class_heads).

A head member k evaluates eps_theta(x_t, t; E_k[y]): the run's model with its class-embedding table replaced by E_k
for the duration of the call, so its network calls are the run's model's own calls and are counted there (as the
current caller's, i.e. the estimator's NFEs), one row per sample and member.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch

from benchmark.errors import ConfigError
from benchmark.models.class_heads import (HEAD_FOLDER, HEAD_KEY, class_embedding, head_digest, head_metadata,
                                          swapped_class_embedding)

if TYPE_CHECKING:
    from benchmark.models.base import DiffusionModel

#: the member types: whole networks, or class-embedding tables on the run's network
MEMBER_TYPES = ("full", "class-embedding")


class HeadMember:
    """One class-embedding head on the shared `base` model (the run's model; no copy of its network).

    Args:
        base: the run's class-conditional model.
        weight: the head's table [num_classes, dim].
        source: the head file (for messages).
    """

    #: its network calls are the base's own `eps` calls, counted by the base (no separate charge needed)
    counted_by_base = True

    def __init__(self, base: "DiffusionModel", weight: torch.Tensor, source: str = "") -> None:
        self.base = base
        self.weight = weight
        self.source = source
        self.autocast = "off"  # the base's own setting applies to its calls; kept for the estimator's bookkeeping

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.base.sample_shape)

    @property
    def num_classes(self) -> int | None:
        return self.base.num_classes

    @property
    def device(self) -> torch.device:
        return self.base.device

    def to(self, device: torch.device | str) -> "HeadMember":
        self.weight = self.weight.to(device)
        return self

    def eps(self, x: torch.Tensor, t: int | torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """eps [B,C,H,W] of the base network with this head's table (counted by the base as one row per sample)."""
        with swapped_class_embedding(self.base, self.weight):
            return self.base.eps(x, t, y)


def head_member(state: dict[str, torch.Tensor], path: Path, base: "DiffusionModel", field: str) -> HeadMember:
    """A HeadMember from a loaded head file, checked against the run's model: a class table of its shape, trained
    on these very weights (the file's `base_digest`, when it records one)."""
    table = class_embedding(base)
    weight = state[HEAD_KEY]
    if table is None or tuple(weight.shape) != tuple(table.weight.shape):
        own = "no class-embedding table" if table is None else f"a table of shape {tuple(table.weight.shape)}"
        raise ConfigError(field, str(path), f"a head for the run's model (it has {own}; the file holds "
                          f"{tuple(weight.shape)})", "train heads for this model with `python -m benchmark train "
                          "--what ensemble --heads class-embedding`, or list full members")
    recorded = head_metadata(path).get("base_digest")
    if recorded is not None and recorded != head_digest(base):
        raise ConfigError(field, str(path), "a head trained on the run's network (its base_digest differs from "
                          "the run's weights)", "retrain the heads on this model (`train --what ensemble --heads "
                          "class-embedding`), or list full members")
    return HeadMember(base, weight.to(base.device), str(path))


def default_head_paths(model: "DiffusionModel") -> list[Path]:
    """<model folder>/ensemble_heads/head_*.safetensors (sorted by head number), or []."""
    source = getattr(model, "source", None)
    folder = Path(source) / HEAD_FOLDER if source else None
    if folder is None or not folder.is_dir():
        return []
    found = [p for p in folder.glob("head_*.safetensors") if p.stem.split("_")[-1].isdigit()]
    return sorted(found, key=lambda p: int(p.stem.split("_")[-1]))


def member_type_of(members: list) -> str:
    """'class-embedding' when every member is a head, 'full' when none is (a mixed list is refused by the caller)."""
    heads = sum(isinstance(m, HeadMember) for m in members)
    return "class-embedding" if heads == len(members) else "full" if heads == 0 else "mixed"


__all__ = ["HEAD_FOLDER", "MEMBER_TYPES", "HeadMember", "default_head_paths", "head_member", "member_type_of"]
