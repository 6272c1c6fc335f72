"""Pixel-space maps of latent uncertainty, and the pixel-space view of a latent model's generation.

Every estimator returns its map in the model's (latent) space; a latent run also writes a pixel-space map by a
named strategy (`[run] pixel_maps`):
- "upsample": the channel-summed latent map, bilinearly resized to the image size (free):
      U_pix[b, :, i, j] = bilinear_{h x w -> H x W}( sum_c U_lat[b, c] )[i, j]
- "decoder_mc": K decoded draws around the latent mean with the estimator's latent map as variance (the BayesDiff
  authors' recipe for Stable Diffusion, karrykkk/BayesDiff issue #1):
      z_k = z0 + sqrt(U_lat) n_k,  n_k ~ N(0, I) seeded per (seed, sample index, k);  U_pix = Var_k[ D(z_k) ]
  (unbiased, K - 1 in the denominator); K decoder calls per sample.

The floor (the estimator instance named FLOOR, "random", which benchmark.config always adds) is a floor in pixel
space under either strategy: its pixel map is drawn in pixel space, never decoded,
      U_pix[b] = |z_b|,  z_b ~ N(0, I) [C,H,W] seeded per (run seed, FLOOR_STREAM, sample index),
i.i.d. over pixels and independent of the decoder, of the latent map and of the image, so its expected AURG is 0
against any pixel error (`floor_pixel_map`). Decoding a random latent map instead measures the decoder: decoder-MC
variance concentrates where D is steep (object outlines), which is where reconstruction errors are, and gave the
random row the best AUSE of all estimators (results/reference/latent_pixel_maps.md). The floor's latent map
stays in extras ("latent_map.random") and its score is unchanged; it costs no decoder calls.
"""
from __future__ import annotations

import time
from typing import Collection, Sequence

import torch
import torch.nn.functional as F

from benchmark.errors import ConfigError
from benchmark.seeding import per_sample_randn

PIXEL_MAP_STRATEGIES = ("upsample", "decoder_mc")
FLOOR = "random"  # the floor's instance name (benchmark.config adds it to every run)
FLOOR_STREAM = "random-floor-pixels"


def check_strategy(strategy: object, samples: object) -> tuple[str, int]:
    """(strategy, K) validated; K >= 2 (a variance needs two draws)."""
    if strategy not in PIXEL_MAP_STRATEGIES:
        raise ConfigError("run.pixel_maps", strategy, f"one of {', '.join(PIXEL_MAP_STRATEGIES)}",
                          'e.g. pixel_maps = "upsample" (free) or "decoder_mc" (K decoder calls per sample)')
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
        raise ConfigError("run.decoder_mc_samples", samples, "an integer >= 2 (decoded draws per sample)")
    return str(strategy), int(samples)


def upsample_map(latent_map: torch.Tensor, pixel_shape: Sequence[int]) -> torch.Tensor:
    """[B,c,h,w] latent map -> [B,C,H,W]: channel sum, bilinear resize (align_corners=False), copied over C."""
    channels, height, width = (int(s) for s in pixel_shape)
    summed = latent_map.sum(1, keepdim=True)
    resized = F.interpolate(summed, size=(height, width), mode="bilinear", align_corners=False)
    return resized.expand(-1, channels, -1, -1).contiguous()


def decoder_mc_map(decode, mean: torch.Tensor, variance: torch.Tensor, samples: int, *, seed: int,
                   indices: torch.Tensor, stream: str = "decoder-mc") -> torch.Tensor:
    """Per-pixel variance over K decoded draws z_k = mean + sqrt(variance) n_k [B,c,h,w] -> [B,C,H,W].

    `decode` maps latents [N,c,h,w] to images; the draws of sample i are seeded by (seed, stream, indices[i]),
    so the map does not depend on the batch. One decoder call on K*B rows (K per sample).
    """
    noise = per_sample_randn(seed, indices, (samples, *mean.shape[1:]), stream=stream, device=mean.device,
                             dtype=mean.dtype).transpose(0, 1)  # [K,B,c,h,w]
    draws = mean.unsqueeze(0) + variance.clamp_min(0.0).sqrt().unsqueeze(0) * noise
    images = decode(draws.reshape(-1, *mean.shape[1:]))
    return images.view(samples, mean.shape[0], *images.shape[1:]).var(0, unbiased=True)


def floor_pixel_map(pixel_shape: Sequence[int], *, seed: int, indices: torch.Tensor,
                    device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The floor's pixel-space map [B,C,H,W]: U_pix[b] = |z_b|, z_b ~ N(0, I) seeded by (seed, FLOOR_STREAM,
    indices[b]); the same for a sample in any batch, and independent of every decoder."""
    return per_sample_randn(seed, indices, tuple(int(s) for s in pixel_shape), stream=FLOOR_STREAM, device=device,
                            dtype=dtype).abs()


def pixel_space_record(model, record: dict, *, seed: int, floors: Collection[str] = (FLOOR,)) -> None:
    """Rewrite a generation shard record of a latent model (one with `decode`) in pixel space, in place:
    x0 <- D(z0); pixels[name] <- the pixel map by `model.pixel_map_strategy`, except the `floors`, whose maps
    are drawn in pixel space (`floor_pixel_map`); the latent x0 and maps move to extras ("latent_x0",
    "latent_map.<name>"); extras["decoder_calls"] [B] and seconds["decoder"] record the decoder's cost. Models
    without `decode` are left unchanged."""
    if not callable(getattr(model, "decode", None)):
        return
    strategy = getattr(model, "pixel_map_strategy", "upsample")
    samples = int(getattr(model, "decoder_mc_samples", 8))
    z0, indices = record["x0"], record["indices"]
    device = model.device
    tick = time.perf_counter()
    images = model.decode(z0.to(device)).cpu()
    pixels = {}
    for name, latent_map in record["pixels"].items():
        if name in floors:
            pixels[name] = floor_pixel_map(images.shape[1:], seed=seed, indices=indices, dtype=images.dtype)
        elif strategy == "decoder_mc":
            pixels[name] = decoder_mc_map(model.decode, z0.to(device), latent_map.to(device), samples, seed=seed,
                                          indices=indices).cpu()
        else:
            pixels[name] = upsample_map(latent_map, images.shape[1:])
    record["extras"].update({f"latent_map.{name}": m for name, m in record["pixels"].items()})
    record["extras"]["latent_x0"] = z0
    decoded = [name for name in pixels if name not in floors]
    calls = 1 + (samples * len(decoded) if strategy == "decoder_mc" else 0)
    record["extras"]["decoder_calls"] = torch.full((z0.shape[0],), float(calls), device="cpu")
    record["seconds"]["decoder"] = time.perf_counter() - tick
    record["x0"], record["pixels"] = images, pixels


def pixel_view(model, x0: torch.Tensor, maps: dict[str, torch.Tensor], *, seed: int, indices: torch.Tensor,
               floors: Collection[str] = (FLOOR,)) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(images, pixel maps) of model-space x0 [B,...] and maps: decoded for a latent model (the `floors` drawn in
    pixel space, as `pixel_space_record`), else unchanged."""
    record = {"x0": x0, "pixels": dict(maps), "indices": indices, "extras": {}, "seconds": {}}
    pixel_space_record(model, record, seed=seed, floors=floors)
    return record["x0"], record["pixels"]
