"""The `gmm` preset's analytic oracle: a Gaussian mixture whose component means are real digit prototypes.

Component k is N(mu_k, s^2 I) with mu_k the mean image of class k over the sklearn digits *train* split
(16x16 in [-1, 1], see benchmark/data/datasets.py), equal weights 1/10 and s = GMM_STD.
"""
from __future__ import annotations

import torch

from benchmark.data.datasets import ImageDataset, load_dataset
from benchmark.models.gmm import GaussianMixtureModel

GMM_STD = 0.2
GMM_DEFAULT_N = {"train": 20000, "test": 2000}
GMM_SEED = {"train": 0, "test": 1}


def digit_prototypes() -> torch.Tensor:
    """Per-class mean images [10,1,16,16] (float64) of the digits train split."""
    data = load_dataset("digits", "train")
    assert data.labels is not None
    return torch.stack([data.images[data.labels == k].to(torch.float64).mean(0) for k in range(10)])


def build_oracle() -> GaussianMixtureModel:
    """The mixture sum_k (1/10) N(mu_k, GMM_STD^2 I) over the ten digit prototypes."""
    return GaussianMixtureModel(digit_prototypes(), std=GMM_STD)


def oracle_data(oracle: GaussianMixtureModel, split: str, n: int | None = None) -> ImageDataset:
    """n exact draws [n,1,16,16] from the oracle, seeded by the split (train 0, test 1); not clipped."""
    gen = torch.Generator().manual_seed(GMM_SEED[split])
    images = oracle.sample_data(GMM_DEFAULT_N[split] if n is None else int(n), generator=gen)
    return ImageDataset(images=images, labels=None, num_classes=None, name="gmm")
