"""The `grid25` preset's data: Aithal et al.'s 2-D grid of 25 Gaussians, seen as 8x8 images.

Aithal, Maini, Lipton, Kolter, "Understanding Hallucinations in Diffusion Models through Mode Interpolation"
(NeurIPS 2024; public code locuslab/diffusion-model-hallucination, `Gaussian25`): modes at 2 (i, j) for
i, j in {-2..2}, standard deviation 0.05, the whole set divided by its standard deviation sqrt(0.05^2 + 8), so
    mu_ij = 2 (i, j) / S,  sigma = 0.05 / S,  S = sqrt(0.05^2 + 2^2 * 2)   (spacing 2 / S = 0.707 = 40 sigma).
The pixel view: the 2-D point z goes into an 8x8 image by a fixed orthonormal map Q [64, 2] (Q^T Q = I, the QR
factor of a Gaussian matrix drawn with seed EMBEDDING_SEED), and every one of the 64 pixels gets independent noise
of the same sigma, so the images follow the isotropic mixture
    x ~ (1/25) sum_k N(Q mu_k, sigma^2 I_64)
whose exact score, posterior and density are benchmark.models.gmm.GaussianMixtureModel's (`GridMixtureModel`
adds the plane). The in-plane coordinates of an image are z = Q^T x, distributed as the 2-D mixture.

Exact labels: a sample is a *hallucination* when its in-plane point lies farther than k sigma from every mode,
    hallucination(x) = min_k ||Q^T x - mu_k|| > k sigma,    k = HALLUCINATION_K = 6 by default,
and *in support* otherwise. For an exact draw, ||Q^T x - mu_k|| / sigma is Rayleigh-distributed, so an in-support
sample is mislabelled with probability exp(-k^2 / 2) = 1.5e-8 at k = 6; modes are 40 sigma apart, so the label
marks the region between modes where mode interpolation puts its samples (the paper's Fig. 1).
"""
from __future__ import annotations

import math

import torch

from benchmark.data.datasets import ImageDataset
from benchmark.models.gmm import GaussianMixtureModel

GRID = tuple(range(-2, 3))
RAW_SCALE, RAW_STD = 2.0, 0.05  # the public code's Gaussian25: modes 2 (i, j), std 0.05
DATA_STD = math.sqrt(RAW_STD**2 + RAW_SCALE**2 * 2.0)  # its normalisation (x-y symmetric, about 2.829)
SIGMA = RAW_STD / DATA_STD
IMAGE_SHAPE = (1, 8, 8)
EMBEDDING_SEED = 25
HALLUCINATION_K = 6.0
GRID_DEFAULT_N = {"train": 100_000, "test": 2000}  # the public code trains on 100k draws
GRID_SEED = {"train": 0, "test": 1}


def modes_2d() -> torch.Tensor:
    """The 25 mode centres mu_k [25, 2] (float64), row-major over (i, j)."""
    return torch.tensor([(i, j) for i in GRID for j in GRID], dtype=torch.float64) * (RAW_SCALE / DATA_STD)


def embedding() -> torch.Tensor:
    """Q [64, 2] (float64) with orthonormal columns: the QR factor of a seeded Gaussian matrix (signs fixed so
    that R's diagonal is positive)."""
    gen = torch.Generator().manual_seed(EMBEDDING_SEED)
    q, r = torch.linalg.qr(torch.randn(math.prod(IMAGE_SHAPE), 2, generator=gen, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r)).unsqueeze(0)


class GridMixtureModel(GaussianMixtureModel):
    """The exact model of the grid: GaussianMixtureModel over the embedded modes, plus the plane Q."""

    def __init__(self) -> None:
        q = embedding()
        super().__init__((modes_2d() @ q.T).view(-1, *IMAGE_SHAPE), std=SIGMA)
        self.register_buffer("embedding", q, persistent=False)
        self.register_buffer("modes_2d", modes_2d(), persistent=False)

    def plane(self, x: torch.Tensor) -> torch.Tensor:
        """z = Q^T x [B, 2] (float64) of images x [B, 1, 8, 8]."""
        return x.to(torch.float64).flatten(1).to(self.embedding.device) @ self.embedding

    def mode_distance(self, x: torch.Tensor) -> torch.Tensor:
        """min_k ||Q^T x - mu_k|| / sigma [B] (float64): the in-plane distance to the nearest mode, in sigmas."""
        return torch.cdist(self.plane(x), self.modes_2d).min(dim=1).values / SIGMA

    def hallucination_labels(self, x: torch.Tensor, k: float = HALLUCINATION_K) -> torch.Tensor:
        """1 where the sample lies farther than k sigma from every mode (a hallucination), else 0 [B] (float64)."""
        return (self.mode_distance(x) > float(k)).to(torch.float64)


def in_support_exceedance(k: float) -> float:
    """P(||Q^T x - mu|| > k sigma) for an exact draw of one mode: the Rayleigh tail exp(-k^2 / 2) (the share of
    in-support samples the label calls hallucinations, other modes being 40 sigma away)."""
    return math.exp(-float(k) ** 2 / 2.0)


def build_oracle() -> GridMixtureModel:
    return GridMixtureModel()


def oracle_data(split: str, n: int | None = None) -> ImageDataset:
    """n exact draws [n, 1, 8, 8] of the mixture, seeded by the split (train 0, test 1)."""
    gen = torch.Generator().manual_seed(GRID_SEED[split])
    images = build_oracle().sample_data(GRID_DEFAULT_N[split] if n is None else int(n), generator=gen)
    return ImageDataset(images=images, labels=None, num_classes=None, name="grid25")
