"""Features of a run: generated samples per shard-sized chunk (cached in the run folder), real references.

Generated images are featurised in chunks of the run's batch size, one cache file per chunk, so the chunk of
a shard can be featurised by the rank that made the shard (benchmark.runner.phases) and found by every other
rank. Both extractors give the same bits for an image in any batch (checked in tests/test_run_features.py),
so chunking changes no number.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from benchmark.config import RunConfig

CACHE_ENV = "UQBENCH_CACHE"


def feature_function(config: RunConfig, preset, out: Path):
    """extract(space, images, shared=False, whole=False) -> float64 features [N, D], cached.

    Cached in the run folder, chunk by chunk (`config.batch_size` rows from index 0, the shards' boundaries);
    `whole` caches the set as one entry (a real test set), `shared` in reference_cache_dir() (across runs).
    """
    from metrics import build_feature_extractor, cached_features

    extractors: dict = {}

    def extract(space: str, images: torch.Tensor, shared: bool = False, whole: bool = False) -> np.ndarray:
        if space not in extractors:
            kwargs = {"classifier": preset.load_classifier()} if space == "classifier" else {}
            extractors[space] = build_feature_extractor(space, **kwargs)
        images = images.cpu()
        if shared or whole:
            cache_dir = reference_cache_dir() if shared else out / "features"
            return np.asarray(cached_features(extractors[space], images, cache_dir), dtype=np.float64)
        step = max(1, int(config.batch_size))
        chunks = [cached_features(extractors[space], images[start:start + step], out / "features")
                  for start in range(0, images.shape[0], step)]
        return np.asarray(np.concatenate(chunks), dtype=np.float64)

    return extract


def needs_real_features(preset, space: str) -> bool:
    """Whether the run featurises the real test set in `space` (the classifier space always; others only when
    no reference statistics are committed)."""
    return space == "classifier" or preset.reference_stats(space) is None


def real_features(config: RunConfig, preset, extract, space: str) -> np.ndarray:
    """Features of the real test set; a [data] section's are cached by content across runs."""
    return extract(space, preset.load_data("test").images, shared=config.data is not None, whole=True)


def references(config: RunConfig, preset, extract):
    """Real features (where computable here) and reference statistics per feature space."""
    from metrics import feature_statistics

    real, reference_stats = {}, {}
    for space in config.features:
        if needs_real_features(preset, space):
            real[space] = real_features(config, preset, extract, space)
            reference_stats[space] = feature_statistics(real[space])
        else:
            reference_stats[space] = preset.reference_stats(space)  # a metrics.FeatureStats
    return real, reference_stats


def reference_cache_dir() -> Path:
    """$UQBENCH_CACHE/reference_features (default ~/.cache/diffusion-uq-bench/reference_features)."""
    return Path(os.environ.get(CACHE_ENV, "~/.cache/diffusion-uq-bench")).expanduser() / "reference_features"
