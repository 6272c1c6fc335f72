"""Protocol 3: sparsification on real images (AnoDDPM protocol).

Real test images are noised to t = noise_fraction * T (the nearest grid step), denoised with the run's
sampler while every estimator observes, and compared with the originals: per-pixel error
|x0_hat - x0| (the per-pixel RMSE). Sparsification curves remove the most uncertain pixels first; the
oracle removes the largest errors first. AUSE (lower is better) and AURG (higher is better) per image,
averaged, with a bootstrap interval over images; the pooled-pixels variant of the public code as well.
A latent model (one with `encode`/`decode`) noises the real images' latents, denoises them, decodes, and scores
the pixel error against the run's pixel-space maps (benchmark.models.pixel_maps).
"""
from __future__ import annotations

import numpy as np
import torch

from benchmark.runner.protocols.base import ProtocolInputs
from benchmark.runner.table import MetricRow, row_from_ci
from benchmark.models.pixel_maps import pixel_view
from benchmark.sampling import build_grid, condition_labels, sample
from benchmark.seeding import per_sample_randn
from metrics import bootstrap_ci, sparsification, sparsification_pooled

NAME = "sparsification"


def start_step(model, sampler: str, steps: int, noise_fraction: float) -> tuple[int, int]:
    """(grid index, timestep) of the grid step whose timestep is nearest to noise_fraction * T."""
    grid = build_grid(sampler, model.alphas_cumprod, steps)
    target = noise_fraction * model.num_train_timesteps
    best = min(grid, key=lambda g: abs(g.t - target))
    return best.index, best.t


def denoise_real(inputs: ProtocolInputs, params: dict):
    """Noise real test images to the start step and denoise them with all estimators observing."""
    cfg, model = inputs.config, inputs.model
    data = inputs.preset.load_data("test", n=int(params["num_images"]))
    x0 = data.images.to(model.device)
    encode = getattr(model, "encode", None)
    z0 = encode(x0) if callable(encode) else x0  # what the sampler starts from: latents of a latent model
    index, t = start_step(model, cfg.sampler, cfg.steps, float(params["noise_fraction"]))
    ab = float(model.alphas_cumprod[t])
    offset = 10_000_000  # sample indices of this protocol, distinct from the generation pass
    outputs = []
    for start in range(0, z0.shape[0], cfg.batch_size):
        stop = min(start + cfg.batch_size, z0.shape[0])
        idx = torch.arange(offset + start, offset + stop)
        noise = per_sample_randn(cfg.seed, idx, model.sample_shape, stream="sparsification", device=model.device)
        x_t = ab**0.5 * z0[start:stop] + (1 - ab) ** 0.5 * noise
        y = None if data.labels is None or not model.num_classes else data.labels[start:stop].to(model.device)
        if getattr(model, "cycled_conditions", False):  # a text-conditioned model: the run's prompts, cycled
            y = condition_labels(model, cfg.seed, idx).to(model.device)
        outputs.append(sample(model, x_t, sampler=cfg.sampler, steps=cfg.steps, estimators=inputs.make_estimators(),
                              y=y, seed=cfg.seed, indices=idx, start_index=index))
    x_hat = torch.cat([o.x0 for o in outputs])
    maps = {name: torch.cat([o.uncertainty[name].pixel for o in outputs]) for name in outputs[0].uncertainty}
    x_hat, maps = pixel_view(model, x_hat, maps, seed=cfg.seed, indices=torch.arange(offset, offset + z0.shape[0]))
    return x0, x_hat, maps, t


def run(inputs: ProtocolInputs, params: dict) -> list[MetricRow]:
    cfg = inputs.config
    x0, x_hat, maps, t = denoise_real(inputs, params)
    error = (x_hat - x0).abs().cpu()
    n = int(error.shape[0])
    rows = [MetricRow(NAME, "(all)", "rmse", float(error.pow(2).mean().sqrt()), n=n, seed=cfg.seed),
            MetricRow(NAME, "(all)", "start_timestep", float(t), n=n, seed=cfg.seed)]
    curves = {}
    no_map = {e.name for e in inputs.make_estimators() if not getattr(e, "has_pixel_map", True)}  # realism_oracle
    for name, pixel in maps.items():
        if name.startswith("_") or name in no_map:
            continue
        res = sparsification(error, pixel.cpu(), fractions=int(params["fractions"]), metric="rmse")
        for metric, per_image in (("ause", res.ause_per_image), ("aurg", res.aurg_per_image)):
            ci = bootstrap_ci(np.mean, np.asarray(per_image, dtype=np.float64), n_boot=cfg.bootstrap, seed=cfg.seed)
            rows.append(row_from_ci(NAME, name, metric, ci, n, cfg.seed))
        pooled = sparsification_pooled(error, pixel.cpu(), fractions=int(params["fractions"]), metric="rmse")
        rows.append(MetricRow(NAME, name, "ause_pooled", float(pooled.ause), n=n, seed=cfg.seed))
        rows.append(MetricRow(NAME, name, "aurg_pooled", float(pooled.aurg), n=n, seed=cfg.seed))
        curves[name] = (np.asarray(res.removed), np.asarray(res.method).mean(0), np.asarray(res.oracle).mean(0),
                        float(np.asarray(res.random).mean()))
    inputs.artifacts["sparsification_curves"] = curves
    return rows
