"""A run's numbers beside a paper's published values: whether the order of the estimators and the signs agree.

A published-values file (TOML, `published/<config stem>.toml` beside the config, e.g.
configs/published/paper_cifar10.toml for configs/paper_cifar10.toml) lists, per metric of
metrics.csv, the paper's value for each estimator instance:

    [[metric]]
    table = "Table 1: filtered FID"; protocol = "filtered_fid"; metric = "fid_kept[inception]"; direction = "lower"
    values = { random = 13.494, sensitivity = 13.416, mc_dropout = 13.435 }

Absolute values are rarely comparable (another network, sample size, pooled pixels of mixed scales), so the
comparison is of what should carry over: the *order* of the estimators by value, and the *signs*: each estimator's
difference from `random` where the paper lists it, else the sign of the value itself.
"""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from benchmark.errors import ConfigError

FLOOR = "random"
FOLDER = "published"


@dataclass(frozen=True)
class PublishedMetric:
    table: str
    protocol: str
    metric: str
    direction: str  # "lower" | "higher"
    values: dict[str, float]


@dataclass(frozen=True)
class Comparison:
    """One metric: the paper's and the run's values of the estimators both have, and what agrees."""

    published: PublishedMetric
    ours: dict[str, float]
    order_agrees: bool
    signs_agree: int  # how many of the compared signs agree
    signs_compared: int

    def describe(self) -> str:
        def ordered(values: dict[str, float]) -> str:
            higher = self.published.direction == "higher"
            names = sorted(values, key=values.get, reverse=higher)
            return (" > " if higher else " < ").join(f"{n} {values[n]:.4g}" for n in names)

        paper = {k: v for k, v in self.published.values.items() if k in self.ours}
        return (f"- {self.published.table} (`{self.published.metric}`): paper {ordered(paper)}; this run "
                f"{ordered(self.ours)}; order {'agrees' if self.order_agrees else 'differs'}; signs agree for "
                f"{self.signs_agree} of {self.signs_compared}.")


def published_file(config_path: Path) -> Path | None:
    """The published-values file of a config (`published/<stem>.toml` beside it), or None."""
    candidate = Path(config_path).parent / FOLDER / f"{Path(config_path).stem}.toml"
    return candidate if candidate.is_file() else None


def load_published(path: Path) -> list[PublishedMetric]:
    """The [[metric]] tables of a published-values file (exit 2 naming the entry on a malformed one)."""
    data = tomllib.loads(Path(path).read_text())
    out = []
    for i, entry in enumerate(data.get("metric", [])):
        missing = [k for k in ("table", "protocol", "metric", "direction", "values") if k not in entry]
        if missing or entry.get("direction") not in ("lower", "higher"):
            raise ConfigError(f"{path}: metric[{i}]", entry, "table, protocol, metric, direction (lower | higher) "
                              "and values = {estimator = value}", "complete the entry")
        out.append(PublishedMetric(entry["table"], entry["protocol"], entry["metric"], entry["direction"],
                                   {k: float(v) for k, v in entry["values"].items()}))
    return out


def _signs(values: dict[str, float]) -> dict[str, int]:
    """Per estimator: the sign of its difference from `random` when both are there, else of its value."""
    base = values.get(FLOOR)
    return {k: (0 if v == (base or 0.0) else 1 if v > (base or 0.0) else -1) for k, v in values.items()
            if not (base is not None and k == FLOOR)}


def compare(frame: pd.DataFrame, published: list[PublishedMetric]) -> list[Comparison]:
    """One Comparison per published metric that the run measured for at least two of the paper's estimators."""
    out = []
    for entry in published:
        rows = frame[(frame.protocol == entry.protocol) & (frame.metric == entry.metric)]
        ours = {r.estimator: float(r.value) for r in rows.itertuples()
                if r.estimator in entry.values and math.isfinite(float(r.value))}
        if len(ours) < 2:
            continue
        paper = {k: v for k, v in entry.values.items() if k in ours}
        order = sorted(paper, key=paper.get) == sorted(ours, key=ours.get)
        theirs, mine = _signs(paper), _signs(ours)
        agree = sum(theirs[k] == mine.get(k) for k in theirs)
        out.append(Comparison(entry, ours, order, agree, len(theirs)))
    return out


def comparison_lines(frame: pd.DataFrame, path: Path) -> list[str]:
    """Markdown lines: the source file, then one line per compared metric."""
    found = compare(frame, load_published(path))
    if not found:
        return [f"Published values ({path}): none of its metrics was measured for two of its estimators."]
    return [f"Beside the published values ({path}; order and signs, not absolute values, are comparable):",
            *[c.describe() for c in found]]
