"""The run's figures (matplotlib, Agg backend); each function writes one PNG and returns its path."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
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
    """curves: (space, name) -> [(fraction, fid, low, high)], drawn with CI bands."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for (sp, name), points in curves.items():
        if sp != space:
            continue
        frac, fid, low, high = (np.array(v) for v in zip(*points))
        ax.plot(frac, fid, marker="o", ms=3, label=name)
        ax.fill_between(frac, low, high, alpha=0.15)
    ax.set_xlabel("kept fraction (lowest scores kept)")
    ax.set_ylabel(f"FID [{space}]")
    ax.set_title("FID vs kept fraction (95% bootstrap CI)")
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
    ax.set_title("Step-wise uncertainty")
    ax.legend(fontsize=8)
    return _save(fig, path)


def extremes_grid(x0: torch.Tensor, pixel: torch.Tensor, scores: torch.Tensor, name: str, path: Path,
                  count: int = 8) -> Path:
    """Lowest- and highest-score samples (top two rows) with their pixel maps (bottom two rows)."""
    order = torch.argsort(scores)
    count = min(count, scores.numel() // 2)
    picks = {"lowest score": order[:count], "highest score": order.flip(0)[:count]}
    fig, axes = plt.subplots(4, count, figsize=(1.3 * count, 5.6), squeeze=False)
    for row, (label, idx) in enumerate(picks.items()):
        for col, i in enumerate(idx.tolist()):
            img = ((x0[i].clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy()
            axes[2 * row][col].imshow(img.squeeze(-1) if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
            axes[2 * row + 1][col].imshow(pixel[i].mean(0).numpy(), cmap="magma")
            axes[2 * row][col].set_title(f"{scores[i]:.3g}", fontsize=7)
        axes[2 * row][0].set_ylabel(label, fontsize=8)
        axes[2 * row + 1][0].set_ylabel("map", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{name}: samples and pixel-wise uncertainty", fontsize=9)
    return _save(fig, path)
