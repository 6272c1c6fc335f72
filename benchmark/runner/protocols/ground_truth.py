"""Protocol 6: ground truth on the analytic Gaussian-mixture preset.

During the generation pass an observer records the oracle's exact Var[x0 | x_t] summed over every step of
the trajectory; after it, the exact log-density of every generated x0. (Summed over all steps, not only
an estimator's window: the mixture's components are isotropic, so once the posterior has settled on one
component, in the last steps, Var[x0 | x_t] = s^2 s_t^2 / v_t is the same for every pixel and carries no
pixel ranking; the pixel structure lives in the steps where components still compete.)
Per estimator: mean per-image Spearman correlation of its pixel map with the true posterior variance map,
Spearman correlation of its score with -log p(x0), and the AUROC of its score for detecting the
lowest-density fraction of the samples (label 1 = among the lowest-density samples).
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from benchmark.runner.protocols.base import ProtocolInputs
from benchmark.runner.table import MetricRow, row_from_ci
from estimators.base import EstimatorResult, UncertaintyEstimator, scale_window
from metrics import bootstrap_ci

NAME = "ground_truth"
ORACLE = "_oracle"


class OracleObserver(UncertaintyEstimator):
    """Sums the oracle's exact per-pixel Var[x0 | x_t] over the window's steps (not a registered estimator).

    The default window (0, 50) covers the whole trajectory.
    """

    name = ORACLE
    uses_network = False

    def __init__(self, oracle, window: tuple[int, int] = (0, 50)) -> None:
        self.oracle, self.window = oracle, window

    def begin(self, batch) -> None:
        super().begin(batch)
        self.steps = scale_window(self.window, batch.num_steps)
        self.total: torch.Tensor | None = None

    def observe(self, step) -> None:
        if self.steps[0] <= step.index < self.steps[1]:
            var = self.oracle.posterior_variance(step.x_t.to(torch.float64), step.t).to(step.x_t.dtype)
            self.total = var if self.total is None else self.total + var

    def result(self) -> EstimatorResult:
        assert self.total is not None, "the window had no steps"
        return EstimatorResult(pixel=self.total, score=self.total.flatten(1).sum(1))


def record_log_density(oracle):
    """after_batch hook of the generation pass: store log p(x0) of every generated sample."""

    def hook(x0: torch.Tensor, record: dict) -> None:
        record["extras"]["log_density"] = oracle.log_density(x0.cpu()).to(torch.float64)

    return hook


def run(inputs: ProtocolInputs, params: dict) -> list[MetricRow]:
    gen, seed = inputs.generation, inputs.config.seed
    if ORACLE not in gen.pixels or "log_density" not in gen.extras:
        return []
    true_var = gen.pixels[ORACLE].flatten(1).numpy()
    neg_log_p = -gen.extras["log_density"].numpy()
    frac = float(params["lowest_density_fraction"])
    cutoff = np.quantile(neg_log_p, 1 - frac)
    label = (neg_log_p >= cutoff).astype(int)
    rows = []
    for name in inputs.estimator_names:
        if name == ORACLE:
            continue
        maps = gen.pixels[name].flatten(1).numpy()
        per_image = np.array([_spearman(m, v) for m, v in zip(maps, true_var)])
        rows.append(row_from_ci(NAME, name, "spearman_pixel_vs_true_var",
                                bootstrap_ci(np.nanmean, per_image, n_boot=inputs.config.bootstrap, seed=seed),
                                gen.size, seed))
        score = gen.scores[name].numpy()
        rows.append(row_from_ci(NAME, name, "spearman_score_vs_neg_log_density",
                                bootstrap_ci(_spearman, score, neg_log_p, n_boot=inputs.config.bootstrap, seed=seed),
                                gen.size, seed))
        rows.append(row_from_ci(NAME, name, f"auroc_lowest_{int(round(frac * 100))}pct_density",
                                bootstrap_ci(_auroc, label.astype(np.float64), score, n_boot=inputs.config.bootstrap,
                                             seed=seed), gen.size, seed))
    return rows


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def _auroc(label: np.ndarray, score: np.ndarray) -> float:
    if label.min() == label.max():
        return float("nan")
    return float(roc_auc_score(label.astype(int), score))
