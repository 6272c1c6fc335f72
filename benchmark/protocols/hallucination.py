"""Protocol: hallucination detection with exact labels (Aithal et al., NeurIPS 2024), per sampler and step count.

What it measures. On a preset whose oracle labels samples exactly (`grid25`: Aithal et al.'s grid of 25
Gaussians in 8x8 images, benchmark/data/grid25.py), N samples are drawn with every (sampler, steps) pair of
`samplers` x `steps` from the same x_T (the generation pass's initial noise, sample indices 0..N-1; the pair of
the run itself reuses the generation pass), every estimator observing. A sample is a hallucination when its
in-plane point lies farther than `k_sigma` sigma from every mode (label 1), in support otherwise. Rows, with the
pair as the tag (`[ddpm_50]`):
- `hallucination_rate` of the learned model (estimator `(samples)`) with its Wilson 95 % interval (Binomial over
  the N samples), and, with `exact_contrast`, the same rate of the exact-score model (`(exact score)`: the
  oracle's eps*, no learned smoothing) from the same x_T; the Wilson interval covers the rate of the model's
  sampler at that step count;
- for every estimator (benchmark.protocols.label_rows): `auroc_hallucination` with its stratified bootstrap
  interval and the Mann-Whitney p of AUROC = 0.5 (the floor; a verdict test), `auprc_hallucination` (a score
  without information scores the rate), `removed_at_retention_0.96_hallucination` (the share of hallucinations
  removed when the threshold keeps 96 % of the in-support samples: the paper's operating point, where it reports
  "over 95 %" for the x0 trajectory's variance), and against the best trivial baseline (e.g. distance_to_mean)
  `auroc_hallucination_delta_vs_trivial` / `auprc_hallucination_delta_vs_trivial` with a paired bootstrap: the
  verdicts where trivial baselines are configured. Intervals cover the sampling variation over the N samples
  (the model fixed); not the Monte-Carlo error of an estimator's own draws.
A pair without hallucinations (or without in-support samples) has no AUROC: it writes a not-run record
(`no_hallucinations[<pair>]`) that the report and the manifest show, never a silent gap.
"""
from __future__ import annotations

import numpy as np
import torch

from benchmark.errors import ConfigError
from benchmark.protocols.base import ProtocolInputs
from benchmark.protocols.label_rows import label_rows
from benchmark.protocols.parts import Part
from benchmark.protocols.table import MetricRow, not_run_row
from benchmark.sampling import initial_noise, sample
from metrics.pr_bootstrap import wilson_interval

NAME = "hallucination"
SAMPLES, EXACT = "(samples)", "(exact score)"


def features_read(params: dict, config) -> set[tuple[str, str]]:
    """(space, split) pairs of the run's features this protocol reads: none (the oracle's labels only)."""
    return set()


def check_can_run(params: dict, preset) -> None:
    """Refuse (exit 2, before anything is written) a preset whose oracle has no exact hallucination labels."""
    oracle = getattr(preset, "oracle", lambda: None)()
    if oracle is None or not callable(getattr(oracle, "hallucination_labels", None)):
        raise ConfigError("protocols.hallucination", getattr(preset, "name", preset), "a preset whose oracle labels "
                          "hallucinations exactly (grid25)", 'set run.preset = "grid25" or remove [protocols.hallucination]')


def tag(sampler: str, steps: int) -> str:
    return f"{sampler}_{int(steps)}"


def pairs(params: dict) -> list[tuple[str, int]]:
    return [(str(s), int(n)) for s in params["samplers"] for n in params["steps"]]


def parts(inputs: ProtocolInputs, params: dict) -> list[Part]:
    """One part per (sampler, steps) pair (each samples its own pass unless it is the run's)."""
    n = int(params["num_samples"])
    return [Part(lambda artifacts, s=s, k=k: pair_rows(inputs, params, s, k), cost=0.02 * n * k / 50)
            for s, k in pairs(params)]


def run(inputs: ProtocolInputs, params: dict) -> list[MetricRow]:
    return [row for part in parts(inputs, params) for row in part.run({})]


def draw(inputs: ProtocolInputs, model, sampler: str, steps: int, n: int, estimators: bool
         ) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
    """(x0 [n,...] on the CPU, {estimator: score [n]}) of `model` from the generation pass's x_T of samples
    0..n-1; the run's own pair with the run's model reads the generation pass."""
    cfg, gen = inputs.config, inputs.generation
    if estimators and (sampler, steps) == (cfg.sampler, cfg.steps) and n <= gen.size:
        return gen.x0[:n].cpu(), {e: gen.scores[e][:n].double().numpy() for e in inputs.estimator_names}
    xs, scores = [], {}
    for start in range(0, n, cfg.batch_size):
        idx = torch.arange(start, min(start + cfg.batch_size, n))
        x_T = initial_noise(cfg.seed, idx, model.sample_shape).to(model.device)
        with torch.no_grad():
            out = sample(model, x_T, sampler=sampler, steps=steps, seed=cfg.seed, indices=idx,
                         estimators=inputs.make_estimators() if estimators else ())
        xs.append(out.x0.detach().cpu())
        for name, result in out.uncertainty.items():
            scores.setdefault(name, []).append(result.score.detach().cpu().double())
    return torch.cat(xs), {k: torch.cat(v).numpy() for k, v in scores.items() if not k.startswith("_")}


def rate_row(estimator: str, metric: str, label: np.ndarray, seed: int) -> MetricRow:
    """The share of label 1 with its Wilson 95 % interval."""
    low, high = wilson_interval(int(label.sum()), int(label.size), 0.05)
    return MetricRow(NAME, estimator, metric, float(label.mean()), low, high, int(label.size), seed)


def pair_rows(inputs: ProtocolInputs, params: dict, sampler: str, steps: int) -> list[MetricRow]:
    """Every row of one (sampler, steps) pair (module doc)."""
    cfg, n, k = inputs.config, int(params["num_samples"]), float(params["k_sigma"])
    oracle = inputs.preset.oracle()
    name = tag(sampler, steps)
    x0, scores = draw(inputs, inputs.model, sampler, steps, n, estimators=True)
    label = oracle.hallucination_labels(x0, k).numpy()
    rows = [rate_row(SAMPLES, f"hallucination_rate[{name}]", label, cfg.seed)]
    if bool(params["exact_contrast"]):
        exact_x0, _ = draw(inputs, oracle.to(inputs.model.device), sampler, steps, n, estimators=False)
        rows.append(rate_row(EXACT, f"hallucination_rate[{name}]", oracle.hallucination_labels(exact_x0, k).numpy(),
                             cfg.seed))
    if label.min() == label.max():
        return rows + [not_run_row(NAME, "no_hallucinations" if label.max() == 0 else "no_in_support", name,
                                   cfg.seed)]
    trivial = [e.name for e in inputs.make_estimators() if getattr(e, "trivial_baseline", False)]
    return rows + label_rows(NAME, name, "hallucination", scores, label, trivial, float(params["retention"]),
                             cfg.bootstrap, cfg.seed)

