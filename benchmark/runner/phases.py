"""The two shared phases of a run, as work items for benchmark.execution.work_queue.

1. Sampling: every shard of the generation pass (followed by its features in each space read), every batch of
   the sparsification protocol's denoising of real images, every shard of the guided pass (with its placebo and
   matched-NFE plain shards, and their features), and
   the real test set's features where read. None depends on another, so all ranks take items until none is left.
   Which features are read is the run's `feature_plan`: the union of what the configured protocols declare
   (`features_read(params, config)` in each protocol module) and what feature-scoring estimators read.
2. Protocols: every part of every configured protocol (benchmark.protocols.parts), each writing its
   rows and artifacts to the run folder; rank 0 reads them back in config order (`collect`).

Each item makes the same calls with the same thread count on whichever rank takes it, so a run's numbers are
the same bits with one process or several (tests/test_distributed.py).
"""
from __future__ import annotations

import os
import pickle
import time
from functools import partial
from pathlib import Path
from typing import Any

from benchmark.config import RunConfig
from benchmark.execution import checksums
from benchmark.execution.feature_scores import scorer_reads
from benchmark.execution.features import GENERATED, REAL_TEST, FeaturePlan, every_space, plan_features, real_features
from benchmark.execution.generation import generate, shard_path, shard_ranges
from benchmark.execution.work_queue import WORK_DIR, WorkItem
from benchmark.protocols import guided, sparsification
from benchmark.protocols.base import ProtocolInputs
from benchmark.protocols.parts import merge_artifacts, parts_of

SAMPLING, PROTOCOLS = "sampling", "protocols"  # the phases' names (their folders under the run's WORK_DIR)
RESULTS = "parts"  # <run>/.work/protocols/parts/: the rows and artifacts of each protocol part
# rough seconds per sample on one CPU thread, only to order the queue (longest first)
COST_PER_SAMPLE = {"generation": 1.0, "guided": 0.45, "sparsification": 0.7, "features": 0.15}
#: set to 1: compute every (space, split) pair of the run's spaces whatever is read (the set before issue 25;
#: bench/features_bench.py compares the two)
ALL_FEATURES_ENV = "UQBENCH_ALL_FEATURES"
EVERYTHING = "(all features: $UQBENCH_ALL_FEATURES)"  # the reader the manifest names for that set


def protocol_reads(config: RunConfig) -> dict[str, set]:
    """{protocol: the (space, split) pairs it reads}: its module's `features_read(params, config)`; a module
    without one is taken to read every pair of the run's spaces."""
    from benchmark.protocols.catalog import PROTOCOL_MODULES

    reads = {}
    for name, params in config.protocols.items():
        declared = getattr(PROTOCOL_MODULES.get(name), "features_read", None)
        reads[name] = set(declared(params, config)) if callable(declared) else \
            every_space(config, GENERATED, REAL_TEST)
    return reads


def feature_plan(config: RunConfig, preset) -> FeaturePlan:
    """The features the run computes (benchmark.execution.features.plan_features): what its protocols and
    feature-scoring estimators read; with $UQBENCH_ALL_FEATURES=1 every pair of its spaces as well."""
    reads = protocol_reads(config)
    if os.environ.get(ALL_FEATURES_ENV, "") == "1":
        reads = {EVERYTHING: every_space(config, GENERATED, REAL_TEST), **reads}
    return plan_features(config, preset, reads, scorer_reads(config))


def sampling_items(config: RunConfig, model, preset, out: Path, make_all, make_estimators, extract,
                   after_batch=None, plan: FeaturePlan | None = None) -> list[WorkItem]:
    """Phase 1 (see the module docstring). `make_all` adds the ground-truth observers to the generation pass;
    the sparsification batches get the estimators alone, as the protocol does. `plan`: the run's features
    (default `feature_plan(config, preset)`)."""
    plan = feature_plan(config, preset) if plan is None else plan
    return (_generation_items(config, model, out, make_all, extract, after_batch, plan.spaces(GENERATED))
            + _guided_items(config, model, out, extract, plan.spaces(GENERATED, protocols_only=True))
            + _sparsification_items(config, model, preset, out, make_estimators)
            + [WorkItem(f"generation.real_features.{space}", partial(real_features, config, preset, extract, space),
                        cost=COST_PER_SAMPLE["features"] * 100)  # (the test set's size is unknown until loaded)
               for space in plan.whole_real])


def _generation_items(config: RunConfig, model, out: Path, make_all, extract, after_batch,
                      spaces: list[str]) -> list[WorkItem]:
    """Each generation shard, then its features; it keeps the state where the guided pass starts."""
    shards = shard_ranges(config.num_samples, config.batch_size)
    params = config.protocols.get("guidance")
    keep = guided.window_start(None if params is None else params["window"], config.steps)
    return [WorkItem("generation.shards", partial(
        _timed, "generation.shards",
        partial(generate, model, run_dir=out, num_samples=config.num_samples, batch_size=config.batch_size,
                seed=config.seed, sampler=config.sampler, steps=config.steps, make_estimators=make_all, rank=i,
                world_size=len(shards), progress=False, after_batch=after_batch, keep_state_at=keep),
        partial(_shard_features, spaces, extract, shard_path(out, start, stop))),
        cost=COST_PER_SAMPLE["generation"] * (stop - start)) for i, (start, stop) in enumerate(shards)]


def _guided_items(config: RunConfig, model, out: Path, extract, spaces: list[str]) -> list[WorkItem]:
    """Each shard of the guided pass with its placebo and matched-NFE plain shards (per-image thresholds;
    calibrated ones are computed by the protocol), then the features of those three."""
    params = config.protocols.get("guidance")
    if params is None or str(params.get("thresholds", "per_image")) != "per_image":
        return []
    n = min(int(params["num_samples"]), config.num_samples)  # as guided.run
    shards = shard_ranges(n, min(config.batch_size, n))
    return [WorkItem("generation.guided_pass", partial(
        _timed, "generation.guided_pass",
        partial(guided.guided_pass, model, out, config, n, guided.guidance_from_params(params), rank=i,
                world_size=len(shards)),
        partial(_features_of_shards, spaces, extract,
                [shard_path(out, start, stop, tag=tag) for tag in guided.PASS_TAGS])),
        cost=COST_PER_SAMPLE["guided"] * (stop - start)) for i, (start, stop) in enumerate(shards)]


def _sparsification_items(config: RunConfig, model, preset, out: Path, make_estimators) -> list[WorkItem]:
    """Each batch of the sparsification protocol's denoising of real images."""
    params = config.protocols.get("sparsification")
    if params is None:
        return []
    return [WorkItem("generation.sparsification_pass",
                     partial(sparsification.denoise_batch, out, config, model, preset, make_estimators, params,
                             start, stop),
                     cost=COST_PER_SAMPLE["sparsification"] * (stop - start))
            for start, stop in sparsification.batches(config, params)]


def _timed(group: str, make, featurise) -> dict[str, float]:
    """Run `make`, then `featurise`; {group: seconds of make, **featurise's own timings}."""
    tick = time.perf_counter()
    make()
    return {group: time.perf_counter() - tick, **featurise()}


def _features_of_shards(spaces: list[str], extract, paths: list[Path]) -> dict[str, float]:
    """`_shard_features` of each shard in `paths`, seconds summed per group."""
    seconds: dict[str, float] = {}
    for path in paths:
        for group, spent in _shard_features(spaces, extract, path).items():
            seconds[group] = seconds.get(group, 0.0) + spent
    return seconds


def _shard_features(spaces: list[str], extract, path: Path) -> dict[str, float]:
    """Features of one shard's x0 in `spaces` (the chunk `extract` caches for the whole set); none read: the shard
    is not even loaded."""
    if not spaces:
        return {}
    x0 = checksums.load_checked(path)["x0"]
    seconds = {}
    for space in spaces:
        tick = time.perf_counter()
        extract(space, x0)
        seconds[f"generation.features.{space}"] = time.perf_counter() - tick
    return seconds


def protocol_items(inputs: ProtocolInputs, protocols: dict[str, tuple[Any, dict]]) -> list[WorkItem]:
    """Phase 2: every part of every protocol ({name: (module, params)}, in config order); part j of protocol i
    writes its (rows, artifacts) to <run>/.work/protocols/parts/<i>-<j>.pkl (the queue clears the phase's folder
    before it starts, so no part of an interrupted earlier run is read back)."""
    folder = inputs.run_dir / WORK_DIR / PROTOCOLS / RESULTS
    items = []
    for i, (name, (module, params)) in enumerate(protocols.items()):
        for j, part in enumerate(parts_of(module, inputs, params)):
            items.append(WorkItem(f"protocols.{name}", partial(_run_part, part, folder / f"{i:03d}-{j:05d}.pkl"),
                                  cost=part.cost))
    return items


def _run_part(part, path: Path) -> None:
    """Run one part; its rows and artifacts go to `path`."""
    artifacts: dict[str, Any] = {}
    rows = part.run(artifacts)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        pickle.dump((rows, artifacts), handle)


def collect(run_dir: Path, artifacts: dict[str, Any]) -> list:
    """Rows of every part in config order (protocol, then part), artifacts merged into `artifacts`."""
    rows = []
    for path in sorted((run_dir / WORK_DIR / PROTOCOLS / RESULTS).glob("*.pkl")):
        with open(path, "rb") as handle:
            part_rows, part_artifacts = pickle.load(handle)
        rows += part_rows
        merge_artifacts(artifacts, part_artifacts)
    return rows
