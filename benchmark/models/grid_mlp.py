"""The `grid25` preset's denoiser: a small MLP noise predictor on 8x8 images (the `[model] factory` interface).

Aithal et al. train an MLP with a time embedding on the 2-D points; this one sees the 64 pixels of the embedded
point (benchmark.data.grid25). eps_theta(x, t) = out(h_L), h_0 = SiLU(W_in x + e(t)), h_l = SiLU(W_l h_{l-1} + e_l(t))
with e(t) a sinusoidal embedding of t / T through a linear map. Called as network(x [B,1,8,8], t [B] long).
"""
from __future__ import annotations

import math

import torch
from torch import nn

WIDTH, DEPTH, FREQUENCIES = 128, 3, 16
PIXELS = 64


def time_features(t: torch.Tensor, num_train_timesteps: int = 1000, frequencies: int = FREQUENCIES) -> torch.Tensor:
    """[sin(2^j pi t/T), cos(2^j pi t/T)] for j = 0..frequencies-1: [B, 2 * frequencies]."""
    s = t.to(torch.float32).view(-1, 1) / num_train_timesteps
    scales = (2.0 ** torch.arange(frequencies, dtype=torch.float32, device=s.device)) * math.pi
    return torch.cat([torch.sin(s * scales), torch.cos(s * scales)], dim=1)


class GridMLP(nn.Module):
    """eps_theta for [B, 1, 8, 8] images; `out` is the last (Linear) layer."""

    def __init__(self, width: int = WIDTH, depth: int = DEPTH) -> None:
        super().__init__()
        self.inp = nn.Linear(PIXELS, width)
        self.time = nn.ModuleList(nn.Linear(2 * FREQUENCIES, width) for _ in range(depth + 1))
        self.hidden = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        self.out = nn.Linear(width, PIXELS)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        e = time_features(t.to(x.device)).to(x.dtype)
        h = nn.functional.silu(self.inp(x.flatten(1)) + self.time[0](e))
        for layer, embed in zip(self.hidden, self.time[1:]):
            h = nn.functional.silu(layer(h) + embed(e))
        return self.out(h).view(x.shape)


def make_network() -> GridMLP:
    """The factory the preset names (weights loaded by benchmark.models.factory)."""
    return GridMLP()
