"""`python -m benchmark run`: generation pass, features once, the protocols, tables, plots, manifest."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import torch

from benchmark.config import RunConfig
from benchmark.runner import distributed
from benchmark.runner.generation import generate, load_generation
from benchmark.runner.feature_scores import apply_feature_scores
from benchmark.runner.io import save_text
from benchmark.runner.protocols import cost, filtered_fid, ground_truth, guided, precision_recall, sparsification
from benchmark.runner.protocols.base import ProtocolInputs
from benchmark.runner import setup
from benchmark.runner.setup import (LAPLACE_CACHE, check_run_dir, estimator_factory, preflight,
                                     prepare_run_dir, resolve_device)
from benchmark.runner.table import to_frame

PROTOCOL_FUNCTIONS = {
    "filtered_fid": filtered_fid.run,
    "precision_recall": precision_recall.run,
    "sparsification": sparsification.run,
    "guidance": guided.run,
    "cost": cost.run,
    "ground_truth": ground_truth.run,
}


@torch.no_grad()  # (the guided pass enables gradients where it needs them)
def run_benchmark(config: RunConfig, out: Path, *, overwrite: bool = False, progress: bool = True) -> Path | None:
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
    preset = setup.load_preset(config.preset)
    model = preset.load_model().to(device)
    oracle = preset.oracle() if "ground_truth" in config.protocols else None
    cache = out / LAPLACE_CACHE
    if rank == 0:  # bad input fails here, before the run folder is created or changed
        make_estimators = estimator_factory(config, model, preset, progress=progress,
                                            laplace_cache=cache if resume else None)
        preflight(config, model, preset, _with_oracle(make_estimators, oracle))
        prepare_run_dir(out, config, overwrite=overwrite)
        make_estimators.persist(cache)
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
    if rank != 0:
        distributed.finish()
        return None
    gen = load_generation(out, config.num_samples, config.batch_size)

    tick = time.perf_counter()
    extract = _feature_function(config, preset, out, progress)
    fake_features = {space: extract(space, gen.x0) for space in config.features}
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


def _with_oracle(make_estimators, oracle):
    if oracle is None:
        return make_estimators

    def make() -> list:
        return [*make_estimators(), ground_truth.OracleObserver(oracle)]

    return make


def _feature_function(config: RunConfig, preset, out: Path, progress: bool):
    from metrics import build_feature_extractor, cached_features

    extractors: dict = {}

    def extract(space: str, images: torch.Tensor) -> np.ndarray:
        if space not in extractors:
            kwargs = {"classifier": preset.load_classifier()} if space == "classifier" else {}
            extractors[space] = build_feature_extractor(space, **kwargs)
        return np.asarray(cached_features(extractors[space], images.cpu(), out / "features"), dtype=np.float64)

    return extract


def _references(config: RunConfig, preset, extract):
    """Real features (where computable here) and reference statistics per feature space."""
    from metrics import feature_statistics

    real_features, reference_stats = {}, {}
    for space in config.features:
        committed = preset.reference_stats(space)
        if space == "classifier" or committed is None:
            data = preset.load_data("test")
            real_features[space] = extract(space, data.images)
            reference_stats[space] = feature_statistics(real_features[space])
        else:
            reference_stats[space] = committed  # a metrics.FeatureStats (Preset.reference_stats)
    return real_features, reference_stats


def default_out_dir(config: RunConfig) -> Path:
    return Path(os.environ.get("UQBENCH_RESULTS", "results")) / "runs" / config.name
