"""The Markdown report of a run: tables per protocol plus the plots."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import torch

from benchmark.runner import plots
from benchmark.runner.io import save_text
from benchmark.runner.protocols.base import ProtocolInputs
from benchmark.sampling import initial_labels, initial_noise, sample

STEPWISE_SAMPLES = 4


def format_value(value: float, low: float, high: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    text = f"{value:.4g}"
    if not (math.isnan(low) or math.isnan(high)):
        text += f" [{low:.4g}, {high:.4g}]"
    return text


def protocol_table(frame: pd.DataFrame, protocol: str) -> str:
    part = frame[frame.protocol == protocol]
    if part.empty:
        return ""
    cells = part.assign(cell=[format_value(v, lo, hi) for v, lo, hi in zip(part.value, part.ci_low, part.ci_high)])
    wide = cells.pivot_table(index="estimator", columns="metric", values="cell", aggfunc="first", sort=False)
    wide = wide[[m for m in dict.fromkeys(part.metric) if m in wide.columns]]
    return wide.reset_index().to_markdown(index=False)


def write_report(inputs: ProtocolInputs, frame: pd.DataFrame) -> Path:
    cfg, out, gen = inputs.config, inputs.run_dir, inputs.generation
    figures = _figures(inputs)
    lines = [f"# diffusion-uq-bench report: {cfg.name}", "",
             f"Preset `{cfg.preset}`, sampler `{cfg.sampler}` with {cfg.steps} steps, N = {cfg.num_samples} samples, "
             f"K = {cfg.keep} kept, seed {cfg.seed}, feature spaces {', '.join(cfg.features)}, "
             f"{cfg.bootstrap} bootstrap replicates (95% intervals in brackets).", "",
             "Estimators: " + ", ".join(f"`{e.name}` {e.params or ''}" for e in cfg.estimators), ""]
    for protocol in dict.fromkeys(frame.protocol):
        lines += [f"## {protocol}", "", protocol_table(frame, protocol), ""]
    if figures:
        lines += ["## Figures", ""]
        lines += [f"![{p.stem}]({p.relative_to(out).as_posix()})" for p in figures]
        lines.append("")
    lines += ["Tidy numbers: `metrics.csv`; config, versions and timings: `manifest.json`.", ""]
    path = out / "report.md"
    save_text("\n".join(lines), path)
    return path


def _figures(inputs: ProtocolInputs) -> list[Path]:
    out, gen = inputs.run_dir / "plots", inputs.generation
    paths = []
    if "sparsification_curves" in inputs.artifacts:
        paths.append(plots.sparsification_curves(inputs.artifacts["sparsification_curves"], out / "sparsification.png"))
    for space in inputs.fake_features:
        if "fid_curves" in inputs.artifacts:
            paths.append(plots.fid_curves(inputs.artifacts["fid_curves"], space, out / f"fid_vs_kept_{space}.png"))
    per_step = stepwise_uncertainty(inputs)
    if per_step:
        paths.append(plots.stepwise(per_step, out / "stepwise_uncertainty.png"))
    for name in inputs.estimator_names:
        if not name.startswith("_"):
            paths.append(plots.extremes_grid(gen.x0, gen.pixels[name], gen.scores[name], name,
                                             out / f"extremes_{name}.png"))
    return paths


def stepwise_uncertainty(inputs: ProtocolInputs) -> dict[str, dict[int, float]]:
    """Mean per-pixel uncertainty at every denoising step (Fig. 3 of the aleatoric paper) on a few samples.

    Estimators that take `window` and `keep_steps` are re-run with the window covering all steps.
    """
    import estimators

    cfg, model = inputs.config, inputs.model
    chosen = []
    for spec in cfg.estimators:
        accepted = estimators.parameters(spec.name)
        if "window" in accepted and "keep_steps" in accepted:
            params = {k: (tuple(v) if isinstance(v, list) else v) for k, v in spec.params.items()}
            chosen.append(estimators.create(spec.name, **{**params, "window": (0, 50), "keep_steps": True}))
    if not chosen:
        return {}
    idx = torch.arange(STEPWISE_SAMPLES)
    x_T = initial_noise(cfg.seed, idx, model.sample_shape).to(model.device)
    y = initial_labels(cfg.seed, idx, model.num_classes).to(model.device) if model.num_classes else None
    result = sample(model, x_T, sampler=cfg.sampler, steps=cfg.steps, estimators=chosen, y=y, seed=cfg.seed, indices=idx)
    return {name: {int(t): float(m.mean()) for t, m in (res.per_step or {}).items()}
            for name, res in result.uncertainty.items()}
