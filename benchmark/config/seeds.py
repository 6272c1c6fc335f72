"""Replicate seeds: `run.seeds = [0, 1, 2]` in a config, `--seeds 0,1,2` on `run`.

A config with two or more seeds runs one complete run per seed (benchmark.runner.replicates), each the config with
`run.seed` = that seed and no `run.seeds`; one seed is a plain run with `run.seed` = it. The seeds are distinct
integers >= 0, checked here before anything is written (ConfigError: exit 2, one line naming the field).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from benchmark.config.fields import Field, check
from benchmark.errors import ConfigError

FIX = "give distinct integers >= 0, e.g. run.seeds = [0, 1, 2] (or --seeds 0,1,2)"
SEEDS_FIELD = Field("list[int]", None, low=0, min_len=1, fix=FIX)


def check_seeds(value: Any, where: str = "run.seeds", shown: Any = None) -> tuple[int, ...]:
    """`value` as replicate seeds: a non-empty list of distinct integers >= 0 (ConfigError naming `where` and
    `shown`, the value as the user wrote it, default `value`)."""
    seeds = check(SEEDS_FIELD, value, where)
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ConfigError(where, value if shown is None else shown,
                          f"distinct seeds ({repeated[0]} is given {seeds.count(repeated[0])} times)", FIX)
    return tuple(seeds)


def parse_cli_seeds(text: str) -> tuple[int, ...]:
    """`--seeds 0,1,2` as seeds (ConfigError naming --seeds for a word that is not an integer >= 0)."""
    items = [item.strip() for item in str(text).split(",")]
    if not all(item.isdigit() for item in items):  # "", "-1", "1.5", "a": not a seed
        raise ConfigError("--seeds", text, "comma-separated distinct integers >= 0", "e.g. --seeds 0,1,2")
    return check_seeds([int(item) for item in items], "--seeds", shown=text)


def with_seeds(config, seeds: tuple[int, ...]):
    """The config replicated over `seeds` (already checked); one seed: a plain run with run.seed = it."""
    if len(seeds) == 1:
        return replace(config, seed=seeds[0], seeds=())
    return replace(config, seed=seeds[0], seeds=tuple(seeds))


def for_seed(config, seed: int):
    """The plain run of one replicate: run.seed = `seed`, no run.seeds (its folder is a normal run folder)."""
    return replace(config, seed=seed, seeds=())
