"""Training (layer 4): the diffusion UNet of the pixel presets (here), the latent presets (`latent`), domain classifiers
(`classifier`), the latent presets' quality check (`latent_quality`) and the `train` command (`command`).

May import: errors/seeding, metrics, models, data, sampling, estimators, presets. Never config or anything above.

Train a diffusers UNet2DModel on a built-in dataset.

Diffusion objective (Ho et al. 2020, eq. 14): L = E_{x0, t, eps} || eps - eps_theta(sqrt(ab_t) x0 + sqrt(1 - ab_t) eps, t) ||^2
with t ~ U{0..T-1}, the DDPM linear schedule beta_t = linspace(1e-4, 0.02, 1000). The model is
class-conditional (`num_class_embeds`) when the data has labels. An exponential moving average of the
weights (the saved model) is kept; `checkpoint.pt` in the output folder holds everything needed to resume.
"""
from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from benchmark.data.datasets import ImageDataset, load_dataset
from benchmark.models.base import linear_beta_alphas_cumprod
from benchmark.seeding import derive_seed

CHECKPOINT = "checkpoint.pt"

# UNet architectures per dataset: attention-free, one ResNet block per level (fast on a CPU).
ARCHITECTURES: dict[str, dict] = {
    "digits": dict(block_out_channels=(16, 32, 64), layers_per_block=1, norm_num_groups=8, add_attention=False,
                   down_block_types=("DownBlock2D",) * 3, up_block_types=("UpBlock2D",) * 3),
    "fashion": dict(block_out_channels=(16, 32, 64), layers_per_block=1, norm_num_groups=8, add_attention=False,
                    down_block_types=("DownBlock2D",) * 3, up_block_types=("UpBlock2D",) * 3),
}


@dataclass
class TrainConfig:
    """Settings of one diffusion training run (stored in the checkpoint and the model card)."""

    dataset: str
    out: str
    steps: int = 20000
    batch_size: int = 64
    lr: float = 1e-3
    warmup: int = 200
    ema_decay: float = 0.999
    dropout: float = 0.1
    conditional: bool = True
    hflip: bool = False
    max_minutes: float | None = None
    checkpoint_every: int = 250
    seed: int = 0
    threads: int = 2
    data_dir: str | None = None
    download: bool = False
    arch: dict = field(default_factory=dict)


def build_unet(sample_shape: tuple[int, int, int], num_classes: int | None, dropout: float, arch: dict) -> nn.Module:
    """A diffusers UNet2DModel for images [C,H,W]; class-conditional through `num_class_embeds` if num_classes."""
    from diffusers import UNet2DModel

    c, h, _ = sample_shape
    return UNet2DModel(sample_size=h, in_channels=c, out_channels=c, dropout=dropout,
                       num_class_embeds=num_classes, **arch)


def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """theta_ema <- decay * theta_ema + (1 - decay) * theta (buffers copied)."""
    with torch.no_grad():
        for pe, p in zip(ema.parameters(), model.parameters()):
            pe.mul_(decay).add_(p.detach(), alpha=1.0 - decay)
        for be, b in zip(ema.buffers(), model.buffers()):
            be.copy_(b)


def ema_decay_at(step: int, decay: float) -> float:
    """EMA decay min(decay, 1 - 2 / (step + 2)): the average spans about half the steps so far, at most 1/(1-decay)."""
    return min(decay, 1.0 - 2.0 / (step + 2.0))


def lr_at(step: int, lr: float, warmup: int, total: int | None = None, decay_from: float = 0.7,
          final: float = 0.1) -> float:
    """Linear warm-up over `warmup` steps, constant, then linear decay to final * lr over the last
    (1 - decay_from) of `total` steps (no decay when total is None)."""
    scale = min(1.0, (step + 1) / max(1, warmup))
    if total is not None and step >= decay_from * total:
        frac = min(1.0, (step - decay_from * total) / max(1.0, (1.0 - decay_from) * total))
        scale *= 1.0 - (1.0 - final) * frac
    return lr * scale


def diffusion_loss(unet: nn.Module, x0: torch.Tensor, y: torch.Tensor | None, sqrt_ab: torch.Tensor,
                   sqrt_1m_ab: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Monte-Carlo estimate of eq. 14 on a batch x0 [B,C,H,W] (labels y [B] or None)."""
    b = x0.shape[0]
    t = torch.randint(0, sqrt_ab.numel(), (b,), generator=generator)
    eps = torch.randn(x0.shape, generator=generator)
    xt = sqrt_ab[t].view(b, 1, 1, 1) * x0 + sqrt_1m_ab[t].view(b, 1, 1, 1) * eps
    pred = unet(xt, t, class_labels=y).sample
    return (pred - eps).pow(2).mean()


def augment(x: torch.Tensor, hflip: bool, generator: torch.Generator) -> torch.Tensor:
    """Random horizontal flips of half the batch x [B,C,H,W] when `hflip`."""
    if not hflip:
        return x
    flip = torch.rand(x.shape[0], generator=generator) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)


def save_pipeline(unet: nn.Module, out: Path) -> None:
    """Write a diffusers pipeline folder: model_index.json, unet/ (safetensors + config), scheduler/."""
    import diffusers
    from diffusers import DDPMScheduler

    out.mkdir(parents=True, exist_ok=True)
    unet.save_pretrained(out / "unet", safe_serialization=True)
    DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                  prediction_type="epsilon").save_pretrained(out / "scheduler")
    index = {"_class_name": "DDPMPipeline", "_diffusers_version": diffusers.__version__,
             "scheduler": ["diffusers", "DDPMScheduler"], "unet": ["diffusers", "UNet2DModel"]}
    (out / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")


def training_data(dataset: str, data_dir: str | None = None, download: bool = False) -> ImageDataset:
    """The train split of a dataset; "gmm" is 20k exact draws from the gmm preset's mixture."""
    if dataset == "gmm":
        from benchmark.presets import get

        return get("gmm").load_data("train")
    return load_dataset(dataset, "train", root=data_dir, download=download)


def batch_indices(n: int, batch_size: int, step: int, seed: int) -> torch.Tensor:
    """Rows of optimiser step `step`: epoch e = step // (n // batch_size) walks a permutation seeded by (seed, e).

    A function of (seed, step) alone, so a resumed run sees exactly the batches of an uninterrupted one.
    """
    per_epoch = max(1, n // batch_size)
    epoch, pos = divmod(step, per_epoch)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(derive_seed(seed, "epoch", epoch)))
    return perm[pos * batch_size:(pos + 1) * batch_size]


def train_diffusion(cfg: TrainConfig, progress: bool = True) -> dict:
    """Train (or resume) until cfg.steps or cfg.max_minutes; save the EMA model to cfg.out. Returns a summary.

    The caller's global RNG state and torch thread count are restored afterwards.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, cfg.threads))
    try:
        with torch.random.fork_rng(devices=[]):
            return _train_diffusion(cfg, progress)
    finally:
        torch.set_num_threads(threads)


def _train_diffusion(cfg: TrainConfig, progress: bool) -> dict:
    out = Path(cfg.out)
    data = training_data(cfg.dataset, cfg.data_dir, cfg.download)
    num_classes = data.num_classes if (cfg.conditional and data.labels is not None) else None
    ab = linear_beta_alphas_cumprod().to(torch.float32)
    sqrt_ab, sqrt_1m_ab = ab.sqrt(), (1 - ab).sqrt()
    ckpt_path = out / CHECKPOINT
    if ckpt_path.is_file():
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        arch = ckpt["config"]["arch"]
        unet = build_unet(data.sample_shape, ckpt["num_classes"], ckpt["config"]["dropout"], arch)
        unet.load_state_dict(ckpt["unet"])
        ema = copy.deepcopy(unet)
        ema.load_state_dict(ckpt["ema"])
        step, elapsed, losses = ckpt["step"], ckpt["elapsed"], ckpt["losses"]
        num_classes = ckpt["num_classes"]
    else:
        arch = cfg.arch or ARCHITECTURES["fashion" if cfg.dataset == "fashion" else "digits"]
        torch.manual_seed(cfg.seed)
        unet = build_unet(data.sample_shape, num_classes, cfg.dropout, arch)
        ema = copy.deepcopy(unet)
        step, elapsed, losses = 0, 0.0, []
    cfg.arch = dict(arch)
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, weight_decay=0.0)
    if ckpt_path.is_file():
        opt.load_state_dict(ckpt["opt"])
    unet.train()
    ema.eval()
    batch_size = min(cfg.batch_size, len(data))
    start = time.perf_counter()
    stop_reason = "steps"
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress, desc=f"train {cfg.dataset}", mininterval=5)

    def save_checkpoint() -> None:
        out.mkdir(parents=True, exist_ok=True)
        blob = {"config": asdict(cfg), "num_classes": num_classes, "unet": unet.state_dict(), "ema": ema.state_dict(),
                "opt": opt.state_dict(), "step": step, "elapsed": elapsed + time.perf_counter() - start,
                "losses": losses}
        torch.save(blob, out / (CHECKPOINT + ".tmp"))
        (out / (CHECKPOINT + ".tmp")).replace(ckpt_path)

    running = losses[-1][1] if losses else None
    while step < cfg.steps:
        if cfg.max_minutes is not None and time.perf_counter() - start > 60.0 * cfg.max_minutes:
            stop_reason = "max_minutes"
            break
        # every random draw of this step derives from (seed, step): resuming reproduces an uninterrupted run
        gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "train", step))
        torch.manual_seed(derive_seed(cfg.seed, "dropout", step))
        idx = batch_indices(len(data), batch_size, step, cfg.seed)
        x0 = augment(data.images[idx], cfg.hflip, gen)
        y = data.labels[idx] if num_classes else None
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg.lr, cfg.warmup, cfg.steps)
        loss = diffusion_loss(unet, x0, y, sqrt_ab, sqrt_1m_ab, gen)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss is {loss.item()} at step {step}; lower --lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        ema_update(ema, unet, ema_decay_at(step, cfg.ema_decay))
        step += 1
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if step % 50 == 0:
            losses.append((step, running))
            bar.set_postfix(loss=f"{running:.4f}")
        bar.update(1)
        if step % cfg.checkpoint_every == 0:
            save_checkpoint()
    bar.close()
    save_checkpoint()
    total = elapsed + time.perf_counter() - start
    save_pipeline(ema, out)
    summary = {"dataset": cfg.dataset, "steps": step, "batch_size": cfg.batch_size, "wall_clock_s": round(total, 1),
               "final_loss": running, "stop_reason": stop_reason, "num_classes": num_classes,
               "parameters": sum(p.numel() for p in ema.parameters()), "config": asdict(cfg)}
    (out / "training_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    write_model_card(out, summary)
    return summary


def export_checkpoint(run_dir: str | Path, out: str | Path) -> int:
    """Write the EMA weights of run_dir/checkpoint.pt as a pipeline folder `out` (e.g. mid-run); returns its step."""
    ckpt = torch.load(Path(run_dir) / CHECKPOINT, map_location="cpu", weights_only=False)
    cfg = ckpt["config"]
    shape = (1, 32, 32) if cfg["dataset"] == "fashion" else (1, 16, 16)
    unet = build_unet(shape, ckpt["num_classes"], cfg["dropout"], cfg["arch"])
    unet.load_state_dict(ckpt["ema"])
    save_pipeline(unet.eval(), Path(out))
    return int(ckpt["step"])


def write_model_card(out: Path, summary: dict, quality: dict | None = None) -> None:
    """A short model_card.md: data, architecture, steps, wall-clock and (when measured) sample quality."""
    cfg = summary["config"]
    lines = [f"# {cfg['dataset']} diffusion model (diffusers UNet2DModel)", "",
             (f"- Data: `{cfg['dataset']}` train split (see benchmark/data/datasets.py), images in [-1, 1]"
              if cfg["dataset"] != "gmm" else "- Data: 20k exact draws of the gmm preset's mixture (benchmark/data/gmm.py)")
             + (", random horizontal flips" if cfg["hflip"] else ""),
             f"- Conditioning: {'class labels (' + str(summary['num_classes']) + ' classes)' if summary['num_classes'] else 'none'}",
             f"- Architecture: {cfg['arch']}, dropout {cfg['dropout']}, {summary['parameters']:,} parameters",
             "- Objective: epsilon prediction, DDPM linear schedule 1e-4..0.02, T = 1000",
             f"- Optimiser: AdamW lr {cfg['lr']} (warm-up {cfg['warmup']}, linear decay to 0.1x over the last 30% "
             f"of {cfg['steps']} steps), batch {cfg['batch_size']}, "
             f"grad-clip 1.0, EMA {cfg['ema_decay']} (the saved weights)",
             f"- Steps: {summary['steps']} ({summary['stop_reason']}), wall-clock {summary['wall_clock_s'] / 60:.1f} min "
             f"on {cfg['threads']} CPU threads, final training loss {summary['final_loss']:.4f}"]
    quality = quality if quality is not None else summary.get("quality")
    if quality:
        lines += ["", "## Sample quality", ""] + [f"- {k}: {v}" for k, v in quality.items()]
    (out / "model_card.md").write_text("\n".join(lines) + "\n")


# ----------------------------------------------------------------------------- CLI
