"""The run's figures (matplotlib, Agg backend); each function writes one PNG and returns its path."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from benchmark.execution.figures import DPI, plt  # noqa: F401 (Agg backend set there)
from benchmark.execution.figures import save_figure as _save

ZOOM_SPAN = 0.25  # a step-wise curve over less than this fraction of the timesteps gets a zoomed panel


def palette(names) -> dict[str, tuple]:
    """One colour per estimator, fixed by the run's estimator order, so a name has the same colour in every figure:
    the 10 colours of tab10, then the 8 of Dark2 (distinct hues; tab20 pairs light and dark shades of one hue,
    which look alike), then again."""
    names = list(dict.fromkeys(names))
    colours = [*plt.get_cmap("tab10").colors, *plt.get_cmap("Dark2").colors]
    return {name: colours[i % len(colours)] for i, name in enumerate(names)}


def _outside_legend(ax) -> None:
    """The legend to the right of the axes, where it covers no curve (the figure is saved with a tight box)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False)


def sparsification_curves(curves: dict, path: Path, colours: dict | None = None) -> Path:
    """curves: name -> (removed [F+1], method [F+1], oracle [F+1], expected curve of random removal [F+1] or one
    level); colours: name -> colour."""
    colours = colours or palette(curves)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    oracle_drawn = False
    for name, (removed, method, oracle, random_level) in curves.items():
        ax.plot(removed, method, label=name, color=colours.get(name))
        if not oracle_drawn:
            ax.plot(removed, oracle, "k--", label="oracle (true error)")
            if np.ndim(random_level):
                ax.plot(removed, random_level, color="gray", lw=0.8, ls=":", label="random removal (expected)")
            else:
                ax.axhline(random_level, color="gray", lw=0.8, ls=":", label="no removal")
            oracle_drawn = True
    ax.set_xlabel("fraction of pixels removed (most uncertain first)")
    ax.set_ylabel("RMSE of remaining pixels")
    ax.set_title("Sparsification (mean over images)")
    _outside_legend(ax)
    return _save(fig, path)


def fid_curves(curves: dict, space: str, path: Path, colours: dict | None = None) -> Path:
    """curves: (space, name) -> [(kept fraction, ΔFID vs the mean of random subsets of that size, low, high)], with
    bands; below the zero line the lowest-score set is closer to the data than random sets of equal size."""
    colours = colours or palette(name for _, name in curves)
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for (sp, name), points in curves.items():
        if sp != space or not points:
            continue
        frac, delta, low, high = (np.array(v) for v in zip(*points))
        ax.plot(frac, delta, marker="o", ms=3, label=name, color=colours.get(name))
        ax.fill_between(frac, low, high, alpha=0.15, color=colours.get(name))
    ax.axhline(0.0, color="gray", lw=0.8, ls=":")
    ax.set_xlabel("kept fraction (lowest scores kept)")
    ax.set_ylabel(f"ΔFID vs random subset of equal size [{space}] (↓ better)")
    ax.set_title("Filtering by score: kept set vs random sets (95% interval)")
    _outside_legend(ax)
    return _save(fig, path)


def zoom_limit(per_step: dict[str, dict[int, float]]) -> float | None:
    """The largest timestep of the zoomed step-wise panel: 1.15 x the latest start (largest t) of the curves that
    span less than ZOOM_SPAN of the largest timestep, when that start lies below ZOOM_SPAN x the largest
    timestep; None (no zoom) otherwise."""
    top = max(max(values) for values in per_step.values())
    starts = [max(values) for values in per_step.values() if max(values) - min(values) < ZOOM_SPAN * top]
    return max(starts) * 1.15 if starts and max(starts) < ZOOM_SPAN * top else None


def stepwise(per_step: dict[str, dict[int, float]], path: Path, colours: dict | None = None) -> Path:
    """per_step: estimator -> {timestep: mean uncertainty}; the x axis runs from T down to 0 (Fig. 3). Where some
    estimator computes only a short stretch of the trajectory (a window of the last steps), a second panel
    zooms into the steps up to that stretch's start so its curve is readable."""
    colours = colours or palette(per_step)
    zoom_to = zoom_limit(per_step)
    panels = [(None, "all steps")] + ([(zoom_to, f"steps t ≤ {zoom_to:.0f} (zoom)")] if zoom_to else [])
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (limit, title) in zip(axes[0], panels):
        for name, values in per_step.items():
            ts = [t for t in sorted(values, reverse=True) if limit is None or t <= limit]
            ax.plot(ts, [values[t] for t in ts], marker=".", label=name, color=colours.get(name))
        if limit is not None:
            ax.set_xlim(limit, -0.02 * limit)
        else:
            ax.invert_xaxis()
        ax.set_yscale("log")
        ax.set_xlabel("diffusion timestep t (denoising runs left to right)")
        ax.set_title(title, fontsize=9)
    axes[0][0].set_ylabel("mean per-pixel uncertainty")
    handles, labels = axes[0][0].get_legend_handles_labels()
    right = 1 - 0.22 / len(panels)  # room for the legend beside the panels, where it covers no curve
    fig.legend(handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(right + 0.01, 0.86), frameon=False)
    fig.suptitle("Step-wise uncertainty (each estimator at the steps it computes)", fontsize=10)
    fig.subplots_adjust(left=0.12 / len(panels), right=right, bottom=0.13, top=0.86, wspace=0.18)
    return _save(fig, path, tight=False)


def _mosaic(tiles: np.ndarray, gap: int = 1) -> np.ndarray:
    """[n, H, W] or [n, H, W, 3] tiles side by side with `gap` NaN (blank) columns between them."""
    n, h, w = tiles.shape[:3]
    out = np.full((h, n * w + (n - 1) * gap, *tiles.shape[3:]), np.nan)
    for i in range(n):
        out[:, i * (w + gap): i * (w + gap) + w] = tiles[i]
    return out


class ExtremesGrid:
    """The figure of `extremes_grid`, laid out once and redrawn for each estimator with its own samples, maps,
    scores and colour scale (laying out a new figure per estimator cost as much as drawing it).

    Rows: the `count` lowest-score samples (score written above each), their pixel maps, the `count` highest,
    their maps; both map rows share one colour scale with its colour bar.
    """

    def __init__(self, count: int, sample_shape: tuple[int, int, int]) -> None:
        channels, height, width = sample_shape
        self.count, self.width = count, width
        self.fig = plt.figure(figsize=(max(4.0, 0.9 * count + 1.8), 5.4))
        axes = self.fig.subplots(4, 1, squeeze=False)[:, 0]
        self.fig.subplots_adjust(left=0.09, right=0.86, top=0.9, bottom=0.02, hspace=0.3)
        blank_samples = np.zeros((height, count * (width + 1) - 1, *((channels,) if channels > 1 else ())))
        blank_maps = np.zeros((height, count * (width + 1) - 1))
        self.samples, self.maps, self.scores = [], [], []
        for row, label in enumerate(("lowest scores", "highest scores")):
            sample_ax, map_ax = axes[2 * row], axes[2 * row + 1]
            self.samples.append(sample_ax.imshow(blank_samples, cmap="gray", vmin=0, vmax=1, interpolation="nearest"))
            self.maps.append(map_ax.imshow(blank_maps, cmap="magma", vmin=0, vmax=1, interpolation="nearest"))
            self.scores.append([sample_ax.text(col * (width + 1) + width / 2, -0.8, "", ha="center", va="bottom",
                                               fontsize=7) for col in range(count)])
            for ax, text in ((sample_ax, f"{label}\n(score above)"), (map_ax, "pixel map")):
                ax.set_axis_off()
                ax.text(-0.01, 0.5, text, transform=ax.transAxes, rotation=90, ha="right", va="center", fontsize=8)
        bar = self.fig.colorbar(self.maps[-1], cax=self.fig.add_axes((0.88, 0.05, 0.02, 0.8)))
        bar.set_label("per-pixel uncertainty (channel mean)", fontsize=8)
        bar.ax.tick_params(labelsize=7)
        self.title = self.fig.suptitle("", fontsize=9)

    def write(self, x0: torch.Tensor, pixel: torch.Tensor, scores: torch.Tensor, name: str, path: Path) -> Path:
        """Draw one estimator's grid (x0 [N,C,H,W] in [-1, 1], pixel [N,C,H,W], scores [N]) into `path`."""
        order = torch.argsort(scores)
        picks = (order[:self.count], order.flip(0)[:self.count])  # lowest, highest
        maps = [pixel[idx].float().mean(1).numpy() for idx in picks]  # [count, H, W]
        vmin = min(float(np.nanmin(m)) for m in maps)
        vmax = max(float(np.nanmax(m)) for m in maps)
        for row, idx in enumerate(picks):
            imgs = ((x0[idx].float().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).numpy()
            self.samples[row].set_data(_mosaic(imgs[..., 0] if imgs.shape[-1] == 1 else imgs))
            self.maps[row].set_data(_mosaic(maps[row]))
            self.maps[row].set_clim(vmin, vmax)
            for text, i in zip(self.scores[row], idx.tolist()):
                text.set_text(f"{float(scores[i]):.3g}")
        self.title.set_text(f"{name}: lowest- and highest-score samples and their pixel maps")
        return _save(self.fig, path, tight=False, close=False)

    def close(self) -> None:
        plt.close(self.fig)


def extremes_count(num_samples: int, count: int = 8) -> int:
    """Samples per row of an extremes grid: `count`, at most half the samples, at least 1."""
    return max(1, min(count, num_samples // 2))


def extremes_grid(x0: torch.Tensor, pixel: torch.Tensor, scores: torch.Tensor, name: str, path: Path,
                  count: int = 8) -> Path:
    """The `count` lowest- and highest-score samples with their pixel maps (one `ExtremesGrid`; for many
    estimators of one run make the grid once and call its `write` for each)."""
    grid = ExtremesGrid(extremes_count(scores.numel(), count), tuple(x0.shape[1:]))
    try:
        return grid.write(x0, pixel, scores, name, path)
    finally:
        grid.close()
