"""The pooled results of a replicate run (`run.seeds`), written beside its seed folders `seed_<s>/`:

- `seeds.csv`: per (protocol, estimator, metric), mean, sd, min, max over the seeds and n_seeds;
- `pooled_verdicts.csv`: per test of the family (and the floor's checks), per seed its p-value and verdict, the
  combined test, its adjustment over the family, the pooled verdict, and whether it is stable across seeds;
- `seeds.md`: the same, short, for a reader;
- `replicates.json` (last: it marks finished replicates): the config, the seeds and their folders, the sha256 of
  the pooled files and of each seed folder's manifest (what `validate` checks).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import pandas as pd

from benchmark.config import RunConfig
from benchmark.execution.checksums import file_sha256
from benchmark.execution.io import save_json, save_text
from benchmark.report import metric_info
from benchmark.report.manifest import MANIFEST, estimator_records
from benchmark.report.pooling import FLIPS, STABLE, PooledFamily, PooledVerdict, metric_spread, pool_family, \
    pooled_table
from metrics.significance import MULTIPLICITY

REPLICATES = "replicates.json"
SEEDS_CSV, POOLED_CSV, SEEDS_MD = "seeds.csv", "pooled_verdicts.csv", "seeds.md"
POOLED_FILES = (SEEDS_CSV, POOLED_CSV, SEEDS_MD)
WORDS = {1: "better", -1: "worse", 0: "not distinguishable"}
MARKS = {1: "+", -1: "−", 0: "·"}


def seed_folder(out: Path, seed: int) -> Path:
    return Path(out) / f"seed_{seed}"


def write_pooled(out: Path, config: RunConfig, frames: Mapping[int, pd.DataFrame]) -> Path:
    """The pooled files of `frames` (seed -> its metrics.csv frame), then replicates.json; returns seeds.md."""
    from benchmark.report.document import ReportData

    is_reference = ReportData(config, next(iter(frames.values())), estimator_records(config)).roles.is_reference
    spread = metric_spread(frames)
    family = pool_family(frames, is_reference, config.multiplicity)
    save_text(spread.to_csv(index=False, float_format="%.6g"), out / SEEDS_CSV)
    save_text(pooled_table(family).to_csv(index=False, float_format="%.6g"), out / POOLED_CSV)
    save_text(render(config, family, spread), out / SEEDS_MD)
    save_json(replicates_record(out, config), out / REPLICATES)
    return out / SEEDS_MD


def replicates_record(out: Path, config: RunConfig) -> dict:
    """replicates.json: what `validate` checks a replicate folder against."""
    checked = [*POOLED_FILES, *(f"{seed_folder(out, s).name}/{MANIFEST}" for s in config.seeds)]
    return {"status": "finished", "config": config.to_dict(), "seeds": list(config.seeds),
            "folders": {str(s): seed_folder(out, s).name for s in config.seeds},
            "sha256": {name: file_sha256(out / name) for name in checked}}


def render(config: RunConfig, family: PooledFamily, spread: pd.DataFrame) -> str:
    seeds = ", ".join(map(str, family.seeds))
    lines = [f"# diffusion-uq-bench replicates: {config.name}", "",
             f"Seeds {seeds}: one complete run each (`seed_<s>/`, with its own report.md). Pooled verdict of each "
             "test: Stouffer's method on the seeds' signed z-scores, z_i = s_i Φ⁻¹(1 − p_i/2) with s_i = +1 when "
             "seed i's effect lies on the better side, Z = Σ z_i / √k, p = 2 Φ(−|Z|) (`metrics/combine.py`: "
             "opposite results cancel); the combined p-values of the family's "
             f"{family.size} tests are adjusted by {family.method} ({MULTIPLICITY[family.method]}), at 5 %. A "
             f"verdict is *{STABLE}* when every seed's own verdict (adjusted within its run) is the same, and "
             f"*{FLIPS}* otherwise. Per seed: + better than the floor, − worse, · not distinguishable.", ""]
    if family.verdicts:
        lines += ["## Pooled verdicts", "", *_table(family.verdicts, "p adj."), ""]
        lines += [f"Stable across seeds: {len(family.stable())} of {family.size}. Flips with the seed:", ""]
        lines += [f"- {_sentence(v)}" for v in family.flipping()] or ["- none"]
        lines.append("")
    if family.floor_checks:
        lines += ["## The floor's own tests (`random`, outside the family; raw p)", "",
                  *_table(family.floor_checks, "p"), ""]
    tested = {(v.protocol, v.estimator, v.metric) for v in family.verdicts}
    shown = spread[[k in tested for k in zip(spread.protocol, spread.estimator, spread.metric)]]
    lines += ["## Spread of the tested metrics across seeds", "",
              "| estimator | metric | mean | sd | min | max | seeds |", "|---|---|---|---|---|---|---|"]
    lines += [f"| `{r.estimator}` | {metric_info.label(r.metric)} | {r['mean']:.4g} | {r['sd']:.2g} | {r['min']:.4g} | "
              f"{r['max']:.4g} | {r['n_seeds']} |" for _, r in shown.iterrows()]
    lines += ["", f"Every metric's spread: `{SEEDS_CSV}`; every test per seed: `{POOLED_CSV}`.", ""]
    return "\n".join(lines)


def _table(members: tuple[PooledVerdict, ...], adjusted: str) -> list[str]:
    rows = ["| estimator | test | mean value | per seed | Z | p (pooled) | " + adjusted + " | pooled | across seeds |",
            "|---|---|---|---|---|---|---|---|---|"]
    for v in members:
        marks = " ".join(MARKS[o] for o in v.outcomes)
        rows.append(f"| `{v.estimator}` | {metric_info.label(v.metric)} | {v.mean_value:.4g} | {marks} | {v.z:+.2f} | "
                    f"{v.combined_p:.3g} | {v.adjusted_p:.3g} | {WORDS[v.outcome]} | {v.stability} |")
    return rows


def _sentence(v: PooledVerdict) -> str:
    by_outcome: dict[int, list[str]] = {}
    for seed, outcome in zip(v.seeds, v.outcomes):
        by_outcome.setdefault(outcome, []).append(str(seed))
    parts = "; ".join(f"{WORDS[o]} in seed{'s' if len(s) > 1 else ''} {', '.join(s)}" for o, s in by_outcome.items())
    return (f"`{v.estimator}` {metric_info.label(v.metric)}: {parts}; pooled: {WORDS[v.outcome]} "
            f"(p adj. {v.adjusted_p:.3g})")
