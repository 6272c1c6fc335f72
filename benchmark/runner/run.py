"""`python -m benchmark run`: generation pass, features once, the protocols, tables, plots, manifest."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch

from benchmark import presets
from benchmark.config import RunConfig
from benchmark.models.run_settings import apply_run_settings
from benchmark.runner import distributed
from benchmark.runner.generation import generate, load_generation
from benchmark.runner.feature_scores import apply_feature_scores
from benchmark.runner.io import save_text
from benchmark.runner.protocols import cost, filtered_fid, ground_truth, guided, precision_recall, sparsification
from benchmark.runner.protocols import augmentation, rectification
from benchmark.runner.protocols.base import ProtocolInputs
from benchmark.runner import lock, setup
from benchmark.runner.run_dir import start_run_dir
from benchmark.runner.setup import LAPLACE_CACHE, check_run_dir, estimator_factory, preflight, resolve_device
from benchmark.runner.table import to_frame

CACHE_ENV = "UQBENCH_CACHE"
PROTOCOL_FUNCTIONS = {
    "filtered_fid": filtered_fid.run,
    "precision_recall": precision_recall.run,
    "sparsification": sparsification.run,
    "guidance": guided.run,
    "cost": cost.run,
    "ground_truth": ground_truth.run,
    "augmentation": augmentation.run,
    "rectification": rectification.run,
}


def run_benchmark(config: RunConfig, out: Path, *, overwrite: bool = False, progress: bool = True) -> Path | None:
    """Run every configured protocol (see `_run_benchmark`); the run folder's lock is released however it ends."""
    try:
        return _run_benchmark(config, out, overwrite=overwrite, progress=progress)
    finally:
        lock.release(out)  # a no-op unless this process took it


@torch.no_grad()  # (the guided pass enables gradients where it needs them)
def _run_benchmark(config: RunConfig, out: Path, *, overwrite: bool = False, progress: bool = True) -> Path | None:
    """Run every configured protocol; returns the report path (None on ranks other than 0).

    torch runs on `config.threads` intra-op threads (default 1: the presets' networks are small, and on a
    busy 2-core machine two spinning threads made a pass up to 35x slower than one).
    """
    torch.set_num_threads(config.threads)
    rank, world = distributed.rank_and_world()
    timings: dict[str, float] = {}
    tick = time.perf_counter()
    resume = check_run_dir(out, config, overwrite=overwrite)  # every rank, read-only: all fail alike
    distributed.barrier()
    device = resolve_device(config.device if world == 1 else distributed.device_for(rank, config.device))
    preset = presets.for_run(setup.load_preset(config.preset) if config.preset else None, config.model, config.data)
    model = preset.load_model().to(device)
    apply_run_settings(model, guidance_scale=config.guidance_scale, prompts=config.prompts,
                       pixel_maps=config.pixel_maps, decoder_mc_samples=config.decoder_mc_samples)
    oracle = preset.oracle() if "ground_truth" in config.protocols else None
    cache = out / LAPLACE_CACHE
    if rank == 0:  # bad input fails here, before the run folder is created or changed
        make_estimators = estimator_factory(config, model, preset, progress=progress,
                                            laplace_cache=cache if resume else None)
        preflight(config, model, preset, _with_oracle(make_estimators, oracle))
        start_run_dir(out, config, overwrite=overwrite, model=model, factory=make_estimators, cache=cache)
    distributed.barrier()
    if rank != 0:  # the posterior rank 0 fitted, loaded from next to the model or from the run folder
        make_estimators = estimator_factory(config, model, preset, progress=False, laplace_cache=cache)
    make_all = _with_oracle(make_estimators, oracle)
    timings["setup"] = time.perf_counter() - tick

    tick = time.perf_counter()
    generate(model, run_dir=out, num_samples=config.num_samples, batch_size=config.batch_size, seed=config.seed,
             sampler=config.sampler, steps=config.steps, make_estimators=make_all, rank=rank, world_size=world,
             progress=progress, after_batch=ground_truth.record_log_density(oracle) if oracle is not None else None)
    distributed.barrier()
    timings["generation"] = time.perf_counter() - tick
    if world > 1:  # rather than idle through rank 0's protocol phase, the ranks share its independent work first
        tick = time.perf_counter()
        distributed.share_work(_prework(config, model, preset, out), rank, world)
        distributed.barrier()
        timings["protocol_prework"] = time.perf_counter() - tick
    if rank != 0:
        distributed.finish()
        return None
    gen = load_generation(out, config.num_samples, config.batch_size)

    tick = time.perf_counter()
    timings.update({f"generation.{name}": seconds for name, seconds in gen.seconds.items()})  # summed over shards
    extract = _feature_function(config, preset, out, progress)
    fake_features = {}
    for space in config.features:
        tick_space = time.perf_counter()
        fake_features[space] = extract(space, gen.x0)
        timings[f"features.{space}"] = time.perf_counter() - tick_space
    real_features, reference_stats = _references(config, preset, extract)
    apply_feature_scores(gen, make_estimators(), fake_features, real_features, extract,  # e.g. realism_oracle
                         lambda: preset.load_data("test").images)
    timings["features"] = time.perf_counter() - tick

    inputs = ProtocolInputs(config, out, model, preset, gen, fake_features, real_features, reference_stats,
                            extract, make_estimators, progress)
    rows = []
    for name, params in config.protocols.items():
        if name == "ground_truth" and oracle is None:
            continue
        tick = time.perf_counter()
        rows += PROTOCOL_FUNCTIONS[name](inputs, params)
        timings[f"protocol.{name}"] = time.perf_counter() - tick

    from benchmark.runner import report
    from benchmark.runner.manifest import write_manifest

    frame = to_frame(rows)
    save_text(frame.to_csv(index=False, float_format="%.6g"), out / "metrics.csv")
    tick = time.perf_counter()
    report_path = report.write_report(inputs, frame, timings)
    timings["report"] = time.perf_counter() - tick
    write_manifest(out, config, timings, model=model)  # written last: its presence marks a finished run
    distributed.finish()
    return report_path


def _prework(config: RunConfig, model, preset, out: Path) -> list:
    """Work items of the protocol phase that depend on the generation pass alone, for `distributed.share_work`:
    each shard of the guided pass (per-image thresholds; the shards `guided.run` then finds on disk) and each
    feature space's features of the generated samples (cached in the run folder, where `extract` finds them).
    Same calls and thread count as rank 0 would make, so the numbers are the same bits."""
    from functools import partial

    from benchmark.runner.generation import shard_ranges

    items: list = []
    params = config.protocols.get("guidance")
    if params is not None and str(params.get("thresholds", "per_image")) == "per_image":
        n = min(int(params["num_samples"]), config.num_samples)  # as guided.run
        batch = min(config.batch_size, n)
        shards = len(shard_ranges(n, batch))
        items += [partial(generate, model, run_dir=out, num_samples=n, batch_size=batch, seed=config.seed,
                          sampler=config.sampler, steps=config.steps, make_estimators=list, tag="guided",
                          progress=False, guidance=guided.guidance_from_params(params), rank=i, world_size=shards)
                  for i in range(shards)]  # shard i alone
    extract = _feature_function(config, preset, out, progress=False)

    def features(space: str) -> None:
        extract(space, load_generation(out, config.num_samples, config.batch_size).x0)

    return items + [partial(features, space) for space in config.features]


def _with_oracle(make_estimators, oracle):
    """The estimators plus, for ground truth, the oracle observer and the aleatoric ones' exact-score twins."""
    if oracle is None:
        return make_estimators
    from benchmark.runner.protocols.ground_truth_targets import with_observers

    return with_observers(make_estimators, oracle)


def _feature_function(config: RunConfig, preset, out: Path, progress: bool):
    from metrics import build_feature_extractor, cached_features

    extractors: dict = {}

    def extract(space: str, images: torch.Tensor, shared: bool = False) -> np.ndarray:
        """Features [N, D]; cached in the run folder, or with `shared` in reference_cache_dir() (across runs)."""
        if space not in extractors:
            kwargs = {"classifier": preset.load_classifier()} if space == "classifier" else {}
            extractors[space] = build_feature_extractor(space, **kwargs)
        cache_dir = reference_cache_dir() if shared else out / "features"
        return np.asarray(cached_features(extractors[space], images.cpu(), cache_dir), dtype=np.float64)

    return extract


def _references(config: RunConfig, preset, extract):
    """Real features (where computable here) and reference statistics per feature space. The features of a
    [data] section's images are computed once and cached by content hash across runs (reference_cache_dir)."""
    from metrics import feature_statistics

    real_features, reference_stats = {}, {}
    for space in config.features:
        committed = preset.reference_stats(space)
        if space == "classifier" or committed is None:
            data = preset.load_data("test")
            real_features[space] = extract(space, data.images, shared=config.data is not None)
            reference_stats[space] = feature_statistics(real_features[space])
        else:
            reference_stats[space] = committed  # a metrics.FeatureStats (Preset.reference_stats)
    return real_features, reference_stats


def reference_cache_dir() -> Path:
    """$UQBENCH_CACHE/reference_features (default ~/.cache/diffusion-uq-bench/reference_features)."""
    return Path(os.environ.get(CACHE_ENV, "~/.cache/diffusion-uq-bench")).expanduser() / "reference_features"


def default_out_dir(config: RunConfig) -> Path:
    return Path(os.environ.get("UQBENCH_RESULTS", "results")) / "runs" / config.name
