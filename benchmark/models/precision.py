"""`run.autocast`: lower-precision network forward calls, and nothing else.

    off    every call in the network's dtype (float32 for every preset): the default, bit-identical to a run
           without the setting
    bf16   torch.autocast(dtype=bfloat16) around the network's forward call, on any device
    fp16   torch.autocast(dtype=float16), on CUDA only (CPU autocast has no float16 kernels worth the name)

The autocast region is the model's forward call alone (`DiffusionModel._counted`: eps, last-layer features, or both
from one call). Its outputs are cast back to the input's dtype (float32) as they leave it, so the sampler update,
the prediction-type maths after it and every estimator's uncertainty maths (variances, Laplace, Jacobians) run in
float32 as without autocast.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from benchmark.errors import ConfigError

AUTOCAST_MODES = ("off", "bf16", "fp16")
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
FIX = 'set run.autocast = "off" (the default) or "bf16"; "fp16" needs run.device = "cuda"'


def check_autocast(mode: str, device: str | torch.device) -> str:
    """`mode` when it is one of AUTOCAST_MODES and the device has it ("fp16": CUDA only), else a ConfigError
    naming run.autocast."""
    if mode not in AUTOCAST_MODES:
        raise ConfigError("run.autocast", mode, f"one of {', '.join(AUTOCAST_MODES)}", FIX)
    device_type = torch.device(device).type
    if mode == "fp16" and device_type != "cuda":
        raise ConfigError("run.autocast", mode, f"'off' or 'bf16' on device {device_type} (float16 autocast runs "
                          "on CUDA only)", 'set run.autocast = "bf16" (or "off"), or run.device = "cuda"')
    return mode


@contextlib.contextmanager
def network_autocast(mode: str, device: torch.device) -> Iterator[None]:
    """torch.autocast on `device` in the dtype of `mode` inside the block; nothing at all for "off"."""
    if mode == "off":
        yield
        return
    with torch.autocast(device_type=device.type, dtype=AUTOCAST_DTYPES[mode]):
        yield


def cast_back(out, dtype: torch.dtype):
    """The network's output (a tensor or a tuple of them: eps and features) in `dtype` (the input's: float32)."""
    if isinstance(out, tuple):
        return tuple(cast_back(o, dtype) for o in out)
    return out.to(dtype) if out.is_floating_point() else out


@contextlib.contextmanager
def autocast_off(model) -> Iterator[None]:
    """`model`'s calls inside the block run in its own dtype whatever run.autocast says: forward-mode derivatives
    (torch.func.jvp, the Tweedie estimator's Jacobian) have no path through autocast on the CPU, and a Jacobian is
    uncertainty maths."""
    previous = getattr(model, "autocast", "off")
    model.autocast = "off"
    try:
        yield
    finally:
        model.autocast = previous
