"""A TorchFunctionMode that records tensor factory calls made without a device, and where they were made.

A factory call (torch.zeros, randn, arange, tensor, as_tensor, ...) without `device=` puts its tensor on torch's
default device, the CPU. On a CPU run that is the run's device, so a forgotten device is invisible; on a GPU run
the tensor then meets a CUDA tensor and the run fails. `ImplicitDeviceRecorder` lists every such call whose caller
is a file of the run path (`RUN_PATH`), with its file:line, so a CPU test can assert the list is empty.

What is not recorded: `torch.as_tensor(t)` / `torch.asarray(t)` of a tensor (it keeps t's device), calls made
inside third-party code (torch, diffusers: their own device handling), and calls that name their device
(`device="cpu"` included: CPU-side bookkeeping such as sample indices and the per-sample noise draws is then
explicit).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._device import _device_constructors

ROOT = Path(__file__).resolve().parents[1]
#: the modules whose tensors follow the run's device: sampling, models, estimators, the generation and feature
#: passes, the protocols that run the sampler (metrics/ is CPU-side by contract: it moves its inputs to the CPU)
RUN_PATH = ("benchmark/sampling/", "benchmark/models/", "estimators/", "benchmark/seeding.py",
            "benchmark/execution/generation.py", "benchmark/execution/features.py",
            "benchmark/execution/feature_scores.py", "benchmark/runner/setup.py", "benchmark/runner/resources.py",
            "benchmark/protocols/sparsification.py", "benchmark/protocols/guided.py",
            "benchmark/protocols/augmentation.py", "benchmark/protocols/rectification.py",
            "benchmark/protocols/resampling.py", "benchmark/protocols/ground_truth.py")
#: conversions that keep the device of a tensor argument
CONVERSIONS = {torch.as_tensor, torch.asarray}


@dataclass(frozen=True)
class ImplicitCreation:
    """One factory call without a device: the function and the run-path line that called it."""

    function: str
    location: str  # "estimators/guidance.py:240"

    def __str__(self) -> str:
        return f"{self.location}: torch.{self.function} without device="


class ImplicitDeviceRecorder(TorchFunctionMode):
    """Records factory calls without `device=` made from a file of `run_path` (see the module doc)."""

    def __init__(self, run_path: tuple[str, ...] = RUN_PATH) -> None:
        super().__init__()
        self.run_path = run_path
        self.found: set[ImplicitCreation] = set()
        self._factories = _device_constructors()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self._factories and kwargs.get("device") is None and not (
                func in CONVERSIONS and args and isinstance(args[0], torch.Tensor)):
            location = self._caller()
            if location is not None:
                self.found.add(ImplicitCreation(func.__name__, location))
        return func(*args, **kwargs)

    def _caller(self) -> str | None:
        """file:line of the first frame outside torch, when that file is on the run path (else None)."""
        frame = sys._getframe(2)
        torch_dir = str(Path(torch.__file__).parent)
        while frame is not None and (frame.f_code.co_filename.startswith(torch_dir) or
                                     frame.f_code.co_filename == __file__):
            frame = frame.f_back
        if frame is None:
            return None
        path = Path(frame.f_code.co_filename).resolve()
        try:
            relative = path.relative_to(ROOT).as_posix()
        except ValueError:
            return None
        return f"{relative}:{frame.f_lineno}" if relative.startswith(self.run_path) else None

    def report(self) -> str:
        return "\n".join(sorted(str(c) for c in self.found))
