"""Variants of the toy preset for the bad-input catalogue (tests/test_bad_inputs.py), reached through
$UQBENCH_EXTRA_PRESETS: a model without dropout, without a last layer, with NaN weights, loaded from a folder,
data read from the Fashion-MNIST files, no analytic oracle."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from benchmark.models import DiffusersUNet, GaussianMixtureModel
from tests.helpers import tiny_gmm_means, tiny_unet
from tests.toy_preset import ToyPreset

HERE = "tests.bad_input_presets"


@dataclass
class NoDropoutPreset(ToyPreset):
    name: str = "toy-no-dropout"

    def load_model(self):
        return DiffusersUNet(tiny_unet(dropout=0.0))


@dataclass
class NoLastLayerPreset(ToyPreset):
    """The analytic mixture as the model: exact eps, no network, so no last layer (and no dropout)."""

    name: str = "toy-no-last-layer"

    def load_model(self):
        return GaussianMixtureModel(tiny_gmm_means(3, (1, 8, 8)), std=0.2)


@dataclass
class NaNPreset(ToyPreset):
    name: str = "toy-nan"

    def load_model(self):
        unet = tiny_unet(dropout=0.1)
        with torch.no_grad():
            unet.conv_out.weight.fill_(math.nan)
        return DiffusersUNet(unet)


@dataclass
class FolderPreset(ToyPreset):
    """The toy UNet saved with save_pretrained() and loaded from that folder, as the real presets are."""

    name: str = "toy-folder"
    folder = None  # set by the test

    def load_model(self):
        return DiffusersUNet.from_pretrained(self.folder)


@dataclass
class FashionDataPreset(ToyPreset):
    """Reads its test images from the Fashion-MNIST files (looked up through benchmark.data.datasets)."""

    name: str = "toy-fashion-data"

    def load_data(self, split: str, n: int | None = None):
        from benchmark.data.datasets import load_dataset

        return load_dataset("fashion", split).subset(n)


@dataclass
class NoOraclePreset(ToyPreset):
    """A preset like every trained one: no analytic oracle, so no ground truth."""

    name: str = "toy-no-oracle"

    def oracle(self):
        return None


VARIANTS = ",".join(f"{HERE}:{cls.__name__}" for cls in (ToyPreset, NoDropoutPreset, NoLastLayerPreset, NaNPreset,
                                                         FolderPreset, FashionDataPreset, NoOraclePreset))
