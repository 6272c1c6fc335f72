"""Model adapters: the `DiffusionModel` interface, the analytic GMM oracle, diffusers UNets, plain PyTorch networks
(`[model] factory`), presets."""
from __future__ import annotations

from benchmark.models.base import DiffusionModel, linear_beta_alphas_cumprod
from benchmark.models.diffusers_unet import DiffusersUNet
from benchmark.models.factory import FactorySpec
from benchmark.models.gmm import GaussianMixtureModel
from benchmark.models.loading import ModelSpec, load_model
from benchmark.models.plain_torch import PlainTorchModel

__all__ = ["DiffusionModel", "DiffusersUNet", "FactorySpec", "GaussianMixtureModel", "linear_beta_alphas_cumprod",
           "load_model", "ModelSpec", "PlainTorchModel"]
