"""The `grid25` preset's denoiser: a residual MLP x0 predictor on 8x8 images (the `[model] factory` interface).

Shaped after Aithal et al.'s toy network (locuslab/diffusion-model-hallucination, `Decoder`: width 128, 3 residual
blocks of LayerNorm / nonlinearity / Linear with the time embedding added inside each block, a sinusoidal time
embedding through a projection), on the 64 pixels of the embedded point (benchmark.data.grid25):

    e(t)  = SiLU(W_e sin_cos(t)),           sin_cos(t): the transformer embedding of the integer step t (dim 64)
    u     = P^T x                                (P: the principal axes of the training images, a saved buffer)
    h_0   = W_in u + W_f [sin(B u_:2), cos(B u_:2)]   (Fourier features of the 2 leading components, `FourierInput`)
    h_l   = h_{l-1} + W_b SiLU(LN(W_a SiLU(LN(h_{l-1})) + U_l e(t)))          l = 1..DEPTH
    out   = W_out LN(h_L)                       (in pixels: `out` is the last layer, for last-layer Laplace)

Called as network(x [B,1,8,8], t [B] long). It predicts x0 (`prediction_type = "sample"`, converted to eps by
benchmark.models.prediction.to_epsilon): near the data (small t) x0 is a staircase over the 25 modes and flat off
the plane, where the noise target would be a sawtooth of slope 1/sqrt(1 - ab_t) that a small MLP smooths away.
"""
from __future__ import annotations

import math

import torch
from torch import nn

WIDTH, DEPTH, TIME_DIM = 128, 3, 64
PIXELS, LEADING, FOURIER, FOURIER_SCALE = 64, 2, 32, 5.0
PREDICTION_TYPE = "sample"


def time_features(t: torch.Tensor, dim: int = TIME_DIM, max_period: float = 10_000.0) -> torch.Tensor:
    """[sin(t w_j), cos(t w_j)], w_j = max_period^(-j / (dim/2)), j = 0..dim/2-1 (Vaswani et al.): [B, dim]."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    angles = t.to(torch.float32).view(-1, 1) * freqs.view(1, -1)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


class TimeBlock(nn.Module):
    """One residual block with the time embedding added between its two layers."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.fc1, self.fc2 = nn.Linear(width, width), nn.Linear(width, width)
        self.time = nn.Linear(width, width)

    def forward(self, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        u = self.fc1(nn.functional.silu(self.norm1(h))) + self.time(e)
        return h + self.fc2(nn.functional.silu(self.norm2(u)))


class FourierInput(nn.Module):
    """h_0 = W_in u + W_f [sin(B u_:k), cos(B u_:k)] of the pixels in the principal basis u = P^T x: a linear read
    plus learnable Fourier features (Tancik et al., NeurIPS 2020; B initialised N(0, FOURIER_SCALE^2)) of the
    leading k = LEADING components, where the data varies (the rest is noise of scale sigma that would scramble
    the features' phases)."""

    def __init__(self, width: int, features: int = FOURIER, scale: float = FOURIER_SCALE) -> None:
        super().__init__()
        self.linear = nn.Linear(PIXELS, width)
        self.freqs = nn.Linear(LEADING, features, bias=False)
        nn.init.normal_(self.freqs.weight, std=scale)
        self.fourier = nn.Linear(2 * features, width, bias=False)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        angles = self.freqs(u[:, :LEADING])
        return self.linear(u) + self.fourier(torch.cat([torch.sin(angles), torch.cos(angles)], dim=1))


class GridMLP(nn.Module):
    """x0_theta for [B, 1, 8, 8] images; `out` is the last (Linear) layer."""

    def __init__(self, width: int = WIDTH, depth: int = DEPTH) -> None:
        super().__init__()
        self.embed = nn.Linear(TIME_DIM, width)
        self.inp = FourierInput(width)
        self.blocks = nn.ModuleList(TimeBlock(width) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, PIXELS)
        self.register_buffer("basis", torch.eye(PIXELS))  # P: set from the training data (set_basis), saved

    def set_basis(self, images: torch.Tensor) -> None:
        """P = the eigenvectors of the images' covariance [N,1,8,8], by decreasing eigenvalue (PCA)."""
        flat = images.flatten(1).to(torch.float64)
        values, vectors = torch.linalg.eigh(torch.cov(flat.T))
        self.basis.copy_(vectors[:, values.argsort(descending=True)].to(self.basis.dtype))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        e = nn.functional.silu(self.embed(time_features(t.to(x.device)).to(x.dtype)))
        h = self.inp(x.flatten(1) @ self.basis)
        for block in self.blocks:
            h = block(h, e)
        return self.out(self.norm(h)).view(x.shape)


def make_network() -> GridMLP:
    """The factory the preset names (weights loaded by benchmark.models.factory)."""
    return GridMLP()
