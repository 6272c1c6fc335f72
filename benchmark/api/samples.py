"""The per-sample results a run keeps in its generation shards (shards/gen_<start>_<stop>.pt, checksummed): each
estimator's score [N] and pixel map [N, C, H, W], and the samples x0, in sample-index order.

Only the shards a request touches are read. Scores an estimator computes from the run's features after generation
(a `score_features` estimator such as `realism_oracle`) are not in the shards (they hold placeholders), and are
refused with that reason rather than returned wrong.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.errors import ConfigError


def _shards(run_dir: Path, config: dict[str, Any]) -> list[tuple[int, int, Path]]:
    from benchmark.execution.generation import shard_path, shard_ranges

    run = config["run"]
    return [(start, stop, shard_path(run_dir, start, stop))
            for start, stop in shard_ranges(int(run["num_samples"]), int(run["batch_size"]))]


def _load(path: Path) -> dict:
    from benchmark.execution import checksums

    problem = checksums.problem(path)
    if problem is not None:
        raise ConfigError("shards", str(path), f"a generation shard of the run ({problem})",
                          "re-run the config (the shards hold the per-sample results)")
    return checksums.load_checked(path)


def _check_estimator(name: str, manifest: dict[str, Any]) -> None:
    records = manifest.get("estimators") or {}
    if name not in records:
        raise ConfigError("estimator", name, f"one of the run's estimators ({', '.join(records)})",
                          "give an instance name of the run's [estimators.*] tables")
    try:
        import estimators

        cls = estimators.get_class(records[name].get("type") or name)
    except Exception:  # a plug-in no longer importable: its shards still hold what it wrote
        return
    if callable(getattr(cls, "score_features", None)):
        raise ConfigError("estimator", name, "an estimator whose scores the shards keep, but it scores from the "
                          "run's features after generation (the shards hold placeholders)",
                          "read its effect in the metrics (its filtered-set rows)")


def _rows(run_dir: Path, config: dict[str, Any], indices: np.ndarray, part: str, name: str | None):
    """`part` (scores / pixels / x0) of the samples `indices`, in the order given."""
    import torch

    total = int(config["run"]["num_samples"])
    if indices.size and (indices.min() < 0 or indices.max() >= total):
        raise ConfigError("indices", indices.tolist(), f"sample indices in 0..{total - 1}", "give indices in range")
    found: dict[int, np.ndarray] = {}
    for start, stop, path in _shards(run_dir, config):
        wanted = indices[(indices >= start) & (indices < stop)]
        if wanted.size == 0:
            continue
        record = _load(path)
        tensor = record[part][name] if name is not None else record[part]
        values = tensor.to(torch.float32 if tensor.is_floating_point() else tensor.dtype).numpy()
        for i in np.unique(wanted):
            found[int(i)] = values[int(i) - start]
    if not found:
        return np.zeros((0,))
    return np.stack([found[int(i)] for i in indices])


def as_indices(indices: int | Iterable[int] | slice | None, total: int) -> np.ndarray:
    if indices is None:
        return np.arange(total)
    if isinstance(indices, slice):
        return np.arange(total)[indices]
    array = np.atleast_1d(np.asarray(indices))
    if array.dtype.kind not in "iu":
        raise ConfigError("indices", indices, "integer sample indices", "e.g. run.maps(name, [0, 1, 2]) with integer indices")
    return array.astype(np.int64)


def scores(run_dir: Path, manifest: dict[str, Any], name: str):
    """The estimator's score of every sample, as a pandas Series indexed by sample index."""
    import pandas as pd

    _check_estimator(name, manifest)
    config = manifest["config"]
    total = int(config["run"]["num_samples"])
    values = _rows(run_dir, config, np.arange(total), "scores", name)
    return pd.Series(values.astype(float), index=pd.RangeIndex(total, name="sample"), name=name)


def maps(run_dir: Path, manifest: dict[str, Any], name: str, indices) -> np.ndarray:
    """The estimator's pixel maps [len(indices), C, H, W] of the samples `indices` (pixel space)."""
    _check_estimator(name, manifest)
    config = manifest["config"]
    return _rows(run_dir, config, as_indices(indices, int(config["run"]["num_samples"])), "pixels", name)


def images(run_dir: Path, manifest: dict[str, Any], indices) -> np.ndarray:
    """The generated samples x0 [len(indices), C, H, W] in the model's data range [-1, 1]."""
    config = manifest["config"]
    return _rows(run_dir, config, as_indices(indices, int(config["run"]["num_samples"])), "x0", None)
