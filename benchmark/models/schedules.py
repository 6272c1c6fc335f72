"""Training schedules ab_t by diffusers' names, or read from a file (the `[model] factory` table).

    linear             beta_t = linspace(beta_start, beta_end, T)                      (Ho et al. 2020, Sec. 4)
    scaled_linear      beta_t = linspace(sqrt(beta_start), sqrt(beta_end), T)^2        (latent diffusion)
    squaredcos_cap_v2  beta_t = min(1 - f((t+1)/T) / f(t/T), 0.999),
                       f(u) = cos((u + 0.008) / 1.008 * pi / 2)^2                      (Nichol & Dhariwal 2021, eq. 17)
    ab_t = prod_{s<=t} (1 - beta_s)

Betas and their cumulative product are computed in float32 exactly as diffusers' DDPMScheduler computes them
(so ab_t equals `DDPMScheduler(...).alphas_cumprod` bit for bit) and returned as float64 [T].
squaredcos_cap_v2 ignores beta_start and beta_end, as diffusers does.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from benchmark.errors import ConfigError
from benchmark.models.base import linear_beta_alphas_cumprod

BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
COSINE_MAX_BETA = 0.999  # diffusers' cap of the cosine schedule's betas


def cosine_betas(num_train_timesteps: int, max_beta: float = COSINE_MAX_BETA) -> torch.Tensor:
    """Betas [T] of the cosine schedule (Nichol & Dhariwal 2021, eq. 17): beta_t = min(1 - f((t+1)/T) / f(t/T),
    max_beta), f(u) = cos((u + 0.008) / 1.008 * pi / 2)^2, in float64 Python arithmetic, then float32."""
    def alpha_bar(u: float) -> float:
        return math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2

    betas = [min(1 - alpha_bar((i + 1) / num_train_timesteps) / alpha_bar(i / num_train_timesteps), max_beta)
             for i in range(num_train_timesteps)]
    return torch.tensor(betas, dtype=torch.float32)


def schedule_alphas_cumprod(beta_schedule: str, num_train_timesteps: int = 1000, beta_start: float = 1e-4,
                            beta_end: float = 0.02) -> torch.Tensor:
    """ab_t [T] (float64) of a diffusers beta schedule (see the module docstring for the equations)."""
    if beta_schedule == "linear":
        return linear_beta_alphas_cumprod(num_train_timesteps, beta_start, beta_end)
    if beta_schedule == "scaled_linear":
        betas = torch.linspace(beta_start ** 0.5, beta_end ** 0.5, num_train_timesteps, dtype=torch.float32) ** 2
    elif beta_schedule == "squaredcos_cap_v2":
        betas = cosine_betas(num_train_timesteps)
    else:
        raise ConfigError("model.beta_schedule", beta_schedule, f"one of {', '.join(BETA_SCHEDULES)}",
                          'set beta_schedule to the name in the model\'s training code (diffusers\' names), or give '
                          'alphas_cumprod = "file.npy"')
    return torch.cumprod(1.0 - betas, dim=0).to(torch.float64)


def load_alphas_cumprod(path: str | Path, field: str = "model.alphas_cumprod") -> torch.Tensor:
    """ab_t [T] (float64) from an .npy file holding one non-increasing sequence in (0, 1] of length >= 2."""
    try:
        values = np.load(Path(path), allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ConfigError(field, str(path), f"a readable .npy array ({type(err).__name__}: {err})",
                          "save it with numpy.save(path, alphas_cumprod)") from None
    if values.ndim != 1 or values.size < 2 or not np.issubdtype(values.dtype, np.floating):
        raise ConfigError(field, str(path), f"a 1-D float array of length >= 2, but it holds {values.dtype} "
                          f"of shape {values.shape}", "save the schedule ab_t (t = 0..T-1) as one float vector")
    ab = torch.from_numpy(values.astype(np.float64))
    if not bool(((ab > 0) & (ab <= 1)).all()) or not bool((ab[1:] <= ab[:-1]).all()):
        raise ConfigError(field, str(path), "a non-increasing sequence in (0, 1] (ab_0 close to 1, ab_{T-1} close "
                          "to 0)", "save alphas_cumprod, not the betas or alphas")
    return ab
