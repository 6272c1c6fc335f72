"""Training the `grid25` preset's denoiser (`python -m benchmark train --dataset grid25 --out DIR`).

The network predicts x0 (benchmark.models.grid_mlp); the objective is the min-SNR-gamma weighted x0 error
(Hang et al., ICCV 2023) on the suite's linear schedule 1e-4..0.02, T = 1000:
    L = E_{x0, t, eps} min(SNR_t, gamma) || x0 - x0_theta(sqrt(ab_t) x0 + sqrt(1 - ab_t) eps, t) ||^2,
    SNR_t = ab_t / (1 - ab_t),  gamma = 5,
i.e. Ho et al.'s eps loss (weight SNR_t on the x0 error) with the weight capped where the noise is small, x0 drawn
from the 100k exact training draws of benchmark.data.grid25 (the public code's dataset size), and t drawn three
times in four from 0..249, where the noise is small enough for the modes to separate (uniformly only a quarter
of the draws land there). The network's principal basis is the PCA of the training images (GridMLP.set_basis):
without it, an MLP on the 64 pixels stays a smooth interpolant of the grid after minutes of training (85-97 % of
its samples between modes; results/models.md). Adam with a linear warm-up and a cosine decay to zero, an EMA of the weights (the
saved model).
Writes DIR/weights.pt (the EMA state dict, float32), DIR/training_summary.json and DIR/model_card.md. It stops at
`steps` or after `max_minutes`, whichever comes first (the summary records which).
"""
from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from benchmark.data.grid25 import HALLUCINATION_K, oracle_data
from benchmark.models.base import linear_beta_alphas_cumprod
from benchmark.models.grid_mlp import make_network
from benchmark.training import ema_decay_at, ema_update

WEIGHTS = "weights.pt"
LOW_T, LOW_SHARE = 250, 0.75  # three draws in four from the steps where the modes separate (module doc)


@dataclass
class GridTrainConfig:
    out: str
    steps: int = 20000
    batch_size: int = 512
    lr: float = 2e-3
    warmup: int = 200
    ema_decay: float = 0.999
    snr_gamma: float = 5.0
    max_minutes: float | None = 10.0
    seed: int = 0
    threads: int = 1


def cosine_lr(step: int, lr: float, warmup: int, total: int) -> float:
    """Linear warm-up over `warmup` steps, then lr (1 + cos(pi f)) / 2 with f the share of the rest done."""
    if step < warmup:
        return lr * (step + 1) / warmup
    return lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


def snr_weights(alphas_cumprod: torch.Tensor, gamma: float) -> torch.Tensor:
    """min(SNR_t, gamma) [T], SNR_t = ab_t / (1 - ab_t)."""
    return (alphas_cumprod / (1 - alphas_cumprod)).clamp(max=gamma)


def sample_timesteps(b: int, num_timesteps: int, generator: torch.Generator, low: int = LOW_T,
                     share: float = LOW_SHARE) -> torch.Tensor:
    """[b] training steps: uniform on 0..low-1 with probability `share`, else uniform on 0..T-1."""
    uniform = torch.randint(0, num_timesteps, (b,), generator=generator)
    small = torch.randint(0, low, (b,), generator=generator)
    return torch.where(torch.rand(b, generator=generator) < share, small, uniform)


def grid_loss(network: torch.nn.Module, x0: torch.Tensor, alphas_cumprod: torch.Tensor, weights: torch.Tensor,
              generator: torch.Generator) -> torch.Tensor:
    """Monte-Carlo estimate of the weighted x0 loss (module doc) on x0 [B,1,8,8], t from sample_timesteps."""
    b = x0.shape[0]
    t = sample_timesteps(b, alphas_cumprod.numel(), generator)
    eps = torch.randn(x0.shape, generator=generator)
    ab = alphas_cumprod[t].view(b, 1, 1, 1)
    xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    return (weights[t].view(b, 1, 1, 1) * (network(xt, t) - x0).pow(2)).mean()


def train_grid(cfg: GridTrainConfig, progress: bool = True) -> dict:
    """Train, write the weights, the summary and the model card; return the summary."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    data = oracle_data("train").images
    ab = linear_beta_alphas_cumprod().to(torch.float32)
    weights = snr_weights(ab, cfg.snr_gamma)
    network = make_network()
    network.set_basis(data)
    ema = copy.deepcopy(network)
    optimiser = torch.optim.Adam(network.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    start, losses, step, stopped = time.perf_counter(), [], 0, "steps"
    while step < cfg.steps:
        if cfg.max_minutes is not None and time.perf_counter() - start > 60 * cfg.max_minutes:
            stopped = "max_minutes"
            break
        for group in optimiser.param_groups:
            group["lr"] = cosine_lr(step, cfg.lr, cfg.warmup, cfg.steps)
        rows = torch.randint(0, data.shape[0], (cfg.batch_size,), generator=gen)
        loss = grid_loss(network, data[rows], ab, weights, gen)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        ema_update(ema, network, ema_decay_at(step, cfg.ema_decay))
        losses.append(float(loss))
        step += 1
        if progress and step % 500 == 0:
            print(f"step {step}/{cfg.steps} loss {sum(losses[-500:]) / 500:.4f} "
                  f"{(time.perf_counter() - start) / 60:.1f} min", flush=True)
    torch.save({k: v.detach().clone() for k, v in ema.state_dict().items()}, out / WEIGHTS)
    summary = {"steps": step, "stopped_by": stopped, "minutes": round((time.perf_counter() - start) / 60, 2),
               "final_loss": sum(losses[-200:]) / max(1, len(losses[-200:])),
               "parameters": sum(p.numel() for p in network.parameters()), "config": asdict(cfg)}
    (out / "training_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "model_card.md").write_text(model_card(summary))
    return summary


def model_card(summary: dict) -> str:
    cfg = summary["config"]
    return (
        "# grid25: a learned score on Aithal et al.'s grid of 25 Gaussians\n\n"
        "- Data: 100k exact draws of benchmark/data/grid25.py (modes 2 (i, j) / S, sigma = 0.05 / S, S = sqrt(8.0025),"
        " embedded into 8x8 images by a fixed orthonormal map, isotropic noise sigma in every pixel).\n"
        f"- Network: benchmark/models/grid_mlp.py (residual MLP, width 128, 3 blocks, sinusoidal time embedding, "
        f"Fourier features of the 2 leading principal components of the training images, {summary['parameters']} "
        "parameters), x0 prediction (prediction_type sample), linear schedule 1e-4..0.02, T = 1000.\n"
        f"- Training: `python -m benchmark train --dataset grid25 --out DIR --steps {cfg['steps']} --batch-size "
        f"{cfg['batch_size']} --max-minutes {cfg['max_minutes']} --threads {cfg['threads']}`: {summary['steps']} "
        f"steps ({summary['stopped_by']}), {summary['minutes']} min, final loss {summary['final_loss']:.4f}; "
        f"Adam lr {cfg['lr']} with warm-up and cosine decay, EMA {cfg['ema_decay']} (weights.pt holds the EMA "
        f"weights); loss min(SNR_t, {cfg['snr_gamma']:g}) ||x0 - x0_theta||^2, t uniform on 0..{LOW_T - 1} with "
        f"probability {LOW_SHARE:g}, else on 0..999.\n"
        f"- Labels: hallucination = farther than {HALLUCINATION_K:g} sigma (in the plane) from every mode.\n")
