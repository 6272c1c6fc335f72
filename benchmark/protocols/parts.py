"""Protocols in independent parts, so the ranks of a run can share a protocol's work.

A protocol module may define `parts(inputs, params) -> list[Part]`: each part computes some of its rows (and
writes what the report needs into the `artifacts` dict it is given); the protocol's rows are the parts' rows in
order, its artifacts their merge. A protocol without `parts` is one part (its `run`). Running the parts in one
process, in order, is exactly `run`: the parts only let other processes take some of them.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

from benchmark.protocols.base import ProtocolInputs

DEFAULT_COST = 10.0  # a protocol that is one part: rough seconds, only for ordering the queue


@dataclass(frozen=True)
class Part:
    run: Callable[[dict], list]  # artifacts -> rows (MetricRow)
    cost: float = DEFAULT_COST  # rough expected seconds (orders the queue: longest first)


def parts_of(module, inputs: ProtocolInputs, params: dict) -> list[Part]:
    """The module's own parts, or its whole `run` as one part (run on a copy of `inputs` whose artifacts are the
    part's own)."""
    if hasattr(module, "parts"):
        return list(module.parts(inputs, params))
    return [Part(lambda artifacts: module.run(replace(inputs, artifacts=artifacts), params))]


def merge_artifacts(into: dict[str, Any], new: dict[str, Any]) -> None:
    """Add a part's artifacts: dict values (e.g. curves keyed by estimator) are merged key by key, others set."""
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            into[key].update(value)
        else:
            into[key] = value


def run_parts(parts: list[Part], artifacts: dict[str, Any]) -> list:
    """All parts in order, in this process: the protocol's rows; artifacts merged into `artifacts`."""
    rows = []
    for part in parts:
        own: dict[str, Any] = {}
        rows += part.run(own)
        merge_artifacts(artifacts, own)
    return rows
