"""Latent diffusion (Rombach et al. 2022): a denoiser on latents plus a diffusers `AutoencoderKL`.

The sampler and every estimator work on latents z (`sample_shape` = the latent shape [c, h, w]); images are
    x = D(z / scaling_factor)    (decode),        z = scaling_factor * E[q(z | x)]    (encode)
with the autoencoder's `scaling_factor` (Stable Diffusion's 0.18215). `decode` serves features, plots and every
pixel-space protocol; its calls are counted (`decoder_counter`, images per caller) and timed (`decoder_seconds`)
apart from the denoiser's NFEs. Everything else (eps, last layer, features, guidance, dropout) is the denoiser's.
"""
from __future__ import annotations

import contextlib
import time
from collections import Counter
from typing import Iterator

import torch
from torch import nn

from benchmark.models.base import DiffusionModel


class LatentDiffusionModel(DiffusionModel):
    """A latent-space DiffusionModel: `denoiser` (a DiffusionModel on latents) + `vae` (AutoencoderKL).

    Args:
        denoiser: the noise predictor on latents (DiffusersUNet, DiTDenoiser, TextConditionedDenoiser, ...).
        vae: a diffusers AutoencoderKL; its config's `scaling_factor` scales latents.
        decode_batch: images per decoder call (bounds memory for K decoder-MC draws).
    """

    def __init__(self, denoiser: DiffusionModel, vae: nn.Module, *, decode_batch: int = 256) -> None:
        super().__init__(alphas_cumprod=denoiser.alphas_cumprod, sample_shape=denoiser.sample_shape,
                         num_classes=denoiser.num_classes)
        self.denoiser = denoiser
        self.vae = vae.eval()
        self.scaling_factor = float(getattr(vae.config, "scaling_factor", 1.0) or 1.0)
        factor = 2 ** (len(vae.config.block_out_channels) - 1)
        c, h, w = self.sample_shape
        self.pixel_shape = (int(vae.config.out_channels), h * factor, w * factor)
        self.decode_batch = int(decode_batch)
        self.decoder_counter: Counter[str] = Counter()
        self.decoder_seconds: Counter[str] = Counter()
        self.pixel_map_strategy, self.decoder_mc_samples = "upsample", 8  # benchmark.models.pixel_maps
        self.source: str | None = None

    # ----------------------------------------------------------------- the autoencoder
    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images [N,C,H,W] in [-1, 1] (clamped) of latents z [N,c,h,w]; counted and timed per caller."""
        tick = time.perf_counter()
        dtype = next(self.vae.parameters()).dtype
        parts = [self.vae.decode(chunk.to(dtype) / self.scaling_factor).sample.clamp(-1.0, 1.0)
                 for chunk in z.split(self.decode_batch)]
        self.decoder_counter[self._caller] += int(z.shape[0])
        self.decoder_seconds[self._caller] += time.perf_counter() - tick
        return torch.cat(parts).to(z.dtype)

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Scaled posterior means scaling_factor * E[z | x] [N,c,h,w] of images [N,C,H,W] in [-1, 1]."""
        dtype = next(self.vae.parameters()).dtype
        parts = [self.vae.encode(chunk.to(dtype)).latent_dist.mean * self.scaling_factor
                 for chunk in images.split(self.decode_batch)]
        return torch.cat(parts).to(images.dtype)

    def reset_decoder_counts(self) -> None:
        self.decoder_counter.clear()
        self.decoder_seconds.clear()

    # ----------------------------------------------------------------- the denoiser's capabilities
    @property
    def rows_per_sample(self) -> int:
        return self.denoiser.rows_per_sample

    @property
    def last_layer(self) -> nn.Module | None:
        return self.denoiser.last_layer

    @property
    def shares_features(self) -> bool:
        return self.denoiser.shares_features

    def predict_eps(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.denoiser.predict_eps(x, t, y)

    def predict_features(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.denoiser.predict_features(x, t, y)

    def predict_eps_and_features(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None
                                 ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.denoiser.predict_eps_and_features(x, t, y)

    def _check_labels(self, y: torch.Tensor | None, batch: int) -> None:
        self.denoiser._check_labels(y, batch)

    def dropout_modules(self) -> list[nn.Module]:
        return self.denoiser.dropout_modules()  # never the autoencoder's

    # ----------------------------------------------------------------- conditioning and guidance (if any)
    def __getattr__(self, name: str):
        """Conditioning and guidance attributes (guidance_scale, set_prompts, combine_branch_variance, unguided,
        last_layer_output_to_eps, cycled_conditions, prompts, ...) are the denoiser's."""
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name.startswith("__") or name == "denoiser":
                raise
            return getattr(super().__getattr__("denoiser"), name)

    def set_prompts(self, prompts) -> None:
        self.denoiser.set_prompts(prompts)
        self.num_classes = self.denoiser.num_classes

    @contextlib.contextmanager
    def unguided(self) -> Iterator[None]:
        inner = getattr(self.denoiser, "unguided", None)
        with (inner() if inner is not None else contextlib.nullcontext()):
            yield
