"""`benchmark.load(run_dir)`: a finished run folder as a `Run` (a `run.seeds` folder as `Replicates`), checked by the
rule `validate` applies (benchmark.publish.validity), so what a notebook reads is what the leaderboard accepts.

A `Run` reads its files on demand: `.metrics` (metrics.csv, typed), `.verdicts` (the family of tests against the
floor, as the report took it), `.headline` (the report's headline table), `.plot(name)` (a report figure),
`.scores(estimator)` / `.maps(estimator, indices)` / `.images(indices)` (the generation shards).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.api import frames, samples
from benchmark.errors import ConfigError
from benchmark.publish.replicates_validity import check_replicates, is_replicates_folder
from benchmark.publish.validity import RunValidity, check_run
from benchmark.report.metrics_file import read_table
from benchmark.report.seeds_document import POOLED_CSV, REPLICATES, SEEDS_CSV

PathLike = str | os.PathLike


@dataclass(eq=False)
class Run:
    """One finished, validated run folder (`load`, or what `run` returns)."""

    path: Path
    manifest: dict[str, Any] = field(repr=False)
    _frame: pd.DataFrame = field(repr=False)

    @property
    def config(self) -> dict[str, Any]:
        """The run's config as the TOML's structure (config.json; `benchmark.run(run.config)` runs it again)."""
        return self.manifest["config"]

    @property
    def name(self) -> str:
        return str(self.config.get("run", {}).get("name", self.path.name))

    @cached_property
    def metrics(self) -> pd.DataFrame:
        """metrics.csv: one row per (protocol, estimator, metric), typed (frames.typed_metrics)."""
        return frames.typed_metrics(self._frame)

    @cached_property
    def verdicts(self) -> pd.DataFrame:
        """The family of tests against the floor: raw and adjusted p, outcome, detectable effect (frames)."""
        return frames.verdicts_frame(self._frame, self.manifest)

    @cached_property
    def headline(self) -> pd.DataFrame:
        """The report's headline table (frames.headline_frame)."""
        return frames.headline_frame(self._frame, self.manifest)

    @property
    def plots(self) -> list[str]:
        """The names of the report's figures (plots/<name>.png), for `plot(name)`."""
        folder = self.path / "plots"
        return sorted(p.stem for p in folder.glob("*.png")) if folder.is_dir() else []

    def plot(self, name: str):
        """The report's figure `name` (see `plots`) as a matplotlib Figure (the PNG the run wrote, shown 1:1)."""
        from matplotlib.figure import Figure
        from matplotlib.image import imread

        if name not in self.plots:
            raise ConfigError("plot", name, f"one of the run's figures ({', '.join(self.plots) or 'none'})",
                              "give a name from run.plots")
        image = imread(self.path / "plots" / f"{name}.png")
        dpi = 100
        figure = Figure(figsize=(image.shape[1] / dpi, image.shape[0] / dpi), dpi=dpi)
        axes = figure.add_axes((0, 0, 1, 1))
        axes.imshow(image)
        axes.set_axis_off()
        axes.set_title(name, fontsize=8, loc="left", y=1.0, pad=-10)
        return figure

    def scores(self, estimator: str) -> pd.Series:
        """The estimator's score of every sample (index: sample index), from the generation shards."""
        return samples.scores(self.path, self.manifest, estimator)

    def maps(self, estimator: str, indices=None):
        """The estimator's pixel maps [len(indices), C, H, W] (numpy) of the samples `indices` (all when None)."""
        return samples.maps(self.path, self.manifest, estimator, indices)

    def images(self, indices=None):
        """The generated samples [len(indices), C, H, W] (numpy, data range [-1, 1])."""
        return samples.images(self.path, self.manifest, indices)

    @property
    def report(self) -> str:
        """report.md as text."""
        return (self.path / "report.md").read_text(encoding="utf-8")

    def __repr__(self) -> str:
        estimators = ", ".join(self.manifest.get("estimators") or {})
        return f"Run({self.name!r}: {len(self._frame)} metric rows; estimators {estimators}; path {str(self.path)!r})"


@dataclass(eq=False)
class Replicates:
    """A finished replicate folder (`run.seeds`): one `Run` per seed and the pooled tables."""

    path: Path
    record: dict[str, Any] = field(repr=False)
    runs: list[Run] = field(repr=False)

    @property
    def config(self) -> dict[str, Any]:
        return self.record["config"]

    @property
    def seeds(self) -> list[int]:
        return [int(s) for s in self.record["seeds"]]

    @cached_property
    def spread(self) -> pd.DataFrame:
        """seeds.csv: per (protocol, estimator, metric) the mean, sd, min and max over the seeds, n_seeds."""
        return read_table(self.path / SEEDS_CSV, ["protocol", "estimator", "metric"], "RUN_DIR",
                          fix="re-run the replicates")

    @cached_property
    def verdicts(self) -> pd.DataFrame:
        """pooled_verdicts.csv: per test of the family each seed's p and verdict, the combined test, its adjusted p,
        the pooled verdict and whether it is stable across seeds."""
        return read_table(self.path / POOLED_CSV, ["protocol", "estimator", "metric"], "RUN_DIR",
                          fix="re-run the replicates")

    @cached_property
    def metrics(self) -> pd.DataFrame:
        """Every seed's metrics.csv in one table (typed), its seed in the `seed` column."""
        return pd.concat([r.metrics for r in self.runs], ignore_index=True)

    def __repr__(self) -> str:
        return f"Replicates(seeds {self.seeds}; path {str(self.path)!r})"


def _run(validity: RunValidity) -> Run:
    return Run(Path(validity.run_dir), validity.manifest, validity.frame)


def load(run_dir: PathLike, *, check_weights: bool = True) -> Run | Replicates:
    """The finished run folder `run_dir` (a replicate folder: `Replicates`), refused (RunValidationError, a
    UQBenchError) when `validate` would refuse it; `check_weights=False` skips reloading the model (as
    `validate --skip-weights`)."""
    folder = Path(run_dir)
    if is_replicates_folder(folder):
        check = check_replicates(folder, check_weights=check_weights)
        check.raise_if_invalid("loaded")
        record = json.loads((folder / REPLICATES).read_text())
        return Replicates(folder, record, [_run(check.seeds[s]) for s in record["seeds"]])
    check = check_run(folder, check_weights=check_weights)
    check.raise_if_invalid("loaded")
    return _run(check)
