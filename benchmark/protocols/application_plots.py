"""Figures of the protocols that use the uncertainty (one PNG per function, written atomically)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from benchmark.execution.figures import plt
from benchmark.execution.figures import save_figure as _save


def _image(ax, img: torch.Tensor) -> None:
    """Show one image [C,H,W] in [-1, 1] (gray for one channel, the first three channels otherwise)."""
    arr = ((img.detach().cpu().float().clamp(-1, 1) + 1) / 2).numpy()
    if arr.shape[0] == 1:
        ax.imshow(arr[0], cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(np.moveaxis(arr[:3], 0, -1))


def _heat(ax, values: torch.Tensor) -> None:
    """Show a map [C,H,W] (channel mean) as a heat map."""
    ax.imshow(values.detach().cpu().float().mean(0).numpy(), cmap="magma")


def augmentation_grid(base: torch.Tensor, variance: torch.Tensor, families: dict[str, torch.Tensor], path: Path,
                      max_bases: int = 4, max_variants: int = 6) -> Path:
    """One block per base sample: row 1 = the base image, its variance map at the cut and the variants of the
    first family; the next rows the variants of the other families (same draws z_v in every column).

    base [n,C,H,W], variance [n,C',H',W'] (latent space for latent models), families: name -> [n,V,C,H,W]."""
    bases = min(max_bases, base.shape[0])
    cols = 2 + min(max_variants, next(iter(families.values())).shape[1])
    rows = bases * len(families)
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for b in range(bases):
        for f, (name, variants) in enumerate(families.items()):
            r = b * len(families) + f
            if f == 0:
                _image(axes[r, 0], base[b])
                _heat(axes[r, 1], variance[b])
                axes[r, 0].set_title("base", fontsize=7)
                axes[r, 1].set_title("Var[x_cut]", fontsize=7)
            axes[r, 2].set_title(name, fontsize=6, loc="left")
            for v in range(cols - 2):
                _image(axes[r, 2 + v], variants[b, v])
    fig.suptitle("augmentation: variants per family (columns share the draw z_v)", fontsize=8)
    return _save(fig, path)
