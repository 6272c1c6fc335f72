"""Disk cache of features: a reference set is featurised once.

The key is a sha256 of the images' bytes (with their dtype and shape) and the extractor's name and
weights id, so the same images under other weights miss. Files are written to a temporary name in
the same folder and renamed, so an interrupted run never leaves a half-written entry.
"""
from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import numpy as np
import torch

from metrics.features import FeatureExtractor

CACHE_FORMAT = "features-v1"


def images_bytes(images) -> tuple[np.ndarray, str]:
    """A C-contiguous CPU numpy view of the images and a text of their dtype and shape."""
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().contiguous().numpy()
    array = np.ascontiguousarray(images)
    return array, f"{array.dtype.str}{array.shape}"


def feature_cache_key(extractor: FeatureExtractor, images) -> str:
    """sha256 hex of (format, extractor name, weights id, images dtype/shape/bytes)."""
    array, layout = images_bytes(images)
    digest = hashlib.sha256()
    for part in (CACHE_FORMAT, extractor.name, str(getattr(extractor, "weights_id", "")), layout):
        digest.update(part.encode())
        digest.update(b"\0")
    digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def _load_entry(path: Path, rows: int) -> np.ndarray | None:
    """The cached features, or None (the entry deleted, to be recomputed) when the file is truncated, not a
    .npy array, or not [rows, dim] finite values — a damaged cache never blocks a run or a resume."""
    try:
        features = np.load(path)
        if features.ndim == 2 and features.shape[0] == rows and np.isfinite(features).all():
            return features
        problem = f"shape {features.shape} / non-finite values, expected [{rows}, dim]"
    except (ValueError, EOFError, OSError) as err:
        problem = str(err) or type(err).__name__
    print(f"feature cache entry {path} is damaged ({problem}): recomputing it", file=sys.stderr)
    path.unlink(missing_ok=True)
    return None


def cached_features(extractor: FeatureExtractor, images, cache_dir: str | Path) -> np.ndarray:
    """extractor(images) [N, dim], read from `cache_dir` when this exact input was featurised before."""
    cache_dir = Path(cache_dir)
    path = cache_dir / f"{extractor.name}-{feature_cache_key(extractor, images)[:40]}.npy"
    if path.is_file():
        cached = _load_entry(path, rows=len(images))
        if cached is not None:
            return cached
    features = extractor(images)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            np.save(handle, features)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return features
