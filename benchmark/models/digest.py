"""The identity of a network's weights: what a fitted posterior, a run's fingerprint and its manifest refer to."""
from __future__ import annotations

import hashlib

import torch
from torch import nn


def weights_digest(model: nn.Module) -> str:
    """sha256 over the model's parameters and buffers (names, shapes, dtypes, values): a fitted posterior
    belongs to exactly these weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        value = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}:{tuple(value.shape)}:{value.dtype}".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
