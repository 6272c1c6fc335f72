"""Model adapters: the `DiffusionModel` interface, the analytic GMM oracle, diffusers UNets, presets."""
from __future__ import annotations

from pathlib import Path

from benchmark.models.base import DiffusionModel, linear_beta_alphas_cumprod
from benchmark.models.diffusers_unet import DiffusersUNet
from benchmark.models.gmm import GaussianMixtureModel

__all__ = ["DiffusionModel", "DiffusersUNet", "GaussianMixtureModel", "linear_beta_alphas_cumprod", "load_model"]


def load_model(name_or_path: str | Path) -> DiffusionModel:
    """A model for a preset name (see `python -m benchmark list`), a local diffusers folder, or a hub id."""
    from benchmark import presets

    name = str(name_or_path)
    if name in presets.names():
        return presets.get(name).load_model()
    return DiffusersUNet.from_pretrained(name)
