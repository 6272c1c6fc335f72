"""`python -m benchmark train --what latent`: a small latent diffusion model (AutoencoderKL + class-conditional DiT).

Two phases, each resumable from OUT/checkpoint.pt and bounded by steps and minutes:

1. AutoencoderKL (Kingma & Welling 2014; Rombach et al. 2022): 32x32x1 -> 8x8x4 latents, loss per image
   L = ||x - D(z)||^2 + kl_weight * KL(q(z|x) || N(0, I)),  z ~ q(z|x) (reparameterised).
   After it, `scaling_factor` = 1 / std of the posterior means of the train set (as Stable Diffusion's 0.18215).
2. DiTTransformer2DModel (Peebles & Xie 2023) on scaled latents z0 = scaling_factor * mean(q(z|x)) with the DDPM
   objective L = ||eps - eps_theta(sqrt(ab_t) z0 + sqrt(1 - ab_t) eps, t, y)||^2 (Ho et al. 2020, eq. 14); the
   label is replaced by the null class `num_classes` with probability 0.1 (diffusers' built-in label dropout), so
   the model serves classifier-free guidance (Ho & Salimans 2022); dropout 0.1 inside the blocks (MC-Dropout).

The result is a diffusers pipeline folder (model_index.json, vae/, transformer/, scheduler/) with a model card.
"""
from __future__ import annotations

import copy
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from benchmark.models.base import linear_beta_alphas_cumprod
from benchmark.seeding import derive_seed
from benchmark.training import CHECKPOINT, batch_indices, ema_decay_at, ema_update, lr_at, training_data

AE_ARCH = dict(down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
               block_out_channels=(16, 32, 64), layers_per_block=1, latent_channels=4, norm_num_groups=8,
               mid_block_add_attention=False)
DIT_ARCH = dict(num_attention_heads=3, attention_head_dim=32, num_layers=6, patch_size=2)


@dataclass
class LatentTrainConfig:
    """Settings of one latent training run (stored in the checkpoint and the model card)."""

    out: str
    dataset: str = "fashion"
    ae_steps: int = 1500
    ae_minutes: float | None = 12.0
    ae_batch_size: int = 32
    ae_lr: float = 1e-3
    kl_weight: float = 1e-5
    dit_steps: int = 8000
    dit_minutes: float | None = 25.0
    dit_batch_size: int = 64
    dit_lr: float = 5e-4
    warmup: int = 200
    dropout: float = 0.1
    ema_decay: float = 0.999
    checkpoint_every: int = 100
    seed: int = 0
    threads: int = 1
    data_dir: str | None = None
    ae_arch: dict = field(default_factory=lambda: dict(AE_ARCH))
    dit_arch: dict = field(default_factory=lambda: dict(DIT_ARCH))


def build_autoencoder(channels: int, image_size: int, arch: dict) -> nn.Module:
    """A diffusers AutoencoderKL for images [C,H,W] (downsampling 2^(levels-1))."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(in_channels=channels, out_channels=channels, sample_size=image_size, **arch)


def build_dit(latent_shape: tuple[int, int, int], num_classes: int, dropout: float, arch: dict) -> nn.Module:
    """A class-conditional DiTTransformer2DModel on latents [C,h,w]; its label table has num_classes + 1 rows."""
    from diffusers import DiTTransformer2DModel

    c, h, _ = latent_shape
    return DiTTransformer2DModel(in_channels=c, out_channels=c, sample_size=h, dropout=dropout,
                                 num_embeds_ada_norm=num_classes, **arch)


def autoencoder_loss(vae: nn.Module, x: torch.Tensor, kl_weight: float, generator: torch.Generator) -> torch.Tensor:
    """Per-pixel mean of ||x - D(z)||^2 + kl_weight * KL for x [B,C,H,W], z drawn by reparameterisation."""
    posterior = vae.encode(x).latent_dist
    z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator)
    recon = vae.decode(z).sample
    per_image = (recon - x).pow(2).flatten(1).sum(1) + kl_weight * posterior.kl()
    return per_image.mean() / x[0].numel()


@torch.no_grad()
def encode_means(vae: nn.Module, images: torch.Tensor, chunk: int = 500) -> torch.Tensor:
    """Posterior means E[z | x] [N,c,h,w] of images [N,C,H,W] (unscaled)."""
    return torch.cat([vae.encode(images[i:i + chunk]).latent_dist.mean for i in range(0, images.shape[0], chunk)])


def latent_diffusion_loss(dit: nn.Module, z0: torch.Tensor, y: torch.Tensor, sqrt_ab: torch.Tensor,
                          sqrt_1m_ab: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Monte-Carlo estimate of eq. 14 on scaled latents z0 [B,c,h,w] with labels y [B]."""
    b = z0.shape[0]
    t = torch.randint(0, sqrt_ab.numel(), (b,), generator=generator)
    eps = torch.randn(z0.shape, generator=generator)
    zt = sqrt_ab[t].view(b, 1, 1, 1) * z0 + sqrt_1m_ab[t].view(b, 1, 1, 1) * eps
    pred = dit(zt, timestep=t, class_labels=y).sample
    return (pred[:, : z0.shape[1]] - eps).pow(2).mean()


def train_latent(cfg: LatentTrainConfig, progress: bool = True) -> dict:
    """Train (or resume) both phases; write the pipeline folder cfg.out. The caller's RNG and threads are kept."""
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, cfg.threads))
    try:
        with torch.random.fork_rng(devices=[]):
            return _train_latent(cfg, progress)
    finally:
        torch.set_num_threads(threads)


class _State:
    """Everything the checkpoint holds: both networks, the DiT's EMA and optimiser, counters and losses."""

    def __init__(self, cfg: LatentTrainConfig, sample_shape: tuple[int, int, int], num_classes: int) -> None:
        path = Path(cfg.out) / CHECKPOINT
        blob = torch.load(path, map_location="cpu", weights_only=False) if path.is_file() else None
        if blob is not None:
            cfg.ae_arch, cfg.dit_arch = blob["config"]["ae_arch"], blob["config"]["dit_arch"]
        torch.manual_seed(cfg.seed)
        self.vae = build_autoencoder(sample_shape[0], sample_shape[1], cfg.ae_arch)
        factor = 2 ** (len(cfg.ae_arch["block_out_channels"]) - 1)
        self.latent_shape = (cfg.ae_arch["latent_channels"], sample_shape[1] // factor, sample_shape[2] // factor)
        self.dit = build_dit(self.latent_shape, num_classes, cfg.dropout, cfg.dit_arch)
        self.ema = copy.deepcopy(self.dit)
        self.ae_opt = torch.optim.AdamW(self.vae.parameters(), lr=cfg.ae_lr, weight_decay=0.0)
        self.dit_opt = torch.optim.AdamW(self.dit.parameters(), lr=cfg.dit_lr, weight_decay=0.0)
        self.counters = {"ae_step": 0, "ae_seconds": 0.0, "dit_step": 0, "dit_seconds": 0.0, "scaling_factor": None}
        self.losses: dict[str, list] = {"ae": [], "dit": []}
        if blob is not None:
            self.vae.load_state_dict(blob["vae"])
            self.dit.load_state_dict(blob["dit"])
            self.ema.load_state_dict(blob["ema"])
            self.ae_opt.load_state_dict(blob["ae_opt"])
            self.dit_opt.load_state_dict(blob["dit_opt"])
            self.counters, self.losses = blob["counters"], blob["losses"]
        if self.counters["scaling_factor"] is not None:
            self.vae.register_to_config(scaling_factor=self.counters["scaling_factor"])

    def save(self, cfg: LatentTrainConfig) -> None:
        out = Path(cfg.out)
        out.mkdir(parents=True, exist_ok=True)
        blob = {"config": asdict(cfg), "vae": self.vae.state_dict(), "dit": self.dit.state_dict(),
                "ema": self.ema.state_dict(), "ae_opt": self.ae_opt.state_dict(), "dit_opt": self.dit_opt.state_dict(),
                "counters": self.counters, "losses": self.losses}
        torch.save(blob, out / (CHECKPOINT + ".tmp"))
        (out / (CHECKPOINT + ".tmp")).replace(out / CHECKPOINT)


def _run_phase(name: str, steps: int, minutes: float | None, state: _State, cfg: LatentTrainConfig, one_step,
               progress: bool) -> str:
    """Call one_step(step) -> loss until `steps` or `minutes` (accumulated over resumes); checkpoint regularly."""
    start = time.perf_counter()
    base = state.counters[f"{name}_seconds"]
    running = state.losses[name][-1][1] if state.losses[name] else None
    reason = "steps"
    while state.counters[f"{name}_step"] < steps:
        if minutes is not None and base + time.perf_counter() - start > 60.0 * minutes:
            reason = "minutes"
            break
        step = state.counters[f"{name}_step"]
        loss = one_step(step)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{name} training loss is {loss.item()} at step {step}; lower the learning rate")
        state.counters[f"{name}_step"] = step + 1
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if (step + 1) % 50 == 0:
            state.losses[name].append((step + 1, running))
            if progress:
                print(f"[{name}] step {step + 1} loss {running:.5f} "
                      f"{(base + time.perf_counter() - start) / 60:.1f} min", flush=True)
        if (step + 1) % cfg.checkpoint_every == 0:
            state.counters[f"{name}_seconds"] = base + time.perf_counter() - start
            state.save(cfg)
    state.counters[f"{name}_seconds"] = base + time.perf_counter() - start
    state.counters[f"{name}_stop"] = reason
    state.save(cfg)
    return reason


def _optimiser_step(opt: torch.optim.Optimizer, params, loss: torch.Tensor, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr
    opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()


def _train_latent(cfg: LatentTrainConfig, progress: bool) -> dict:
    data = training_data(cfg.dataset, cfg.data_dir)
    num_classes = int(data.num_classes)
    state = _State(cfg, data.sample_shape, num_classes)

    def ae_step(step: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "ae", step))
        x = data.images[batch_indices(len(data), cfg.ae_batch_size, step, cfg.seed)]
        loss = autoencoder_loss(state.vae, x, cfg.kl_weight, gen)
        _optimiser_step(state.ae_opt, state.vae.parameters(), loss, lr_at(step, cfg.ae_lr, cfg.warmup, cfg.ae_steps))
        return loss.detach()

    state.vae.train()
    _run_phase("ae", cfg.ae_steps, cfg.ae_minutes, state, cfg, ae_step, progress)
    state.vae.eval()
    latents = encode_means(state.vae, data.images)
    if state.counters["scaling_factor"] is None:
        state.counters["scaling_factor"] = float(1.0 / latents.std())
        state.vae.register_to_config(scaling_factor=state.counters["scaling_factor"])
        state.save(cfg)
    z_all = latents * state.counters["scaling_factor"]
    ab = linear_beta_alphas_cumprod().to(torch.float32)
    sqrt_ab, sqrt_1m_ab = ab.sqrt(), (1 - ab).sqrt()

    def dit_step(step: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "dit", step))
        torch.manual_seed(derive_seed(cfg.seed, "dit-dropout", step))  # dropout and label dropout draws
        idx = batch_indices(len(data), cfg.dit_batch_size, step, cfg.seed)
        loss = latent_diffusion_loss(state.dit, z_all[idx], data.labels[idx], sqrt_ab, sqrt_1m_ab, gen)
        _optimiser_step(state.dit_opt, state.dit.parameters(), loss,
                        lr_at(step, cfg.dit_lr, cfg.warmup, cfg.dit_steps))
        ema_update(state.ema, state.dit, ema_decay_at(step, cfg.ema_decay))
        return loss.detach()

    state.dit.train()
    state.ema.eval()
    _run_phase("dit", cfg.dit_steps, cfg.dit_minutes, state, cfg, dit_step, progress)
    out = Path(cfg.out)
    save_latent_pipeline(state.vae, state.ema.eval(), out)
    recon = reconstruction_rmse(state.vae, data.images[:2000])
    summary = {"dataset": cfg.dataset, "num_classes": num_classes, "latent_shape": list(state.latent_shape),
               **state.counters, "ae_final_loss": state.losses["ae"][-1][1] if state.losses["ae"] else None,
               "dit_final_loss": state.losses["dit"][-1][1] if state.losses["dit"] else None,
               "train_reconstruction_rmse": recon,
               "vae_parameters": sum(p.numel() for p in state.vae.parameters()),
               "dit_parameters": sum(p.numel() for p in state.ema.parameters()), "config": asdict(cfg)}
    (out / "training_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


@torch.no_grad()
def reconstruction_rmse(vae: nn.Module, images: torch.Tensor, chunk: int = 500) -> float:
    """sqrt(mean (x - D(E[z|x]))^2) over images [N,C,H,W] in [-1, 1]."""
    total = 0.0
    for i in range(0, images.shape[0], chunk):
        x = images[i:i + chunk]
        total += float((vae.decode(vae.encode(x).latent_dist.mean).sample - x).pow(2).sum())
    return (total / images.numel()) ** 0.5


def save_latent_pipeline(vae: nn.Module, transformer: nn.Module, out: Path) -> None:
    """Write a DiTPipeline-layout folder: model_index.json, vae/, transformer/, scheduler/ (DDPM linear schedule)."""
    import diffusers
    from diffusers import DDPMScheduler

    out.mkdir(parents=True, exist_ok=True)
    vae.save_pretrained(out / "vae", safe_serialization=True)
    transformer.save_pretrained(out / "transformer", safe_serialization=True)
    DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                  prediction_type="epsilon").save_pretrained(out / "scheduler")
    index = {"_class_name": "DiTPipeline", "_diffusers_version": diffusers.__version__,
             "scheduler": ["diffusers", "DDPMScheduler"], "transformer": ["diffusers", "DiTTransformer2DModel"],
             "vae": ["diffusers", "AutoencoderKL"]}
    (out / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")


def export_latent_checkpoint(run_dir: str | Path, out: str | Path) -> dict:
    """Write the autoencoder and the DiT's EMA weights of run_dir/checkpoint.pt (e.g. mid-run) as a pipeline
    folder `out`; returns the checkpoint's counters."""
    blob = torch.load(Path(run_dir) / CHECKPOINT, map_location="cpu", weights_only=False)
    cfg = LatentTrainConfig(**{**blob["config"], "out": str(run_dir)})
    data_shape = (1, 32, 32)
    state = _State(cfg, data_shape, int(blob["dit"]["transformer_blocks.0.norm1.emb.class_embedder.embedding_table.weight"]
                                        .shape[0]) - 1)
    save_latent_pipeline(state.vae.eval(), state.ema.eval(), Path(out))
    return dict(state.counters)
