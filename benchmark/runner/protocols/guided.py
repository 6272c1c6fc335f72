"""Protocol 4: uncertainty-guided sampling (Alg. 2 of the aleatoric paper) vs a placebo and vs plain sampling.

The first `num_samples` samples of the generation pass are the plain ones; the same indices (same x_T,
labels and sampler) are generated again with `UncertaintyGuidance` ("guided") and with its placebo
(`PlaceboGuidance`, row "(placebo)"): the same procedure, draws, lambda, NFEs and number of guided pixels per
image, with the mask moved to uniformly random pixels (benchmark.guidance, "Placebo"). Guidance costs M extra
calls per guided step and perturbs eps wherever it acts, so only the placebo isolates the uncertainty map:
- `delta_vs_placebo[space]` (the verdict) = FID(guided) - FID(placebo), paired half-sample interval over sample
  indices with its p-value (fid_utils.paired_delta_ci);
- `delta_vs_plain[space]` = FID(guided) - FID(plain), and the placebo's own delta_vs_plain beside it;
- FID of each against the reference; NFEs of both passes; `mean_abs_change_x0`, the mean |x0 - x0_plain| over
  pixels and samples of each pass (how much it moved the images at all: with center = "mean" the Eq. 10 step is
  second order, see benchmark.guidance; a placebo of the same strength moves them by a comparable amount).

Options: `center` and `clip_x0` as for the sensitivity estimator; `thresholds` = "per_image" (the p-th
percentile of each image's U_t) or "calibrated" (Alg. 2's step-wise tau_t: the p-th percentile of U_t over a
calibration pass of `calibration_samples` plain samples, sample indices num_samples .. num_samples +
calibration_samples - 1 of the run's seed, i.e. not the evaluated ones; computed once and saved in the run
folder as THRESHOLDS_FILE, which a resumed run reuses when its settings match). The settings used go to
`inputs.artifacts["guidance"]` for the report.
"""
from __future__ import annotations

import json

import numpy as np
import torch

from benchmark.guidance import PlaceboGuidance, UncertaintyGuidance, calibrate_thresholds
from estimators.windowed import window_steps
from benchmark.runner.io import save_json
from metrics import bootstrap_ci
from benchmark.runner.generation import generate, kept_state, load_generation
from benchmark.runner.protocols.base import ProtocolInputs
from benchmark.runner.protocols.fid_utils import bootstrap_replicates, fid_ci, paired_delta_ci
from benchmark.runner.table import MetricRow, row_from_ci

NAME = "guidance"
THRESHOLDS_FILE = "guidance_thresholds.json"
GUIDED_TAG, PLACEBO_TAG = "guided", "placebo"  # shard tags of the two passes
PLACEBO = "(placebo)"  # the placebo's row (a reference row: the name starts with "(")


def window_start(window, steps: int) -> int | None:
    """The first guided grid step of a guidance `window` (None without a window, or when it holds no step).
    The guided pass equals the plain one before it, so the generation pass keeps its state there and the
    guided pass continues from it (`generation.kept_state`) instead of sampling those steps again."""
    if window is None:
        return None
    guided_steps = window_steps(tuple(window), steps)
    return guided_steps.start if len(guided_steps) else None


def guided_pass(model, run_dir, config, n: int, guidance: UncertaintyGuidance, progress: bool = False,
                **shard) -> None:
    """Generate the guided and the placebo shards of the first n sample indices (all, or with `shard` = rank /
    world_size some), each continued from the generation pass's state at the window start when that shard kept it.
    The placebo's random masks are drawn per (run seed, sample index, step): the same bits on any rank."""
    start = window_start(guidance.window, config.steps)
    for tag, passed in ((GUIDED_TAG, guidance), (PLACEBO_TAG, PlaceboGuidance(guidance))):
        generate(model, run_dir=run_dir, num_samples=n, batch_size=min(config.batch_size, n), seed=config.seed,
                 sampler=config.sampler, steps=config.steps, make_estimators=list, tag=tag, progress=progress,
                 guidance=passed, **shard,
                 start_from=None if start is None else kept_state(run_dir, config.num_samples, config.batch_size,
                                                                  start))


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
        idx = torch.arange(cfg.num_samples, cfg.num_samples + count)
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
              for name, tag in (("guided", GUIDED_TAG), (PLACEBO, PLACEBO_TAG))}
    inputs.artifacts["guided_x0"] = passes["guided"].x0
    inputs.artifacts["placebo_x0"] = passes[PLACEBO].x0
    rows = []
    for space in inputs.fake_features:
        rows += _fid_rows(inputs, space, n, passes)
    for name, made in passes.items():
        rows += _pass_rows(inputs, name, made, n)
    return rows


def _fid_rows(inputs: ProtocolInputs, space: str, n: int, passes: dict) -> list[MetricRow]:
    """FID of plain, guided and placebo; guided - placebo (the verdict) and each pass - plain, paired by index."""
    cfg = inputs.config
    ref = inputs.reference_stats[space]
    n_boot = bootstrap_replicates(space, cfg.bootstrap)
    feats = {"plain": inputs.fake_features[space][:n],
             **{name: inputs.extract(space, made.x0) for name, made in passes.items()}}
    rows = [row_from_ci(NAME, name, f"fid[{space}]", fid_ci(f, ref, n_boot, cfg.seed), n, cfg.seed)
            for name, f in feats.items()]
    rows.append(row_from_ci(NAME, "guided", f"delta_vs_placebo[{space}]",
                            paired_delta_ci(feats["guided"], feats[PLACEBO], ref, n_boot, cfg.seed), n, cfg.seed))
    rows += [row_from_ci(NAME, name, f"delta_vs_plain[{space}]",
                         paired_delta_ci(feats[name], feats["plain"], ref, n_boot, cfg.seed), n, cfg.seed)
             for name in passes]
    return rows


def _pass_rows(inputs: ProtocolInputs, name: str, made, n: int) -> list[MetricRow]:
    """NFEs of one pass (extra per sample, ratio to its sampler's) and how far it moved x0 from plain."""
    cfg, seed = inputs.config, inputs.config.seed
    base_nfe, extra = made.nfe["sampler"], made.nfe.get("guidance", 0.0)
    moved = (made.x0 - inputs.generation.x0[:n]).abs().flatten(1)  # [n, C*H*W]
    per_sample_change = moved.mean(1).double().numpy()  # [n]
    return [MetricRow(NAME, name, "extra_nfe_per_sample", extra, n=n, seed=seed),
            MetricRow(NAME, name, "nfe_ratio", (base_nfe + extra) / base_nfe, n=n, seed=seed),
            row_from_ci(NAME, name, "mean_abs_change_x0",
                        bootstrap_ci(np.mean, per_sample_change, n_boot=cfg.bootstrap, seed=seed), n, seed),
            MetricRow(NAME, name, "fraction_changed", float((moved.amax(1) > 1e-6).float().mean()), n=n, seed=seed)]
