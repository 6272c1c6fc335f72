"""Command-line overrides of a TOML run config: `--set section.key=value` (repeatable).

`run --config configs/demo.toml --set run.num_samples=600 --set protocols.sparsification.num_images=64` reads the
file, then replaces (or adds) each dotted key before the config is validated, so an override is checked exactly like
the file's own value and lands in the run's config.json (a resume with other overrides is refused like any other
change of inputs). The value is a TOML literal: `600`, `0.5`, `true`, `"ddpm"`, `[45, 49]`; a bare word that is not
a TOML literal is taken as a string (`--set run.sampler=ddpm`).
"""
from __future__ import annotations

import copy
import tomllib
from typing import Any, Sequence

from benchmark.errors import ConfigError

FIX = "write --set section.key=value, e.g. --set run.num_samples=600 or --set protocols.guidance.m=5"


def parse_override(item: str) -> tuple[list[str], Any]:
    """'a.b.c=value' -> (['a', 'b', 'c'], the TOML value); a bare word is a string."""
    key, sep, raw = item.partition("=")
    path = [part.strip() for part in key.split(".")]
    if not sep or len(path) < 2 or not all(path):
        raise ConfigError("--set", item, "section.key=value (a dotted key with a section, then =)", FIX)
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        if not raw.strip() or any(c in raw for c in "[]{}\"'=,"):
            raise ConfigError("--set", item, "a TOML value after = (600, 0.5, true, \"text\", [45, 49])", FIX) from None
        value = raw.strip()
    return path, value


def apply_overrides(data: dict[str, Any], items: Sequence[str]) -> dict[str, Any]:
    """A copy of the parsed config `data` with every `--set` item applied in order (later items win)."""
    out = copy.deepcopy(data)
    for item in items:
        path, value = parse_override(item)
        table = out
        for depth, part in enumerate(path[:-1]):
            nxt = table.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ConfigError("--set", item, f"a key under a table, but {'.'.join(path[:depth + 1])} is a "
                                  f"value ({nxt!r})", FIX)
            table = nxt
        table[path[-1]] = value
    return out


__all__ = ["apply_overrides", "parse_override"]
