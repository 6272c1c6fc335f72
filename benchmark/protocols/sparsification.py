"""Protocol 3: sparsification on real images (AnoDDPM protocol).

Real test images are noised to t = noise_fraction * T (the nearest grid step), denoised with the run's
sampler while every estimator observes, and compared with the originals: per-pixel error
|x0_hat - x0| (the per-pixel RMSE). Sparsification curves remove the most uncertain pixels first; the
oracle removes the largest errors first. AUSE (lower is better) per image, averaged, with a bootstrap interval
over images; AURG (higher is better: the area between the expected curve of random removal and the method's) per
image, averaged, with the t interval and the one-sample t-test of "AURG = 0" (a map with no information has
expected AURG 0); ause_delta_vs_random = mean over images of AUSE(estimator) - AUSE(`random`'s map), paired on the
same images, with its paired t-test (only when the `random` floor is configured), and likewise against every other
configured `comparison_baseline` estimator (e.g. `ause_delta_vs_local_variance`, the trivial edge baseline). The
pooled-pixels variant of the public code as well.
A latent model (one with `encode`/`decode`) noises the real images' latents, denoises them, decodes, and scores
the pixel error against the run's pixel-space maps (benchmark.models.pixel_maps).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from benchmark.execution import checksums
from benchmark.execution.generation import shard_path, shard_ranges, usable
from benchmark.models.pixel_maps import pixel_view
from benchmark.protocols.base import ProtocolInputs
from benchmark.protocols.table import MetricRow, row_from_ci
from benchmark.sampling import build_grid, condition_labels, sample
from benchmark.seeding import per_sample_randn
from metrics import bootstrap_ci, sparsification, sparsification_pooled
from metrics.significance import paired_t_test

NAME = "sparsification"


def features_read(params: dict, config) -> set[tuple[str, str]]:
    """(space, split) pairs of the run's features this protocol reads: none (pixel errors on re-noised real images
    only)."""
    return set()


def start_step(model, sampler: str, steps: int, noise_fraction: float) -> tuple[int, int]:
    """(grid index, timestep) of the grid step whose timestep is nearest to noise_fraction * T."""
    grid = build_grid(sampler, model.alphas_cumprod, steps)
    target = noise_fraction * model.num_train_timesteps
    best = min(grid, key=lambda g: abs(g.t - target))
    return best.index, best.t


SHARD_TAG = "sparse"  # shards/sparse_<start>_<stop>.pt: one batch of denoised real images and its maps
OFFSET = 10_000_000  # sample indices of this protocol, distinct from the generation pass


def batches(cfg, params: dict) -> list[tuple[int, int]]:
    """The (start, stop) image ranges of the protocol's denoising batches (the run's batch size)."""
    return shard_ranges(int(params["num_images"]), cfg.batch_size)


def denoise_batch(run_dir: Path, cfg, model, preset, make_estimators, params: dict, start: int, stop: int) -> Path:
    """Noise real test images start..stop-1 to the start step, denoise them with every estimator observing,
    and save x0_hat and the maps as a checksummed shard (skipped when a usable one is on disk). Every draw
    derives from (seed, OFFSET + image index), so batches run in any order, on any rank."""
    path = shard_path(run_dir, start, stop, tag=SHARD_TAG)
    if usable(path):
        return path
    data = preset.load_data("test", n=int(params["num_images"]))  # all of them: the gmm's draws are not prefixes
    x0 = data.images[start:stop].to(model.device)
    encode = getattr(model, "encode", None)
    z0 = encode(x0) if callable(encode) else x0  # what the sampler starts from: latents of a latent model
    index, t = start_step(model, cfg.sampler, cfg.steps, float(params["noise_fraction"]))
    ab = float(model.alphas_cumprod[t])
    idx = torch.arange(OFFSET + start, OFFSET + stop)
    noise = per_sample_randn(cfg.seed, idx, model.sample_shape, stream="sparsification", device=model.device)
    x_t = ab**0.5 * z0 + (1 - ab) ** 0.5 * noise
    y = None if data.labels is None or not model.num_classes else data.labels[start:stop].to(model.device)
    if getattr(model, "cycled_conditions", False):  # a text-conditioned model: the run's prompts, cycled
        y = condition_labels(model, cfg.seed, idx).to(model.device)
    out = sample(model, x_t, sampler=cfg.sampler, steps=cfg.steps, estimators=make_estimators(), y=y, seed=cfg.seed,
                 indices=idx, start_index=index)
    checksums.save_checked({"x0_hat": out.x0.detach().cpu(),
                            "pixels": {name: u.pixel.detach().cpu() for name, u in out.uncertainty.items()}}, path)
    return path


def denoise_real(inputs: ProtocolInputs, params: dict):
    """(real x0, denoised x0_hat, pixel maps, start timestep) of every batch, in pixel space; batches already on
    disk (e.g. made by another rank, see benchmark.runner.phases) are read, missing ones are made here."""
    cfg, model = inputs.config, inputs.model
    records = [checksums.load_checked(denoise_batch(inputs.run_dir, cfg, model, inputs.preset, inputs.make_estimators,
                                                    params, start, stop))
               for start, stop in batches(cfg, params)]
    count = int(params["num_images"])
    x0 = inputs.preset.load_data("test", n=count).images.to(model.device)
    x_hat = torch.cat([r["x0_hat"] for r in records]).to(model.device)
    maps = {name: torch.cat([r["pixels"][name] for r in records]).to(model.device) for name in records[0]["pixels"]}
    x_hat, maps = pixel_view(model, x_hat, maps, seed=cfg.seed, indices=torch.arange(OFFSET, OFFSET + count))
    _, t = start_step(model, cfg.sampler, cfg.steps, float(params["noise_fraction"]))
    return x0, x_hat, maps, t


def run(inputs: ProtocolInputs, params: dict) -> list[MetricRow]:
    cfg = inputs.config
    x0, x_hat, maps, t = denoise_real(inputs, params)
    error = (x_hat - x0).abs().cpu()
    n = int(error.shape[0])
    rows = [MetricRow(NAME, "(all)", "rmse", float(error.pow(2).mean().sqrt()), n=n, seed=cfg.seed),
            MetricRow(NAME, "(all)", "start_timestep", float(t), n=n, seed=cfg.seed)]
    curves, per_image = {}, {}
    no_map = {e.name for e in inputs.make_estimators() if not getattr(e, "has_pixel_map", True)}  # realism_oracle
    for name, pixel in maps.items():
        if name.startswith("_") or name in no_map:
            continue
        res = sparsification(error, pixel.cpu(), fractions=int(params["fractions"]), metric="rmse")
        per_image[name] = np.asarray(res.ause_per_image, dtype=np.float64)
        ci = bootstrap_ci(np.mean, per_image[name], n_boot=cfg.bootstrap, seed=cfg.seed)
        rows.append(row_from_ci(NAME, name, "ause", ci, n, cfg.seed))
        rows.append(row_from_ci(NAME, name, "aurg", paired_t_test(np.asarray(res.aurg_per_image, dtype=np.float64)),
                                n, cfg.seed))
        pooled = sparsification_pooled(error, pixel.cpu(), fractions=int(params["fractions"]), metric="rmse")
        rows.append(MetricRow(NAME, name, "ause_pooled", float(pooled.ause), n=n, seed=cfg.seed))
        rows.append(MetricRow(NAME, name, "aurg_pooled", float(pooled.aurg), n=n, seed=cfg.seed))
        curves[name] = (np.asarray(res.removed), np.asarray(res.method).mean(0), np.asarray(res.oracle).mean(0),
                        np.asarray(res.random_curve).mean(0))
    baselines = [e.name for e in inputs.make_estimators() if getattr(e, "comparison_baseline", False)]
    for baseline in (b for b in baselines if b in per_image and n >= 2):
        rows += [row_from_ci(NAME, name, f"ause_delta_vs_{baseline}", paired_t_test(values - per_image[baseline]), n,
                             cfg.seed)
                 for name, values in per_image.items() if name not in baselines]
    inputs.artifacts["sparsification_curves"] = curves
    return rows
