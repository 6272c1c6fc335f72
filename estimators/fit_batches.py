"""The noisy training inputs a Laplace fit sees (last-layer and subset Laplace share them).

Image n (0-based, in loader order) of a fit gets a timestep and a noise draw seeded by (seed, n) alone:
    t_n ~ U{0..T-1},  eps_n ~ N(0, I),  x_t,n = sqrt(ab_{t_n}) x0_n + sqrt(1 - ab_{t_n}) eps_n      (DDPM Eq. 4)
so a fit is the same whatever the batch size of the loader.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Iterable, Iterator

import torch

from benchmark.errors import ConfigError
from benchmark.seeding import per_sample_randint, per_sample_randn


@dataclass
class NoisyBatch:
    """One batch of fit inputs: x_t [B,C,H,W], timesteps t [B], the true noise eps [B,C,H,W], labels [B] or None."""

    x_t: torch.Tensor
    t: torch.Tensor
    eps: torch.Tensor
    labels: torch.Tensor | None


def split_fit_batch(model, batch: object, value_range: tuple[float, float] | None = (-1.0, 1.0)
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(images [B,C,H,W], labels [B] or None) of a loader batch (images, or (images, labels) pairs), checked against
    the model's sample shape and `value_range` (None: no range check); labels only for a class-conditional model."""
    images, labels = (batch[0], batch[1]) if isinstance(batch, (tuple, list)) else (batch, None)
    if not isinstance(images, torch.Tensor) or tuple(images.shape[1:]) != tuple(model.sample_shape):
        raise ConfigError("loader batch", getattr(images, "shape", type(images).__name__),
                          f"image batches [B, {', '.join(map(str, model.sample_shape))}] or (images, labels)")
    low, high = float(images.min()), float(images.max())
    if value_range is not None and (low < value_range[0] - 1e-3 or high > value_range[1] + 1e-3):
        raise ConfigError("loader images", f"range [{low:.3g}, {high:.3g}]",
                          f"pixel values in [{value_range[0]:g}, {value_range[1]:g}]",
                          "rescale the images, e.g. x / 127.5 - 1 for uint8 or 2 x - 1 for [0, 1]")
    if getattr(model, "num_classes", None) is None or getattr(model, "cycled_conditions", False):
        return images, None  # text-conditioned models (benchmark.models.conditioning) fit on the empty prompt
    if labels is None:
        raise ConfigError("loader", "image batches without labels",
                          f"{type(model).__name__} is class-conditional", "yield (images, labels) pairs")
    return images, labels


def validate_num_images(num_images: int | None) -> None:
    if num_images is not None and (isinstance(num_images, bool) or not isinstance(num_images, int) or num_images < 1):
        raise ConfigError("num_images", num_images, "a positive integer or None (the whole loader)")


def noisy_batches(model, loader: Iterable, num_images: int | None, *, seed: int, stream: str = "laplace-fit",
                  value_range: tuple[float, float] | None = (-1.0, 1.0), device: torch.device | None = None,
                  dtype: torch.dtype = torch.float32, progress: bool = False, desc: str = "Laplace fit"
                  ) -> Iterator[NoisyBatch]:
    """The fit inputs of the first `num_images` images of `loader` (all when None), in loader order (module doc);
    t and eps come from the streams f"{stream}-t" and f"{stream}-eps". Warns when the loader holds fewer images and
    refuses an empty one."""
    from tqdm.auto import tqdm

    validate_num_images(num_images)
    seen = 0
    with tqdm(total=num_images, desc=desc, unit="img", disable=not progress) as bar:
        for batch in loader:
            x0, labels = split_fit_batch(model, batch, value_range)
            if num_images is not None:
                x0, labels = x0[: num_images - seen], None if labels is None else labels[: num_images - seen]
            index = torch.arange(seen, seen + x0.shape[0], device="cpu")  # CPU: seeds derive from it
            t = per_sample_randint(seed, index, model.num_train_timesteps, stream=f"{stream}-t").to(device)
            eps = per_sample_randn(seed, index, x0.shape[1:], stream=f"{stream}-eps", device=device, dtype=dtype)
            ab = model.alphas_cumprod.to(device)[t].to(dtype).view(-1, 1, 1, 1)
            x_t = ab.sqrt() * x0.to(device, dtype) + (1 - ab).sqrt() * eps
            yield NoisyBatch(x_t, t, eps, None if labels is None else labels.to(device))
            seen += x0.shape[0]
            bar.update(x0.shape[0])
            if num_images is not None and seen >= num_images:
                break
    if seen == 0:
        raise ConfigError("loader", "empty", "must yield at least one image batch")
    if num_images is not None and seen < num_images:
        warnings.warn(f"{desc}: the loader yielded {seen} images, fewer than num_images = {num_images}; the posterior "
                      f"is fitted on {seen}.", stacklevel=3)


__all__ = ["NoisyBatch", "noisy_batches", "split_fit_batch", "validate_num_images"]
