"""Training the `grid25` preset's denoiser (`python -m benchmark train --dataset grid25 --out DIR`).

The objective is the suite's (Ho et al. eq. 14) on the linear schedule 1e-4..0.02, T = 1000:
    L = E_{x0, t, eps} || eps - eps_theta(sqrt(ab_t) x0 + sqrt(1 - ab_t) eps, t) ||^2,
x0 drawn from the 100k exact training draws of benchmark.data.grid25 (the public code's dataset size), Adam with
a linear warm-up and the suite's linear decay (benchmark.training.lr_at), an EMA of the weights (the saved model).
Writes DIR/weights.pt (the EMA state dict, float32), DIR/training_summary.json and DIR/model_card.md. It stops at
`steps` or after `max_minutes`, whichever comes first (the summary records which).
"""
from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from benchmark.data.grid25 import HALLUCINATION_K, oracle_data
from benchmark.models.base import linear_beta_alphas_cumprod
from benchmark.models.grid_mlp import make_network
from benchmark.training import ema_decay_at, ema_update, lr_at

WEIGHTS = "weights.pt"


@dataclass
class GridTrainConfig:
    out: str
    steps: int = 20000
    batch_size: int = 512
    lr: float = 2e-3
    warmup: int = 100
    ema_decay: float = 0.999
    max_minutes: float | None = 5.0
    seed: int = 0
    threads: int = 1


def grid_loss(network: torch.nn.Module, x0: torch.Tensor, sqrt_ab: torch.Tensor, sqrt_1m_ab: torch.Tensor,
              generator: torch.Generator) -> torch.Tensor:
    """Monte-Carlo estimate of eq. 14 on x0 [B,1,8,8]."""
    b = x0.shape[0]
    t = torch.randint(0, sqrt_ab.numel(), (b,), generator=generator)
    eps = torch.randn(x0.shape, generator=generator)
    xt = sqrt_ab[t].view(b, 1, 1, 1) * x0 + sqrt_1m_ab[t].view(b, 1, 1, 1) * eps
    return (network(xt, t) - eps).pow(2).mean()


def train_grid(cfg: GridTrainConfig, progress: bool = True) -> dict:
    """Train, write the weights, the summary and the model card; return the summary."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    data = oracle_data("train").images
    ab = linear_beta_alphas_cumprod().to(torch.float32)
    sqrt_ab, sqrt_1m_ab = ab.sqrt(), (1 - ab).sqrt()
    network = make_network()
    ema = copy.deepcopy(network)
    optimiser = torch.optim.Adam(network.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    start, losses, step, stopped = time.perf_counter(), [], 0, "steps"
    while step < cfg.steps:
        if cfg.max_minutes is not None and time.perf_counter() - start > 60 * cfg.max_minutes:
            stopped = "max_minutes"
            break
        for group in optimiser.param_groups:
            group["lr"] = lr_at(step, cfg.lr, cfg.warmup, cfg.steps)
        rows = torch.randint(0, data.shape[0], (cfg.batch_size,), generator=gen)
        loss = grid_loss(network, data[rows], sqrt_ab, sqrt_1m_ab, gen)
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
        f"- Network: benchmark/models/grid_mlp.py (MLP, width 128, 3 hidden layers, {summary['parameters']} "
        "parameters), epsilon prediction, linear schedule 1e-4..0.02, T = 1000.\n"
        f"- Training: `python -m benchmark train --dataset grid25 --out DIR --steps {cfg['steps']} --batch-size "
        f"{cfg['batch_size']} --max-minutes {cfg['max_minutes']} --threads {cfg['threads']}`: {summary['steps']} "
        f"steps ({summary['stopped_by']}), {summary['minutes']} min, final loss {summary['final_loss']:.4f}; "
        f"Adam lr {cfg['lr']}, EMA {cfg['ema_decay']} (weights.pt holds the EMA weights).\n"
        f"- Labels: hallucination = farther than {HALLUCINATION_K:g} sigma (in the plane) from every mode.\n")
