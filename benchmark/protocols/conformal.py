"""Protocol: conformal calibration — does a map turn into intervals that cover, and are they narrower than constant?

What it measures (maths in benchmark.protocols.conformal_math).
- Pixels: the sparsification protocol's denoised real images (its settings, [protocols.sparsification] or its
  defaults; the first noise draw of each image) give residuals r = x0_hat - x0. Each estimator's map, as a standard
  deviation u = sqrt(map), is calibrated by split conformal on a seeded random half of the images (alpha =
  `alpha`), and judged on the other half:
  `pixel_coverage` — the share of test pixels inside x0_hat -/+ q u, with a percentile bootstrap interval over
  test images (pixels of one image move together); it covers the coverage of this calibration on new images of
  the same kind. The guarantee is >= 1 - alpha for exchangeable pixels.
  `pixel_width_ratio` — mean interval width over the constant map's width at the same alpha on the same split
  (below 1: the map is informative), bootstrap interval over test images (both q fixed).
- Samples (with `samples = true`): the run's generated samples carry failure labels (benchmark.protocols.
  failure_labels: off the real k-NN manifold in `space`, or misclassified for their condition); a seeded half
  calibrates the threshold on each score by conformal risk control, the other half gives `kept_failure_risk` (the
  share of samples that are kept failures; guaranteed <= alpha in expectation), `kept_failure_rate` (the failure
  rate among the kept) and `kept_share`, each with a Wilson interval over the test half (the threshold fixed).
"""
from __future__ import annotations

import numpy as np

from benchmark.config.schema import PROTOCOL_KEYS
from benchmark.execution.features import GENERATED, REAL_TEST
from benchmark.protocols import failure_labels, sparsification
from benchmark.protocols.base import ProtocolInputs
from benchmark.protocols.conformal_math import conformal_quantile, nonconformity, risk_control_threshold
from benchmark.protocols.table import MetricRow, not_run_row, row_from_ci
from metrics import bootstrap_ci
from metrics.pr_bootstrap import wilson_interval

NAME = "conformal"
SCALE_FLOOR = 1e-12  # u below it counts as it (benchmark.protocols.conformal_math.nonconformity's floor)


def features_read(params: dict, config) -> set[tuple[str, str]]:
    """The failure labels' features when `samples` is on, else none (the defaults where the table gives none)."""
    params = {**PROTOCOL_KEYS[NAME], **params}
    return {(str(params["space"]), GENERATED), (str(params["space"]), REAL_TEST)} if params["samples"] else set()


def sparsification_params(config) -> dict:
    return config.protocols.get("sparsification") or dict(PROTOCOL_KEYS["sparsification"])


def halves(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(calibration, test) index arrays: a seeded permutation of 0..n-1 cut in half."""
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[: n // 2]), np.sort(order[n // 2:])


def run(inputs: ProtocolInputs, params: dict) -> list[MetricRow]:
    rows = pixel_rows(inputs, params)
    if params["samples"]:
        rows += sample_rows(inputs, params)
    return rows


def pixel_rows(inputs: ProtocolInputs, params: dict) -> list[MetricRow]:
    """`pixel_coverage` and `pixel_width_ratio` per estimator (module doc)."""
    cfg, alpha = inputs.config, float(params["alpha"])
    x0, x_hat, maps, _ = sparsification.denoise_real(inputs, sparsification_params(cfg))
    n = x0.shape[0]
    residual = (x_hat[:n] - x0).double().cpu().flatten(1).numpy()
    cal, test = halves(n, cfg.seed)
    q_const = conformal_quantile(np.abs(residual[cal]), alpha)
    rows = []
    for name in inputs.estimator_names:
        raw = maps[name][:n].double().cpu().flatten(1).numpy()
        u = np.maximum(np.sqrt(np.clip(raw, 0.0, None)), SCALE_FLOOR)  # the floor of `nonconformity`, on both halves
        q = conformal_quantile(nonconformity(residual[cal], u[cal]), alpha)
        if (raw < 0).any() or not np.isfinite(q):  # a negated map (a ranking, no scale), or too few images
            rows.append(not_run_row(NAME, "no_interval_scale", name, cfg.seed))
            continue
        inside = (np.abs(residual[test]) <= q * u[test]).mean(axis=1)  # per test image
        coverage = bootstrap_ci(np.mean, inside, n_boot=cfg.bootstrap, seed=cfg.seed)
        width = (q * u[test]).mean(axis=1)
        ratio = bootstrap_ci(lambda w: float(np.mean(w)) / q_const if q_const > 0 else float("nan"), width,
                             n_boot=cfg.bootstrap, seed=cfg.seed)
        pixels = int(residual[test].size)
        rows.append(row_from_ci(NAME, name, f"pixel_coverage[alpha={alpha:g}]", coverage, pixels, cfg.seed))
        rows.append(row_from_ci(NAME, name, f"pixel_width_ratio[alpha={alpha:g}]", ratio, pixels, cfg.seed))
    return rows


def wilson_row(estimator: str, metric: str, hits: np.ndarray, seed: int) -> MetricRow:
    low, high = wilson_interval(int(hits.sum()), int(hits.size), 0.05) if hits.size else (np.nan, np.nan)
    return MetricRow(NAME, estimator, metric, float(hits.mean()) if hits.size else np.nan, low, high, int(hits.size),
                     seed)


def sample_rows(inputs: ProtocolInputs, params: dict) -> list[MetricRow]:
    """Conformal risk control of each score's filter on the failure labels (module doc)."""
    cfg, gen, alpha = inputs.config, inputs.generation, float(params["alpha"])
    found = failure_labels.labels(inputs, {"space": params["space"], "k": params["k"]})
    failed = np.maximum.reduce(list(found.values()))
    cal, test = halves(gen.size, cfg.seed + 1)
    rows = []
    for name in inputs.estimator_names:
        score = gen.scores[name].double().numpy()
        lam = risk_control_threshold(score[cal], failed[cal], alpha)
        kept = score[test] <= lam
        tag = f"[alpha={alpha:g}]"
        rows.append(wilson_row(name, "kept_failure_risk" + tag, (kept & (failed[test] == 1)).astype(float), cfg.seed))
        rows.append(wilson_row(name, "kept_failure_rate" + tag, failed[test][kept], cfg.seed))
        rows.append(wilson_row(name, "kept_share" + tag, kept.astype(float), cfg.seed))
    return rows

