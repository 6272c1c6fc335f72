"""Features of a run: generated samples per shard-sized chunk (cached in the run folder), real references.

Generated images are featurised in chunks of the run's batch size, one cache file per chunk, so the chunk of
a shard can be featurised by the rank that made the shard (benchmark.runner.phases) and found by every other
rank. Both extractors give the same bits for an image in any batch (checked in tests/test_run_features.py),
so chunking changes no number.

Features only where read: a run computes only the (space, split) pairs (`FeaturePlan`, `plan_features`) that a
configured protocol (its module's `features_read(params, config)`) or a feature-scoring estimator reads; the
manifest lists them with their readers.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Tuple

import numpy as np
import torch

from benchmark.config import RunConfig

CACHE_ENV = "UQBENCH_CACHE"
GENERATED, REAL_TEST = "generated", "real_test"  # the splits a run featurises: its samples, the real test images
SPLITS = (GENERATED, REAL_TEST)
Pair = Tuple[str, str]  # (feature space, split)


def every_space(config: RunConfig, *splits: str) -> set[Pair]:
    """{(space, split)} for every space of `config.features` and each split: what a protocol that reads its
    features in all of the run's spaces declares (`features_read` of a protocol module)."""
    return {(space, split) for space in config.features for split in splits}


@dataclass(frozen=True)
class FeaturePlan:
    """Which (space, split) pairs a run featurises, and who reads each (benchmark.runner.phases.feature_plan).

    `read_by`: computed pair -> its readers (protocol names, `estimator:<name>` for a feature-scoring estimator);
    `protocol_pairs`: the computed pairs protocols see (ProtocolInputs.fake_features / real_features hold exactly
    these); `whole_real`: spaces whose real test features are computed as one set (`real_features`: protocols' and
    scorers' in the run's spaces); `committed`: (space, REAL_TEST) -> readers given the preset's committed
    reference statistics instead (not computed).
    """

    read_by: dict[Pair, tuple[str, ...]] = field(default_factory=dict)
    protocol_pairs: frozenset = frozenset()
    whole_real: tuple[str, ...] = ()
    committed: dict[Pair, tuple[str, ...]] = field(default_factory=dict)

    def spaces(self, split: str, protocols_only: bool = False) -> list[str]:
        """Spaces of `split` the run computes (for protocols only: the ones they see), the run's spaces first in
        config order."""
        pairs = self.protocol_pairs if protocols_only else self.read_by
        return [space for space, s in self.read_by if s == split and (space, s) in pairs]

    def record(self) -> dict:
        """The manifest's `features`: the pairs computed with their readers, the committed references used."""
        def rows(pairs: dict) -> list[dict]:
            return [{"space": space, "split": split, "read_by": list(readers)}
                    for (space, split), readers in pairs.items()]

        return {"computed": rows(self.read_by), "committed_reference_stats": rows(self.committed)}


def plan_features(config: RunConfig, preset, protocol_reads: dict[str, Iterable[Pair]],
                  scorer_reads: dict[str, Iterable[Pair]] | None = None) -> FeaturePlan:
    """The pairs to compute: the union of what the configured protocols read (`protocol_reads`: {protocol:
    pairs}) and what feature-scoring estimators read (`scorer_reads`: {instance: pairs}), and nothing else.

    A protocol's (space, REAL_TEST) is computed only where the run featurises real images in that space
    (`needs_real_features`); elsewhere it reads the preset's committed statistics (listed in `committed`, not
    computed). Protocols see only the run's spaces (`config.features`); a scorer's real test features are
    always computed (it needs the rows themselves).
    """
    read_by: dict[Pair, list[str]] = {}
    committed: dict[Pair, list[str]] = {}
    protocol_pairs: set[Pair] = set()
    for who, pairs, is_protocol in ([(name, pairs, True) for name, pairs in protocol_reads.items()]
                                    + [(f"estimator:{name}", pairs, False)
                                       for name, pairs in (scorer_reads or {}).items()]):
        for space, split in _ordered(pairs, config.features):
            if split not in SPLITS:
                raise ValueError(f"{who} reads features of an unknown split {split!r} (one of {SPLITS})")
            if is_protocol and space not in config.features:
                continue  # protocols see only the run's spaces
            if is_protocol and split == REAL_TEST and not needs_real_features(preset, space):
                committed.setdefault((space, split), []).append(who)
                continue
            read_by.setdefault((space, split), []).append(who)
            if is_protocol:
                protocol_pairs.add((space, split))
    whole = tuple(space for space, split in _ordered(read_by, config.features) if split == REAL_TEST
                  and space in config.features and needs_real_features(preset, space))
    return FeaturePlan({pair: tuple(read_by[pair]) for pair in _ordered(read_by, config.features)},
                       frozenset(protocol_pairs), whole,
                       {pair: tuple(committed[pair]) for pair in _ordered(committed, config.features)})


def _ordered(pairs: Iterable[Pair], spaces) -> list[Pair]:
    """`pairs` in a fixed order: the run's spaces in config order, then others by name; generated first."""
    rank = {space: i for i, space in enumerate(spaces)}
    return sorted(set(pairs), key=lambda p: (rank.get(p[0], len(rank)), p[0], SPLITS.index(p[1])
                                            if p[1] in SPLITS else len(SPLITS), p[1]))


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


def references(config: RunConfig, preset, extract, plan: FeaturePlan):
    """(real test features of `plan.whole_real`, reference statistics of every space whose real test set a protocol
    reads: from those features, or the preset's committed ones)."""
    from metrics import feature_statistics

    real = {space: real_features(config, preset, extract, space) for space in plan.whole_real}
    reference_stats = {}
    for space in config.features:
        if (space, REAL_TEST) in plan.protocol_pairs:
            reference_stats[space] = feature_statistics(real[space])
        elif (space, REAL_TEST) in plan.committed:
            reference_stats[space] = preset.reference_stats(space)  # a metrics.FeatureStats
    return real, reference_stats


def reference_cache_dir() -> Path:
    """$UQBENCH_CACHE/reference_features (default ~/.cache/diffusion-uq-bench/reference_features)."""
    return Path(os.environ.get(CACHE_ENV, "~/.cache/diffusion-uq-bench")).expanduser() / "reference_features"
