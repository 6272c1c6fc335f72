"""The run's figures (matplotlib, Agg backend); each function writes one PNG and returns its path."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmark.runner.io import atomic_write  # noqa: E402

DPI = 110


def _save(fig, path: Path, tight: bool = True) -> Path:
    """Write the figure atomically (0644 under the usual umask, see runner.io) and close it. `tight=False`
    keeps the figure's own layout (one draw instead of two: faster for image grids)."""
    box = "tight" if tight else None
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI, bbox_inches=box))
    plt.close(fig)
    return path


def sparsification_curves(curves: dict, path: Path) -> Path:
    """curves: name -> (removed [F+1], method [F+1], oracle [F+1], random level)."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    oracle_drawn = False
    for name, (removed, method, oracle, random_level) in curves.items():
        ax.plot(removed, method, label=name)
        if not oracle_drawn:
            ax.plot(removed, oracle, "k--", label="oracle (true error)")
            ax.axhline(random_level, color="gray", lw=0.8, ls=":", label="no removal")
            oracle_drawn = True
    ax.set_xlabel("fraction of pixels removed (most uncertain first)")
    ax.set_ylabel("RMSE of remaining pixels")
    ax.set_title("Sparsification (mean over images)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def fid_curves(curves: dict, space: str, path: Path) -> Path:
    """curves: (space, name) -> [(kept fraction, ΔFID vs a random subset of that size, low, high)], with CI bands;
    below the zero line the lowest-score set is closer to the data than a random set of equal size."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for (sp, name), points in curves.items():
        if sp != space or not points:
            continue
        frac, delta, low, high = (np.array(v) for v in zip(*points))
        ax.plot(frac, delta, marker="o", ms=3, label=name)
        ax.fill_between(frac, low, high, alpha=0.15)
    ax.axhline(0.0, color="gray", lw=0.8, ls=":")
    ax.set_xlabel("kept fraction (lowest scores kept)")
    ax.set_ylabel(f"ΔFID vs random subset of equal size [{space}] (↓ better)")
    ax.set_title("Filtering by score: kept set vs random set (95% CI)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    return _save(fig, path)


def stepwise(per_step: dict[str, dict[int, float]], path: Path) -> Path:
    """per_step: estimator -> {timestep: mean uncertainty}; the x axis runs from T down to 0 (Fig. 3)."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for name, values in per_step.items():
        ts = sorted(values, reverse=True)
        ax.plot(ts, [values[t] for t in ts], marker=".", label=name)
    ax.invert_xaxis()
    ax.set_yscale("log")
    ax.set_xlabel("diffusion timestep t (denoising runs left to right)")
    ax.set_ylabel("mean per-pixel uncertainty")
    ax.set_title("Step-wise uncertainty (every estimator with per-step maps)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def _mosaic(tiles: np.ndarray, gap: int = 1) -> np.ndarray:
    """[n, H, W] or [n, H, W, 3] tiles side by side with `gap` NaN (blank) columns between them."""
    n, h, w = tiles.shape[:3]
    out = np.full((h, n * w + (n - 1) * gap, *tiles.shape[3:]), np.nan)
    for i in range(n):
        out[:, i * (w + gap): i * (w + gap) + w] = tiles[i]
    return out


def extremes_grid(x0: torch.Tensor, pixel: torch.Tensor, scores: torch.Tensor, name: str, path: Path,
                  count: int = 8) -> Path:
    """The `count` lowest- and highest-score samples with their pixel maps: one mosaic per row (fast), the
    score written over each sample, the maps of both rows on one colour scale with its colour bar."""
    order = torch.argsort(scores)
    count = max(1, min(count, scores.numel() // 2))
    picks = {"lowest scores": order[:count], "highest scores": order.flip(0)[:count]}
    maps = {label: pixel[idx].float().mean(1).numpy() for label, idx in picks.items()}  # [count, H, W]
    vmax = max(float(np.nanmax(m)) for m in maps.values())
    vmin = min(float(np.nanmin(m)) for m in maps.values())
    width = x0.shape[-1]
    fig, axes = plt.subplots(4, 1, figsize=(max(4.0, 0.9 * count + 1.8), 5.4), squeeze=False)
    fig.subplots_adjust(left=0.09, right=0.86, top=0.9, bottom=0.02, hspace=0.3)
    image = None
    for row, (label, idx) in enumerate(picks.items()):
        imgs = ((x0[idx].float().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).numpy()
        imgs = imgs[..., 0] if imgs.shape[-1] == 1 else imgs
        sample_ax, map_ax = axes[2 * row][0], axes[2 * row + 1][0]
        sample_ax.imshow(_mosaic(imgs), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        for col, i in enumerate(idx.tolist()):
            sample_ax.text(col * (width + 1) + width / 2, -0.8, f"{float(scores[i]):.3g}", ha="center",
                           va="bottom", fontsize=7)
        image = map_ax.imshow(_mosaic(maps[label]), cmap="magma", vmin=vmin, vmax=vmax, interpolation="nearest")
        for ax, text in ((sample_ax, f"{label}\n(score above)"), (map_ax, "pixel map")):
            ax.set_axis_off()
            ax.text(-0.01, 0.5, text, transform=ax.transAxes, rotation=90, ha="right", va="center", fontsize=8)
    bar = fig.colorbar(image, cax=fig.add_axes((0.88, 0.05, 0.02, 0.8)))
    bar.set_label("per-pixel uncertainty (channel mean)", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    fig.suptitle(f"{name}: lowest- and highest-score samples and their pixel maps", fontsize=9)
    return _save(fig, path, tight=False)
