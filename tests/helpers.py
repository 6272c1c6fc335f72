"""Builders shared by test modules: tiny, randomly initialised networks and analytic models.

Import them as ``from tests.helpers import tiny_unet``. Nothing here downloads anything.
"""
from __future__ import annotations

import torch


def tiny_unet(num_classes: int | None = None, dropout: float = 0.1, seed: int = 0):
    """A diffusers UNet2DModel for 1x8x8 images (about 42k parameters), in eval mode.

    block_out_channels (8, 16), one layer per block, GroupNorm with 4 groups, plain DownBlock2D/UpBlock2D
    (no attention); `num_classes` adds a class-embedding table (class-conditional model); `dropout` is the
    ResNet-block dropout probability. The weights are drawn from torch's default init under `seed`.
    """
    from diffusers import UNet2DModel

    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        unet = UNet2DModel(
            sample_size=8,
            in_channels=1,
            out_channels=1,
            block_out_channels=(8, 16),
            layers_per_block=1,
            norm_num_groups=4,
            down_block_types=("DownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "UpBlock2D"),
            dropout=dropout,
            num_class_embeds=num_classes,
        )
    finally:
        torch.random.set_rng_state(state)
    return unet.eval()


def tiny_gmm_means(num_components: int = 3, shape: tuple[int, int, int] = (1, 4, 4), seed: int = 0) -> torch.Tensor:
    """Well separated component means [K, C, H, W] in [-0.8, 0.8] (float64), reproducible from `seed`."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand((num_components, *shape), generator=gen, dtype=torch.float64) * 1.6 - 0.8)
