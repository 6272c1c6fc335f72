"""Protocol 4: uncertainty-guided sampling (Alg. 2 of the aleatoric paper) vs a placebo and vs plain sampling.

The first `num_samples` samples of the generation pass are the plain ones; the same indices (same x_T,
labels and sampler) are generated again with `UncertaintyGuidance` ("guided") and with its placebo
(`PlaceboGuidance`, row "(placebo)"): the same procedure, draws, lambda, NFEs and number of guided pixels per
image, with the mask moved to uniformly random pixels (estimators.guidance, "Placebo"), and with the plain
sampler at matched NFE (row "(plain, matched NFE)": no guidance, more steps). Guidance costs M extra calls per
guided step and perturbs eps wherever it acts, so only the placebo isolates the uncertainty map:
- `delta_vs_placebo[space]` (the verdict) = FID(guided) - FID(placebo), paired subsampling interval over sample
  indices with its p-value (fid_utils.paired_delta_ci);
- `delta_vs_plain_matched_nfe[space]` = FID(guided) - FID(plain at matched NFE), paired the same way: whether the
  guided pass's extra network calls beat spending them on more plain steps;
- `delta_vs_plain[space]` = FID(guided) - FID(plain), and the placebo's and the matched pass's beside it;
- FID of each against the reference; NFEs of every pass (`nfe_per_sample`, `extra_nfe_per_sample` and
  `nfe_ratio` against plain sampling at the run's step count); `mean_abs_change_x0`, the mean |x0 - x0_plain| over
  pixels and samples of each pass (how much it moved the images at all: with center = "mean" the Eq. 10 step is
  second order, see estimators.guidance; a placebo of the same strength moves them by a comparable amount).

Matched NFE (`matched_steps`, also a row of the matched pass): with G the guided pass's NFEs per sample (sampler
plus guidance) and P the plain sampler's NFEs per sample at the run's S steps (the guided pass's own sampler NFEs),
    S_matched = floor(G / (P / S) + 1/2)    (G over the plain NFE per step, rounded to the nearest step, halves up),
so the matched pass's NFEs per sample are within half a step's NFE of G. Each matched shard reads G and P from its
guided shard (every sample of a pass makes the same calls, so every shard and rank finds the same S_matched; the
count is stored per sample in the shard and checked when the shards are merged). The matched pass samples the same
x_T and labels from scratch on the S_matched-step grid (the same seeds: DDPM noise per (seed, index, step)).

Options: `center` and `clip_x0` as for the sensitivity estimator; `thresholds` = "per_image" (the p-th
percentile of each image's U_t) or "calibrated" (Alg. 2's step-wise tau_t: the p-th percentile of U_t over a
calibration pass of `calibration_samples` plain samples, sample indices num_samples .. num_samples +
calibration_samples - 1 of the run's seed, i.e. not the evaluated ones; computed once and saved in the run
folder as THRESHOLDS_FILE, which a resumed run reuses when its settings match). The settings used go to
`inputs.artifacts["guidance"]` for the report.
"""
from __future__ import annotations

import json
import math

import numpy as np
import torch

from benchmark.execution import checksums
from benchmark.execution.features import GENERATED, REAL_TEST, every_space
from benchmark.execution.generation import generate, kept_state, load_generation, shard_path, shard_ranges, usable
from benchmark.execution.io import save_json
from benchmark.protocols.base import ProtocolInputs
from benchmark.protocols.fid_utils import bootstrap_replicates, fid_ci, paired_delta_ci
from benchmark.protocols.table import MetricRow, row_from_ci
from estimators.guidance import PlaceboGuidance, UncertaintyGuidance, calibrate_thresholds
from estimators.windowed import window_steps
from metrics import bootstrap_ci

NAME = "guidance"
THRESHOLDS_FILE = "guidance_thresholds.json"
GUIDED_TAG, PLACEBO_TAG, MATCHED_TAG = "guided", "placebo", "plainmatched"  # shard tags of the three passes
PASS_TAGS = (GUIDED_TAG, PLACEBO_TAG, MATCHED_TAG)
PLACEBO = "(placebo)"  # the placebo's row (a reference row: the name starts with "(")
PLAIN_MATCHED = "(plain, matched NFE)"  # the plain sampler at the guided pass's NFEs (a reference row)
MATCHED_STEPS_KEY = "matched_steps"  # extras of a matched shard: its step count, per sample [B]


def features_read(params: dict, config) -> set[tuple[str, str]]:
    """(space, split) pairs of the run's features this protocol reads: the plain samples' features and the real test
    set's statistics in every space (the guided passes' own features are extracted with them)."""
    return every_space(config, GENERATED, REAL_TEST)


def window_start(window, steps: int) -> int | None:
    """The first guided grid step of a guidance `window` (None without a window, or when it holds no step).
    The guided pass equals the plain one before it, so the generation pass keeps its state there and the
    guided pass continues from it (`generation.kept_state`) instead of sampling those steps again."""
    if window is None:
        return None
    guided_steps = window_steps(tuple(window), steps)
    return guided_steps.start if len(guided_steps) else None


def guided_pass(model, run_dir, config, n: int, guidance: UncertaintyGuidance, progress: bool = False,
                rank: int = 0, world_size: int = 1) -> None:
    """Generate the guided, placebo and matched-NFE plain shards of the first n sample indices (all, or with
    rank / world_size some: shard i on rank i % world_size). The guided and placebo shards continue from the
    generation pass's state at the window start when that shard kept it; each matched shard follows its guided
    shard (`plain_matched_pass`). The placebo's random masks are drawn per (run seed, sample index, step): the same
    bits on any rank."""
    start = window_start(guidance.window, config.steps)
    for tag, passed in ((GUIDED_TAG, guidance), (PLACEBO_TAG, PlaceboGuidance(guidance))):
        generate(model, run_dir=run_dir, num_samples=n, batch_size=min(config.batch_size, n), seed=config.seed,
                 sampler=config.sampler, steps=config.steps, make_estimators=list, tag=tag, progress=progress,
                 guidance=passed, rank=rank, world_size=world_size,
                 start_from=None if start is None else kept_state(run_dir, config.num_samples, config.batch_size,
                                                                  start))
    plain_matched_pass(model, run_dir, config, n, progress=progress, rank=rank, world_size=world_size)


def matched_steps(guided_nfe: float, plain_nfe: float, steps: int) -> int:
    """S_matched = floor(G / (P / S) + 1/2), at least 1: the plain step count whose NFEs per sample match G, the
    guided pass's NFEs per sample (sampler + guidance), with P the plain sampler's NFEs per sample at S steps
    (module docstring, "Matched NFE")."""
    return max(1, math.floor(guided_nfe / (plain_nfe / steps) + 0.5))


def plain_matched_pass(model, run_dir, config, n: int, progress: bool = False, rank: int = 0,
                       world_size: int = 1) -> None:
    """Generate this rank's matched-NFE plain shards (tag MATCHED_TAG) that are not on disk yet: the plain
    sampler from the same x_T and labels with `matched_steps` steps, read from the shard's guided shard (which
    must exist). The step count goes into the shard's extras under MATCHED_STEPS_KEY."""
    ranges = shard_ranges(n, min(config.batch_size, n))
    for i, (start, stop) in enumerate(ranges):
        if i % world_size != rank or usable(shard_path(run_dir, start, stop, tag=MATCHED_TAG)):
            continue
        nfe = checksums.load_checked(shard_path(run_dir, start, stop, tag=GUIDED_TAG))["nfe"]
        steps = matched_steps(nfe["sampler"] + nfe["guidance"], nfe["sampler"], config.steps)

        def record_steps(x0, record, steps=steps):
            record["extras"][MATCHED_STEPS_KEY] = torch.full((x0.shape[0],), steps, dtype=torch.long,
                                                           device="cpu")

        generate(model, run_dir=run_dir, num_samples=n, batch_size=min(config.batch_size, n), seed=config.seed,
                 sampler=config.sampler, steps=steps, make_estimators=list, rank=i, world_size=len(ranges),
                 tag=MATCHED_TAG, progress=progress, after_batch=record_steps)


def merged_matched_steps(made) -> int:
    """The one step count of a merged matched pass (a Generation); an error if its shards disagree."""
    counts = sorted(set(made.extras[MATCHED_STEPS_KEY].tolist()))
    if len(counts) != 1:
        raise RuntimeError(f"the matched-NFE plain shards ({MATCHED_TAG}_*) were made with different step counts "
                           f"{counts}; delete them to regenerate them")
    return counts[0]


def guidance_from_params(params: dict) -> UncertaintyGuidance:
    """The per-image-percentile guidance of a [protocols.guidance] table (thresholds are set by `run`)."""
    return UncertaintyGuidance(m=int(params["m"]), percentile=float(params["percentile"]),
                               strength=float(params["strength"]), window=tuple(params["window"]),
                               center=str(params.get("center", "mean")), clip_x0=bool(params.get("clip_x0", False)))


def calibrated_guidance(inputs: ProtocolInputs, params: dict, guidance: UncertaintyGuidance) -> UncertaintyGuidance:
    """`guidance` with Alg. 2's step-wise thresholds, loaded from the run folder or computed once and saved."""
    from benchmark.sampling import initial_labels, initial_noise

    cfg, model = inputs.config, inputs.model
    count = int(params["calibration_samples"])
    settings = {"percentile": guidance.percentile, "m": guidance.m, "window": list(guidance.window),
                "center": guidance.center, "clip_x0": guidance.clip_x0, "sampler": cfg.sampler, "steps": cfg.steps,
                "seed": cfg.seed, "first_index": cfg.num_samples, "calibration_samples": count}
    path = inputs.run_dir / THRESHOLDS_FILE
    saved = json.loads(path.read_text()) if path.is_file() else None
    if saved is not None and saved.get("settings") == settings:
        tau = {int(t): float(v) for t, v in saved["thresholds"].items()}
    else:
        idx = torch.arange(cfg.num_samples, cfg.num_samples + count, device="cpu")
        x_T = initial_noise(cfg.seed, idx, model.sample_shape).to(model.device)
        y = initial_labels(cfg.seed, idx, model.num_classes).to(model.device) if model.num_classes else None
        tau = calibrate_thresholds(model, guidance, x_T, sampler=cfg.sampler, steps=cfg.steps, seed=cfg.seed,
                                   indices=idx, y=y, batch_size=cfg.batch_size)
        save_json({"settings": settings, "thresholds": {str(t): v for t, v in sorted(tau.items())}}, path)
    return UncertaintyGuidance(m=guidance.m, percentile=guidance.percentile, strength=guidance.strength,
                               window=guidance.window, center=guidance.center, clip_x0=guidance.clip_x0,
                               thresholds=tau)


def run(inputs: ProtocolInputs, params: dict) -> list[MetricRow]:
    cfg, gen = inputs.config, inputs.generation
    n = min(int(params["num_samples"]), gen.size)
    guidance = guidance_from_params(params)
    mode = str(params.get("thresholds", "per_image"))
    if mode == "calibrated":
        guidance = calibrated_guidance(inputs, params, guidance)
    inputs.artifacts["guidance"] = {"thresholds": mode, "center": guidance.center, "clip_x0": guidance.clip_x0,
                                    "tau": guidance.thresholds,
                                    "thresholds_file": str(inputs.run_dir / THRESHOLDS_FILE) if mode == "calibrated"
                                    else None}
    guided_pass(inputs.model, inputs.run_dir, cfg, n, guidance, progress=inputs.progress)
    passes = {name: load_generation(inputs.run_dir, n, min(cfg.batch_size, n), tag=tag)
              for name, tag in (("guided", GUIDED_TAG), (PLACEBO, PLACEBO_TAG), (PLAIN_MATCHED, MATCHED_TAG))}
    inputs.artifacts["guided_x0"] = passes["guided"].x0
    inputs.artifacts["placebo_x0"] = passes[PLACEBO].x0
    rows = []
    for space in inputs.fake_features:
        rows += _fid_rows(inputs, space, n, passes)
    plain_nfe = passes["guided"].nfe["sampler"]  # the plain sampler's at the run's steps (the guided pass's own)
    for name, made in passes.items():
        rows += _pass_rows(inputs, name, made, n, plain_nfe)
    rows.append(MetricRow(NAME, PLAIN_MATCHED, MATCHED_STEPS_KEY, float(merged_matched_steps(passes[PLAIN_MATCHED])),
                          n=n, seed=cfg.seed))
    return rows


def _fid_rows(inputs: ProtocolInputs, space: str, n: int, passes: dict) -> list[MetricRow]:
    """FID of plain and of each pass; guided - placebo (the verdict), guided - plain at matched NFE and each pass
    - plain, paired by index."""
    cfg = inputs.config
    ref = inputs.reference_stats[space]
    n_boot = bootstrap_replicates(space, cfg.bootstrap)
    feats = {"plain": inputs.fake_features[space][:n],
             **{name: inputs.extract(space, made.x0) for name, made in passes.items()}}
    rows = [row_from_ci(NAME, name, f"fid[{space}]", fid_ci(f, ref, n_boot, cfg.seed), n, cfg.seed)
            for name, f in feats.items()]
    rows.append(row_from_ci(NAME, "guided", f"delta_vs_placebo[{space}]",
                            paired_delta_ci(feats["guided"], feats[PLACEBO], ref, n_boot, cfg.seed), n, cfg.seed))
    rows.append(row_from_ci(NAME, "guided", f"delta_vs_plain_matched_nfe[{space}]",
                            paired_delta_ci(feats["guided"], feats[PLAIN_MATCHED], ref, n_boot, cfg.seed), n, cfg.seed))
    rows += [row_from_ci(NAME, name, f"delta_vs_plain[{space}]",
                         paired_delta_ci(feats[name], feats["plain"], ref, n_boot, cfg.seed), n, cfg.seed)
             for name in passes]
    return rows


def _pass_rows(inputs: ProtocolInputs, name: str, made, n: int, plain_nfe: float) -> list[MetricRow]:
    """NFEs of one pass (per sample; extra and ratio against `plain_nfe`, the plain sampler's NFEs per sample at
    the run's steps) and how far it moved x0 from plain."""
    cfg, seed = inputs.config, inputs.config.seed
    total = made.nfe["sampler"] + made.nfe.get("guidance", 0.0)
    moved = (made.x0 - inputs.generation.x0[:n]).abs().flatten(1)  # [n, C*H*W]
    per_sample_change = moved.mean(1).double().numpy()  # [n]
    return [MetricRow(NAME, name, "nfe_per_sample", total, n=n, seed=seed),
            MetricRow(NAME, name, "extra_nfe_per_sample", total - plain_nfe, n=n, seed=seed),
            MetricRow(NAME, name, "nfe_ratio", total / plain_nfe, n=n, seed=seed),
            row_from_ci(NAME, name, "mean_abs_change_x0",
                        bootstrap_ci(np.mean, per_sample_change, n_boot=cfg.bootstrap, seed=seed), n, seed),
            MetricRow(NAME, name, "fraction_changed", float((moved.amax(1) > 1e-6).float().mean()), n=n, seed=seed)]
