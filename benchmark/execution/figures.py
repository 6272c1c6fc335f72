"""Writing a matplotlib figure (Agg backend) as a PNG, atomically: shared by the report's and the protocols' figures."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from benchmark.execution.io import atomic_write  # noqa: E402

DPI = 110


def save_figure(fig, path: Path, tight: bool = True, close: bool = True) -> Path:
    """Write the figure atomically (0644 under the usual umask, see execution.io) and close it unless `close` is
    False (a figure redrawn for several files). `tight=False` keeps the figure's own layout (one draw instead of two:
    faster for image grids)."""
    box = "tight" if tight else None
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI, bbox_inches=box))
    if close:
        plt.close(fig)
    return path
