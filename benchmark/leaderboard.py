"""`python -m benchmark leaderboard RUN_DIR...`: one table across runs and estimators, with CI-aware ranks.

Rank of an estimator on a metric = 1 + the number of estimators that are *significantly* better on it
(their whole 95% interval lies on the better side of this one's interval); estimators whose intervals
overlap share a rank. The leaderboard orders by the mean rank over the headline metrics.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from benchmark.errors import ConfigError
from benchmark.runner.io import save_text


@dataclass(frozen=True)
class Headline:
    protocol: str
    metric: str
    higher_is_better: bool
    label: str


HEADLINES = (
    Headline("filtered_fid", "delta_vs_random[classifier]", False, "ΔFID vs random K"),
    Headline("filtered_fid", "fid_kept[classifier]", False, "FID kept"),
    Headline("precision_recall", "precision[classifier]", True, "precision kept"),
    Headline("sparsification", "ause", False, "AUSE"),
    Headline("sparsification", "aurg", True, "AURG"),
    Headline("ground_truth", "spearman_score_vs_neg_log_density", True, "ρ(score, -log p)"),
    Headline("cost", "nfe_ratio", False, "NFE ratio"),
)


def ci_aware_ranks(values: pd.Series, lows: pd.Series, highs: pd.Series, higher_is_better: bool) -> pd.Series:
    """1 + number of entries whose interval lies entirely on the better side of this entry's interval."""
    lo = lows.fillna(values)
    hi = highs.fillna(values)
    ranks = {}
    for key in values.index:
        if higher_is_better:
            better = (lo > hi[key]).sum()
        else:
            better = (hi < lo[key]).sum()
        ranks[key] = 1 + int(better)
    return pd.Series(ranks)


def load_runs(run_dirs: list[Path]) -> pd.DataFrame:
    frames = []
    for run_dir in run_dirs:
        path = Path(run_dir) / "metrics.csv"
        if not path.is_file():
            raise ConfigError("RUN_DIR", str(run_dir), "a finished run directory with metrics.csv",
                              "run `python -m benchmark run --config ... --out DIR` first")
        frame = pd.read_csv(path)
        frames.append(frame.assign(run=Path(run_dir).name))
    return pd.concat(frames, ignore_index=True)


def leaderboard_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, estimator): headline values and their CI-aware ranks, sorted by mean rank."""
    records: dict[tuple[str, str], dict] = {}
    for head in HEADLINES:
        part = frame[(frame.protocol == head.protocol) & (frame.metric == head.metric)]
        part = part[~part.estimator.str.startswith("(")]
        for run, group in part.groupby("run"):
            group = group.set_index("estimator")
            ranks = ci_aware_ranks(group.value, group.ci_low, group.ci_high, head.higher_is_better)
            for est, row in group.iterrows():
                rec = records.setdefault((run, est), {"run": run, "estimator": est})
                rec[head.label] = _cell(row.value, row.ci_low, row.ci_high)
                rec[f"rank: {head.label}"] = int(ranks[est])
    table = pd.DataFrame(list(records.values()))
    if table.empty:
        return table
    rank_cols = [c for c in table.columns if c.startswith("rank: ")]
    table["mean rank"] = table[rank_cols].mean(axis=1).round(2)
    value_cols = [h.label for h in HEADLINES if h.label in table.columns]
    return table.sort_values(["run", "mean rank"])[["run", "estimator", "mean rank", *value_cols]].reset_index(drop=True)


def write_leaderboard(run_dirs: list[Path], out: Path) -> tuple[Path, Path]:
    table = leaderboard_table(load_runs(run_dirs))
    md = ["# Leaderboard", "", "Values with 95% bootstrap intervals; ranks are CI-aware (overlapping intervals tie); "
          "sorted by mean rank over the headline metrics.", "", table.to_markdown(index=False), ""]
    md_path, html_path = out / "leaderboard.md", out / "leaderboard.html"
    save_text("\n".join(md), md_path)
    images = []
    for run_dir in run_dirs:
        for png in sorted((Path(run_dir) / "plots").glob("*.png")):
            rel = Path(__import__("os").path.relpath(png, out))
            images.append(f'<figure><img src="{html.escape(rel.as_posix())}" width="420">'
                          f"<figcaption>{html.escape(Path(run_dir).name)}: {html.escape(png.stem)}</figcaption></figure>")
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>diffusion-uq-bench leaderboard</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
            "padding:4px 8px;font-size:13px}figure{display:inline-block;margin:8px}</style></head><body>"
            "<h1>diffusion-uq-bench leaderboard</h1><p>Values with 95% bootstrap intervals; CI-aware ranks.</p>"
            + table.to_html(index=False, escape=True) + "<h2>Plots</h2>" + "".join(images) + "</body></html>")
    save_text(page, html_path)
    return md_path, html_path


def _cell(value: float, low: float, high: float) -> str:
    if isinstance(low, float) and not math.isnan(low) and not math.isnan(high):
        return f"{value:.4g} [{low:.4g}, {high:.4g}]"
    return f"{value:.4g}"
