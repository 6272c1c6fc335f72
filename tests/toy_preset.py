"""A tiny in-test preset: a random 8x8 UNet with dropout, a random domain classifier and GMM data/oracle.

It stands in for the trained presets so that runner tests exercise every code path in seconds.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from benchmark.data.datasets import ImageDataset
from benchmark.models import DiffusersUNet, GaussianMixtureModel
from tests.helpers import tiny_gmm_means, tiny_unet


@dataclass
class ToyPreset:
    name: str = "toy"
    description: str = "tiny random UNet on an 8x8 Gaussian mixture"
    sampler: str = "ddim"
    steps: int = 10
    num_classes: int | None = None
    dataset: str | None = "toy"
    model_dir: None = None

    def load_model(self):
        return DiffusersUNet(tiny_unet(dropout=0.1))

    def load_classifier(self):
        from metrics.classifier import DomainClassifier

        torch.manual_seed(0)
        return DomainClassifier(in_channels=1, num_classes=3, image_size=8).eval()

    def oracle(self):
        return GaussianMixtureModel(tiny_gmm_means(3, (1, 8, 8)), std=0.2)

    def load_data(self, split: str, n: int | None = None) -> ImageDataset:
        gen = torch.Generator().manual_seed(0 if split == "train" else 1)
        images = self.oracle().sample_data(n or 64, generator=gen).clamp(-1, 1)
        return ImageDataset(images=images, labels=None, num_classes=None, name="toy")

    def reference_stats(self, feature: str):
        return None


def perturb_toy_weights(monkeypatch, delta: float = 1e-3) -> None:
    """From now on the toy preset's model has its first parameter shifted by `delta` (other weights than a run's)."""
    original = ToyPreset.load_model

    def changed(self):
        model = original(self)
        with torch.no_grad():
            next(model.parameters()).add_(delta)
        return model

    monkeypatch.setattr(ToyPreset, "load_model", changed)
