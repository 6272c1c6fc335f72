"""Helpers shared by the protocols that use the uncertainty (augmentation, rectification)."""
from __future__ import annotations

import numpy as np
import torch

from benchmark.protocols.table import MetricRow, row_from_ci
from benchmark.sampling import sample
from metrics import bootstrap_ci
from metrics.precision_recall import inside_manifold, knn_squared_radii, real_and_fake_tensors
from metrics.significance import paired_t_test


def to_pixels(model, x: torch.Tensor) -> torch.Tensor:
    """Images [B,C,H,W] of model states: decoded for a latent model (one with `decode`), else unchanged."""
    decode = getattr(model, "decode", None)
    return decode(x) if callable(decode) else x


def batched_sample(model, x: torch.Tensor, *, batch_size: int, y: torch.Tensor | None = None,
                   indices: torch.Tensor, make_estimators=None, **kwargs) -> tuple[torch.Tensor, list]:
    """`sample` in chunks of `batch_size` rows; returns (x0 [N,C,H,W], the SampleResult of every chunk).

    `make_estimators()` gives fresh estimators per chunk (None: no estimators)."""
    x0, results = [], []
    for start in range(0, x.shape[0], batch_size):
        stop = min(start + batch_size, x.shape[0])
        res = sample(model, x[start:stop], y=None if y is None else y[start:stop], indices=indices[start:stop],
                     estimators=make_estimators() if make_estimators is not None else (), **kwargs)
        x0.append(res.x0)
        results.append(res)
    return torch.cat(x0), results


def nfe_per_row(results: list, key: str = "sampler") -> float:
    """Row-weighted mean NFE per sample over chunk results (`key`: "sampler" or an estimator name)."""
    rows = [r.x0.shape[0] for r in results]
    values = [r.nfe if key == "sampler" else r.uncertainty[key].nfe for r in results]
    return float(sum(v * n for v, n in zip(values, rows)) / sum(rows))


def precision_membership(real_features: np.ndarray, fake_features: np.ndarray, k: int = 3) -> np.ndarray:
    """Per fake sample: inside the k-NN manifold of the real set? bool [M] (improved precision = its mean,
    Kynkaanniemi et al. 2019 Eq. 1 with the real manifold fixed)."""
    real, fake = real_and_fake_tensors(real_features, fake_features, "cpu")
    with torch.no_grad():
        return inside_manifold(fake, real, knn_squared_radii(real, k)).numpy()


def predicted_classes(classifier, images: torch.Tensor) -> np.ndarray:
    """argmax class of the domain classifier for images [N,C,H,W] in [-1, 1] -> int [N]."""
    return classifier.predict(images.detach().cpu().float()).argmax(-1).numpy()


def mean_row(protocol: str, estimator: str, metric: str, values: np.ndarray, n_boot: int, seed: int) -> MetricRow:
    """Row of mean(values) with a percentile bootstrap interval over the rows of `values` [n]; a paired difference
    (`delta_vs_` in the metric's name) also carries the p-value of the one-sample t-test of mean 0 (its verdict is
    adjusted with the application findings' family, see application_findings)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return MetricRow(protocol, estimator, metric, float(values.mean()) if values.size else float("nan"),
                         n=int(values.size), seed=seed)
    ci = bootstrap_ci(np.mean, values, n_boot=n_boot, seed=seed)
    if "delta_vs_" in metric and np.isfinite(values).sum() >= 2:
        ci.p_value = paired_t_test(values).p_value
    return row_from_ci(protocol, estimator, metric, ci, int(values.size), seed)
