"""Protocol: per-sample failure labels on image presets, and how well each score finds the failures.

What it measures. Every generated sample of the run gets two exact-by-definition labels:
- `off_manifold`: outside every real test image's k-NN ball in the feature space `space`, as improved precision
  (Kynkaanniemi et al. 2019) defines the real manifold: with rho_k(r) the distance from real feature r to its k-th
  nearest other real feature,  off(f) = 1  iff  ||f - r|| > rho_k(r) for every real r;
- `misclassified` (class-conditional models only): the domain classifier's most probable class of the sample is
  not the class it was conditioned on.
For each label set (benchmark.protocols.label_rows): `failure_rate_<label>` with its Wilson interval (estimator
`(samples)`), and per estimator `auroc_<label>` (stratified bootstrap interval, Mann-Whitney p of AUROC = 0.5 and
its detectable effect: the verdict tests against the floor), `auprc_<label>`, `removed_at_retention_<r>_<label>`
and against the best trivial baseline `auroc_<label>_delta_vs_trivial`, `auprc_<label>_delta_vs_trivial` (paired
bootstrap; these supersede the floor test in the family). Intervals cover the sampling variation over the N
generated samples, the real manifold and the classifier held fixed. A label set without failures (or without
successes) writes a not-run record (`no_failures[<label>]`) instead of rows, so the report says so.
"""
from __future__ import annotations

import numpy as np
import torch

from benchmark.execution.features import GENERATED, REAL_TEST
from benchmark.errors import ConfigError
from benchmark.protocols.base import ProtocolInputs
from benchmark.config.schema import PROTOCOL_KEYS
from benchmark.protocols.label_rows import label_rows
from benchmark.protocols.table import MetricRow, not_run_row
from metrics.pr_bootstrap import wilson_interval
from metrics.precision_recall import fixed_set_radii, inside_manifold, real_and_fake_tensors

NAME = "failure_labels"
SAMPLES = "(samples)"


def features_read(params: dict, config) -> set[tuple[str, str]]:
    """The generated and real test features of `space` (the real manifold and the samples on it; the default space
    where the table gives none)."""
    space = str({**PROTOCOL_KEYS[NAME], **params}["space"])
    return {(space, GENERATED), (space, REAL_TEST)}


def check_can_run(params: dict, preset) -> None:
    """Refuse a space without a real image set's features (the manifold needs them)."""
    if getattr(preset, "data", None) is None:
        raise ConfigError("protocols.failure_labels", getattr(preset, "name", preset), "a preset with real images "
                          "(the real manifold is made of their features)", "add a [data] section or remove the table")


def off_manifold(real: torch.Tensor, fake: torch.Tensor, k: int) -> np.ndarray:
    """1.0 where a fake feature [M, D] lies in no real k-NN ball (module doc), else 0.0: [M]."""
    radii = fixed_set_radii(real, k)
    return (~inside_manifold(fake, real, radii)).double().cpu().numpy()


def misclassified(probabilities: torch.Tensor, conditions: torch.Tensor) -> np.ndarray:
    """1.0 where argmax_c p(c | x) differs from the conditioning class: [N]."""
    return (probabilities.argmax(dim=1).cpu() != conditions.cpu()).double().numpy()


def labels(inputs: ProtocolInputs, params: dict) -> dict[str, np.ndarray]:
    """{label name: [N] 0/1} for the run's generated samples (module doc); `misclassified` only with a classifier
    and conditioning labels."""
    space, gen = str(params["space"]), inputs.generation
    real, fake = real_and_fake_tensors(inputs.real_features[space], inputs.fake_features[space])
    found = {"off_manifold": off_manifold(real, fake, int(params["k"]))}
    classifier = inputs.preset.load_classifier() if gen.y is not None else None
    if classifier is not None:
        x0 = gen.x0.to(next(classifier.parameters()).device)
        found["misclassified"] = misclassified(classifier.predict(x0), gen.y)
    return found


def run(inputs: ProtocolInputs, params: dict) -> list[MetricRow]:
    cfg, gen = inputs.config, inputs.generation
    space = str(params["space"])
    if inputs.real_features.get(space) is None:
        return [not_run_row(NAME, "no_real_features", space, cfg.seed)]
    trivial = [e.name for e in inputs.make_estimators() if getattr(e, "trivial_baseline", False)]
    scores = {name: gen.scores[name].double().numpy() for name in inputs.estimator_names}
    rows: list[MetricRow] = []
    for name, label in labels(inputs, params).items():
        low, high = wilson_interval(int(label.sum()), int(label.size), 0.05)
        rows.append(MetricRow(NAME, SAMPLES, f"failure_rate_{name}[{space}]", float(label.mean()), low, high,
                              int(label.size), cfg.seed))
        if label.min() == label.max():
            rows.append(not_run_row(NAME, "no_failures" if label.max() == 0 else "no_successes", name, cfg.seed))
            continue
        rows += label_rows(NAME, space, name, scores, label, trivial, float(params["retention"]), cfg.bootstrap,
                           cfg.seed)
    return rows
