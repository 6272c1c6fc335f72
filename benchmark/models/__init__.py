"""Model adapters: the `DiffusionModel` interface, the analytic GMM oracle, diffusers UNets, plain PyTorch networks
(`[model] factory`).

Layer 1 (with metrics and data). May import: errors, seeding, metrics, data. `load_model`, which also knows the
presets (a higher layer), lives in `benchmark.presets.loading` and is re-exported here on first use.
"""
from __future__ import annotations

from benchmark.models.base import DiffusionModel, linear_beta_alphas_cumprod
from benchmark.models.diffusers_unet import DiffusersUNet
from benchmark.models.factory import FactorySpec
from benchmark.models.gmm import GaussianMixtureModel
from benchmark.models.loading import ModelSpec
from benchmark.models.plain_torch import PlainTorchModel

__all__ = ["DiffusionModel", "DiffusersUNet", "FactorySpec", "GaussianMixtureModel", "linear_beta_alphas_cumprod",
           "load_model", "ModelSpec", "PlainTorchModel"]


def __getattr__(name: str):
    """`load_model` keeps working from here (PEP 562: presets are imported only when it is used)."""
    if name == "load_model":
        from benchmark.presets.loading import load_model

        return load_model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
