"""Built-in presets (named configs with a model, data and reference statistics). Filled by the presets issue."""
from __future__ import annotations


def names() -> list[str]:
    return []


def get(name: str):
    raise KeyError(name)
