"""`python -m benchmark train --what ensemble --heads class-embedding --members K`: DECU's ensemble of conditioning
heads (Berry et al., UAI 2024, "Shedding Light on Large Generative Networks"; public code nwaftp23/DECU) for a
class-conditional model: K fresh class-embedding tables trained on a FROZEN network.

Head k starts as a fresh table E_k ~ N(0, 1) [num_classes, dim] (nn.Embedding's own initialisation) drawn under
derive_seed(seed, "ensemble-head", k), and is trained with the diffusion objective of the presets (Ho et al. 2020,
eq. 14) under the base model's own schedule ab_t:
    L(E_k) = E_{x0, y, t, eps} || eps - eps_theta(sqrt(ab_t) x0 + sqrt(1 - ab_t) eps, t; E_k[y]) ||^2
with every network parameter frozen (requires_grad False, eval mode: no dropout) and E_k swapped in for the
network's own table (benchmark.models.class_heads); batches, timesteps and noise are drawn from head k's seed.
AdamW on E_k alone, linear warm-up then linear decay to 0.1x over the last 30% of the steps (`lr_at`), grad-clip
1.0; the final table is saved (no EMA: the table is tiny and the decayed rate settles it).

Saved: OUT/head_<k>.safetensors (the table under "class_embedding.weight", metadata: base digest, seed, steps),
OUT/heads.json (what the heads are, per head: steps, wall-clock, final training loss, held-out loss beside the base
table's on the same held-out batches) and OUT/model_card.md. The `ensemble` estimator finds them as
<model folder>/ensemble_heads/head_*.safetensors; a finished head (its file exists) is not trained again.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from benchmark.data.datasets import ImageDataset
from benchmark.errors import ConfigError
from benchmark.models.base import DiffusionModel
from benchmark.models.class_heads import (HEAD_FOLDER, HEAD_KEY, head_digest, require_class_embedding,
                                          save_head, swapped_class_embedding)
from benchmark.seeding import derive_seed
from benchmark.training import batch_indices, diffusion_loss, lr_at
from benchmark.training.ensemble import DEFAULT_MEMBERS, check_members

SUMMARY = "heads.json"
HELDOUT_IMAGES = 512
DEFAULT_HEAD_STEPS = 250
WHAT = ("DECU class-embedding heads (Berry et al., UAI 2024): fresh class-embedding tables trained on the frozen "
        "base network; the ensemble's members share the network and differ only in the table")


@dataclass
class HeadTrainConfig:
    """Settings of `train --what ensemble --heads class-embedding` (each head with its own seed)."""

    dataset: str
    out: str
    members: int = DEFAULT_MEMBERS
    steps: int = DEFAULT_HEAD_STEPS
    batch_size: int = 32
    lr: float = 3e-2
    warmup: int = 20
    seed: int = 0
    threads: int = 1
    max_minutes: float | None = None  # per head
    data_dir: str | None = None
    base: str | None = None  # the frozen network (preset name or model folder); default: the dataset's preset

    def __post_init__(self) -> None:
        check_members(self.members)


@dataclass
class HeadTrainResult:
    """One trained head: its table [num_classes, dim] and how the training went."""

    weight: torch.Tensor
    seed: int
    steps: int
    wall_clock_s: float
    final_loss: float
    stop_reason: str


def head_seed(seed: int, k: int) -> int:
    """Head k's seed (its initial table, batches, timesteps, noise)."""
    return derive_seed(int(seed), "ensemble-head", int(k))


def fresh_head(table: nn.Embedding, seed: int) -> torch.Tensor:
    """A new table of `table`'s shape drawn like nn.Embedding's default initialisation, N(0, 1), under `seed`."""
    return torch.randn(tuple(table.weight.shape), generator=torch.Generator().manual_seed(seed),
                       dtype=table.weight.dtype)


def check_epsilon_model(model: DiffusionModel) -> None:
    """The objective is eps-prediction's: the base must predict eps."""
    kind = getattr(model, "prediction_type", "epsilon")
    if kind != "epsilon":
        raise ConfigError("base model", kind, "an epsilon-prediction model for --heads",
                          "train full members (`train --what ensemble` without --heads)")


def train_head(model: DiffusionModel, data: ImageDataset, cfg: HeadTrainConfig, seed: int,
               progress: bool = False) -> HeadTrainResult:
    """Train one head on the frozen `model` (its parameters and their requires_grad flags are left as they were)."""
    table = require_class_embedding(model, "--heads class-embedding")
    check_epsilon_model(model)
    network = getattr(model, "unet", model)
    flags = {p: p.requires_grad for p in model.parameters()}
    was_training = network.training
    head = nn.Parameter(fresh_head(table, seed))
    opt = torch.optim.AdamW([head], lr=cfg.lr, weight_decay=0.0)
    ab = model.alphas_cumprod.to(torch.float32)
    sqrt_ab, sqrt_1m_ab = ab.sqrt(), (1 - ab).sqrt()
    batch_size = min(cfg.batch_size, len(data))
    start, step, running, stop_reason = time.perf_counter(), 0, None, "steps"
    try:
        model.requires_grad_(False)
        network.eval()
        for step in range(cfg.steps):
            if cfg.max_minutes is not None and time.perf_counter() - start > 60.0 * cfg.max_minutes:
                stop_reason = "max_minutes"
                break
            gen = torch.Generator().manual_seed(derive_seed(seed, "train", step))
            idx = batch_indices(len(data), batch_size, step, seed)
            for group in opt.param_groups:
                group["lr"] = lr_at(step, cfg.lr, cfg.warmup, cfg.steps)
            with swapped_class_embedding(model, head):
                loss = diffusion_loss(network, data.images[idx], data.labels[idx], sqrt_ab, sqrt_1m_ab, gen)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"head training loss is {loss.item()} at step {step}; lower --lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_([head], 1.0)
            opt.step()
            running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
            if progress and (step + 1) % 50 == 0:
                print(f"head seed {seed}: step {step + 1}/{cfg.steps} loss {running:.4f}", flush=True)
        else:
            step = cfg.steps
    finally:
        for parameter, flag in flags.items():
            parameter.requires_grad_(flag)
        network.train(was_training)
    return HeadTrainResult(head.detach().clone(), seed, step, round(time.perf_counter() - start, 1),
                           float("nan") if running is None else running, stop_reason)


def heldout_loss(model: DiffusionModel, data: ImageDataset, weight: torch.Tensor | None, seed: int = 0,
                 batch_size: int = 128) -> float:
    """Eq. 14 on `data` with the same timesteps and noise for every table (weight None: the model's own)."""
    network = getattr(model, "unet", model)
    table = require_class_embedding(model, "a held-out loss of a class table")
    ab = model.alphas_cumprod.to(torch.float32)
    total = 0.0
    with torch.no_grad(), swapped_class_embedding(model, table.weight if weight is None else weight):
        for i in range(0, len(data), batch_size):
            gen = torch.Generator().manual_seed(derive_seed(seed, "heldout", i))
            x0, y = data.images[i:i + batch_size], data.labels[i:i + batch_size]
            total += float(diffusion_loss(network, x0, y, ab.sqrt(), (1 - ab).sqrt(), gen)) * x0.shape[0]
    return total / len(data)


def train_ensemble_heads(cfg: HeadTrainConfig, progress: bool = True) -> dict:
    """Train (or finish) cfg.members heads on the frozen base; writes and returns OUT/heads.json."""
    from benchmark.data.datasets import load_dataset
    from benchmark.presets.loading import load_model

    base_name = cfg.base or cfg.dataset
    model = load_model(base_name)
    require_class_embedding(model, "--heads class-embedding")
    data = load_dataset(cfg.dataset, "train", root=cfg.data_dir)
    if data.labels is None or data.num_classes != model.num_classes:
        raise ConfigError("--dataset", cfg.dataset, f"labelled data with the base model's {model.num_classes} "
                          "classes", "pass the dataset the base model was trained on")
    heldout = load_dataset(cfg.dataset, "test", root=cfg.data_dir).subset(HELDOUT_IMAGES)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    previous = json.loads((out / SUMMARY).read_text()) if (out / SUMMARY).is_file() else {}
    done = {h["file"]: h for h in previous.get("per_head", []) if (out / h["file"]).is_file()}
    record = {"what": WHAT, "dataset": cfg.dataset, "base": base_name, "base_digest": head_digest(model),
              "members": cfg.members, "key": HEAD_KEY,
              "table_shape": list(require_class_embedding(model, "heads").weight.shape), "steps": cfg.steps,
              "batch_size": cfg.batch_size, "lr": cfg.lr, "seed": cfg.seed, "threads": cfg.threads,
              "heldout_images": len(heldout), "per_head": []}
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, cfg.threads))
    try:
        record["heldout_loss_base_table"] = round(heldout_loss(model, heldout, None), 5)
        for k in range(cfg.members):  # the record is rewritten after every head: an interrupted run resumes
            name = f"head_{k}.safetensors"
            record["per_head"].append(done.get(name) or _train_and_save(model, data, heldout, cfg, k, out, progress))
            record["wall_clock_s"] = round(sum(float(h["wall_clock_s"]) for h in record["per_head"]), 1)
            (out / SUMMARY).write_text(json.dumps(record, indent=2) + "\n")
    finally:
        torch.set_num_threads(threads)
    _write_card(out, record)
    return record


def _train_and_save(model: DiffusionModel, data: ImageDataset, heldout: ImageDataset, cfg: HeadTrainConfig, k: int,
                    out: Path, progress: bool) -> dict:
    result = train_head(model, data, cfg, head_seed(cfg.seed, k), progress=progress)
    name = f"head_{k}.safetensors"
    save_head(out / name, result.weight, {"base_digest": head_digest(model), "seed": str(result.seed),
                                          "steps": str(result.steps)})
    return {"file": name, "seed": result.seed, "steps": result.steps, "wall_clock_s": result.wall_clock_s,
            "final_loss": round(result.final_loss, 5), "stop_reason": result.stop_reason,
            "heldout_loss": round(heldout_loss(model, heldout, result.weight), 5)}


def _write_card(out: Path, record: dict) -> None:
    losses = " / ".join(f"{h['final_loss']:.4f}" for h in record["per_head"])
    held = " / ".join(f"{h['heldout_loss']:.4f}" for h in record["per_head"])
    lines = [f"# {record['members']} class-embedding heads for `{record['base']}`", "", f"- What: {WHAT}.",
             f"- Tables: {record['table_shape']} each, key `{record['key']}`; base weights sha256 "
             f"{record['base_digest'][:16]}...",
             f"- Training: {record['steps']} steps per head, batch {record['batch_size']}, AdamW lr {record['lr']} "
             f"(warm-up, linear decay to 0.1x over the last 30%), grad-clip 1.0, {record['threads']} thread(s); "
             f"{record['wall_clock_s'] / 60:.1f} min in all",
             f"- Final training losses (running mean): {losses}",
             f"- Held-out loss on {record['heldout_images']} test images (same t, noise): heads {held}; the base's own "
             f"table {record['heldout_loss_base_table']:.4f}"]
    (out / "model_card.md").write_text("\n".join(lines) + "\n")


__all__ = ["DEFAULT_HEAD_STEPS", "HEAD_FOLDER", "HeadTrainConfig", "HeadTrainResult", "fresh_head", "head_seed",
           "heldout_loss", "train_ensemble_heads", "train_head"]
