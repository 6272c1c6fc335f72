"""The report's figures: one extremes-grid layout reused for every estimator draws what a fresh one draws; the
step-wise figure zooms into short (windowed) curves."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from benchmark.report import plots


def _pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


@pytest.mark.parametrize("channels", [1, 3])
def test_a_reused_extremes_grid_draws_exactly_what_a_fresh_one_draws(tmp_path, channels):
    """Drawing estimator `a` first must leave nothing behind (images, colour scale, scores, title) in the grid
    that then draws `b`; and each estimator's grid differs from the other's."""
    gen = torch.Generator().manual_seed(0)
    x0 = torch.rand(10, channels, 6, 6, generator=gen) * 2 - 1
    maps = {"a": torch.rand(10, channels, 6, 6, generator=gen) * 50, "b": torch.rand(10, channels, 6, 6, generator=gen)}
    scores = {"a": torch.randn(10, generator=gen) * 1e3, "b": torch.randn(10, generator=gen)}
    grid = plots.ExtremesGrid(plots.extremes_count(10), (channels, 6, 6))
    try:
        for name in ("a", "b"):
            grid.write(x0, maps[name], scores[name], name, tmp_path / f"reused_{name}.png")
            ranked = sorted(range(10), key=lambda i: float(scores[name][i]))
            shown = ranked[:5] + ranked[::-1][:5]  # lowest five ascending, highest five descending
            channel_mean = maps[name][shown].mean(1)
            assert grid.maps[0].get_clim() == grid.maps[1].get_clim() == pytest.approx(
                (float(channel_mean.min()), float(channel_mean.max())), rel=1e-6)
            labels = [text.get_text() for row in grid.scores for text in row]
            assert labels == [f"{float(scores[name][i]):.3g}" for i in shown]
    finally:
        grid.close()
    for name in ("a", "b"):
        plots.extremes_grid(x0, maps[name], scores[name], name, tmp_path / f"fresh_{name}.png")
        np.testing.assert_array_equal(_pixels(tmp_path / f"reused_{name}.png"), _pixels(tmp_path / f"fresh_{name}.png"))
    assert not np.array_equal(_pixels(tmp_path / "fresh_a.png"), _pixels(tmp_path / "fresh_b.png"))
    assert plots.extremes_count(10) == 5 and plots.extremes_count(100) == 8 and plots.extremes_count(1) == 1


def test_stepwise_zooms_into_windowed_curves_only():
    full = {t: 1.0 for t in range(980, -1, -20)}  # every step of a 50-step run (bayesdiff)
    window = {99: 1.0, 79: 1.0, 59: 1.0, 39: 1.0}  # steps 45..48 (the paper's window)
    assert plots.zoom_limit({"bayesdiff": full, "sensitivity": window}) == pytest.approx(99 * 1.15)
    assert plots.zoom_limit({"bayesdiff": full}) is None
    assert plots.zoom_limit({"sensitivity": window}) is None  # nothing longer to zoom from
    assert plots.zoom_limit({"bayesdiff": full, "late": {400: 1.0, 380: 1.0}}) is None  # short, but not near t = 0


def test_stepwise_figure_gets_its_zoom_panel(tmp_path):
    full = {t: 1e-3 * (1 + t) for t in range(980, -1, -20)}
    window = {99: 0.5, 79: 0.6, 59: 0.7, 39: 0.8}
    one = _pixels(plots.stepwise({"bayesdiff": full}, tmp_path / "one.png"))
    two = _pixels(plots.stepwise({"bayesdiff": full, "sensitivity": window}, tmp_path / "two.png"))
    assert one.shape[0] == two.shape[0] and two.shape[1] == 2 * one.shape[1]  # a second panel of equal size
