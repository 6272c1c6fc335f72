"""`python -m benchmark run`: the sampling phase, features once, the protocols, tables, plots, manifest.

Both phases are queues of independent items (benchmark.runner.phases) that every rank of a torchrun launch
takes from until they are empty; rank 0 then merges, writes metrics.csv, the report and the manifest.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from benchmark import presets, warnings_log
from benchmark.config import RunConfig
from benchmark.execution import distributed, lock, work_queue
from benchmark.execution.feature_scores import apply_feature_scores
from benchmark.execution.features import GENERATED, REAL_TEST, FeaturePlan, feature_function, references
from benchmark.execution.generation import load_generation
from benchmark.execution.io import save_text
from benchmark.execution.run_dir import start_run_dir
from benchmark.models.run_settings import apply_run_settings
from benchmark.protocols.base import ProtocolInputs
from benchmark.protocols.catalog import PROTOCOL_MODULES
from benchmark.protocols.table import measured, not_run_records, to_frame
from benchmark.runner import phases, setup
from benchmark.runner.resources import estimator_factory
from benchmark.runner.setup import check_run_dir, preflight, resolve_device
from estimators.requirements import POSTERIOR_FILE


def run_benchmark(config: RunConfig, out: Path, *, overwrite: bool = False, progress: bool = True) -> Path | None:
    """Run every configured protocol (see `_run_benchmark`); the run folder's lock is released however it ends."""
    try:
        return _run_benchmark(config, out, overwrite=overwrite, progress=progress)
    except work_queue.PeerFailed:  # rank 0 reports the error
        distributed.finish()
        return None
    finally:
        owner = lock.read_owner(out) if out.is_dir() else None
        if owner is not None and owner.pid == os.getpid():  # this process started the run: its warnings, its log
            warnings_log.flush_to(out)
        lock.release(out)  # a no-op unless this process took it


@torch.no_grad()  # (the guided pass enables gradients where it needs them)
def _run_benchmark(config: RunConfig, out: Path, *, overwrite: bool = False, progress: bool = True) -> Path | None:
    """Run every configured protocol; returns the report path (None on ranks other than 0).

    torch runs on `config.threads` intra-op threads (default 1: the presets' networks are small, and on a
    busy 2-core machine two spinning threads made a pass up to 35x slower than one). Timings: the top-level
    stages are wall-clock seconds; their sub-stages are seconds of work summed over items and ranks.
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
                       pixel_maps=config.pixel_maps, decoder_mc_samples=config.decoder_mc_samples,
                       autocast=config.autocast)
    oracle = preset.oracle() if "ground_truth" in config.protocols else None
    cache = out / POSTERIOR_FILE
    if rank == 0:  # bad input fails here, before the run folder is created or changed
        setup.check_before_work(config, model, preset)  # before any fit, feature or sample
        make_estimators = estimator_factory(config, model, preset, progress=progress,
                                            posterior_cache=cache if resume else None)
        preflight(config, model, preset, _with_oracle(make_estimators, oracle))
        start_run_dir(out, config, overwrite=overwrite, model=model, factory=make_estimators, cache=cache)
        save_posterior_record(make_estimators, out)
    distributed.barrier()
    if rank != 0:  # the posterior rank 0 fitted, loaded from next to the model or from the run folder
        make_estimators = estimator_factory(config, model, preset, progress=False, posterior_cache=cache)
    timings["setup"] = time.perf_counter() - tick

    tick = time.perf_counter()
    extract = feature_function(config, preset, out)
    plan = phases.feature_plan(config, preset)  # only the (space, split) pairs a protocol or estimator reads
    items = phases.sampling_items(config, model, preset, out, _with_oracle(make_estimators, oracle), make_estimators,
                                  extract, PROTOCOL_MODULES["ground_truth"].record_log_density(oracle) if oracle is not None else None,
                                  plan=plan)
    work = work_queue.run_queue(items, out, phases.SAMPLING, rank, world, progress=progress)
    timings["generation"] = time.perf_counter() - tick

    tick = time.perf_counter()
    inputs = _protocol_inputs(config, out, model, preset, extract, make_estimators, plan,
                              progress=progress and rank == 0)
    timings["features"] = time.perf_counter() - tick
    tick = time.perf_counter()
    protocols = {name: (PROTOCOL_MODULES[name], params) for name, params in config.protocols.items()
                 if name != "ground_truth" or oracle is not None}
    work.update(work_queue.run_queue(phases.protocol_items(inputs, protocols), out, phases.PROTOCOLS, rank, world,
                                     progress=progress))
    timings["protocols"] = time.perf_counter() - tick
    if rank != 0:
        distributed.finish()
        return None
    rows = phases.collect(out, inputs.artifacts)
    work_queue.clean(out)
    timings.update({f"generation.{name}": seconds for name, seconds in inputs.generation.seconds.items()})  # shards
    timings.update(work)

    from benchmark.report import document as report
    from benchmark.report.manifest import write_manifest

    frame = to_frame(rows)  # the report says what did not run; metrics.csv holds measured values only
    save_text(measured(frame).to_csv(index=False, float_format="%.6g"), out / "metrics.csv")
    tick = time.perf_counter()
    notes = setup.run_notes(config, model, preset)
    report_path = report.write_report(inputs, frame, timings, notes)
    timings["report"] = time.perf_counter() - tick
    write_manifest(out, config, timings, model=model, processes=world,  # last: it marks a finished run
                   features=plan.record(), not_run=not_run_records(frame), notes=notes)
    distributed.finish()
    return report_path


def _protocol_inputs(config: RunConfig, out: Path, model, preset, extract, make_estimators, plan: FeaturePlan,
                     progress: bool) -> ProtocolInputs:
    """What every protocol part gets (built on every rank from the shards and the feature caches): the features
    of `plan` (protocols see theirs; a feature-scoring estimator gets its own, e.g. realism_oracle)."""
    gen = load_generation(out, config.num_samples, config.batch_size)
    fake = {space: extract(space, gen.x0) for space in plan.spaces(GENERATED)}
    real, reference_stats = references(config, preset, extract, plan)
    apply_feature_scores(gen, make_estimators(), fake, real, extract, lambda: preset.load_data("test").images)
    seen = set(plan.spaces(GENERATED, protocols_only=True)), set(plan.spaces(REAL_TEST, protocols_only=True))
    return ProtocolInputs(config, out, model, preset, gen, {s: f for s, f in fake.items() if s in seen[0]},
                          {s: f for s, f in real.items() if s in seen[1]}, reference_stats, extract,
                          make_estimators, progress)


def _with_oracle(make_estimators, oracle):
    """The estimators plus, for ground truth, the oracle observer and the aleatoric ones' exact-score twins."""
    if oracle is None:
        return make_estimators
    from benchmark.protocols.ground_truth_targets import with_observers

    return with_observers(make_estimators, oracle)


def default_out_dir(config: RunConfig) -> Path:
    return Path(os.environ.get("UQBENCH_RESULTS", "results")) / "runs" / config.name


def save_posterior_record(factory, out: Path) -> None:
    """posterior.json: what the shared last-layer posterior is (report: "Last-layer posterior"); a resumed run that
    loads the posterior it fitted before keeps the first record."""
    from benchmark.execution.io import save_json
    from benchmark.report.document import POSTERIOR_RECORD

    choice = getattr(factory, "posterior_choice", None)
    if choice is not None and (choice.source == "fitted" or not (out / POSTERIOR_RECORD).is_file()):
        save_json(choice.record(), out / POSTERIOR_RECORD)
