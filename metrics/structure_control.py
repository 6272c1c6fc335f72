"""Structure-controlled agreement of an uncertainty map with the error: what a map knows beyond trivial image maps.

The per-pixel error of a denoised image concentrates where the image has structure (object pixels, edges), so a
map that is only an edge detector ranks pixels well on sparsification without knowing anything about the model.
The partial rank correlation asks what the map adds once the trivial maps are known. For one image with P pixels,
uncertainty u, error e and trivial maps c_1..c_k (e.g. the local variance and the gradient magnitude of x0_hat):

    r_u, r_e, r_j = ranks of u, e, c_j over the P pixels (average ranks for ties)
    Z = [1, r_1, ..., r_k]                                   [P, k + 1]
    res_u = r_u - Z beta_u,  res_e = r_e - Z beta_e          (least-squares residuals on Z)
    partial Spearman(u, e | c) = Pearson(res_u, res_e)

(the partial rank correlation, Kendall & Stuart vol. 2, 27.22; with one control it equals
(rho_ue - rho_uc rho_ec) / sqrt((1 - rho_uc^2)(1 - rho_ec^2)) with Spearman's rho). A map equal to a trivial map,
or to any monotone-linear mix of their ranks, gets 0; a map that carries the part of the error the trivial maps
miss gets > 0. The protocol averages it over images and tests the mean against 0 with a one-sample t-test over
images (metrics.significance.paired_t_test): H0 = "beyond the trivial maps, the map's ranking carries no
information about the error".
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.stats import rankdata

from benchmark.errors import ConfigError


def _rows(values, field: str) -> np.ndarray:
    """[B, ...] numpy / tensor -> [B, P] float64."""
    array = values.detach().cpu().double().numpy() if isinstance(values, torch.Tensor) else np.asarray(values, float)
    if array.ndim < 2:
        raise ConfigError(field, f"array of shape {array.shape}", "a per-pixel array [B, ...] with B >= 1 images")
    return array.reshape(array.shape[0], -1)


def partial_spearman_per_image(uncertainty, error, controls) -> np.ndarray:
    """Partial Spearman correlation of `uncertainty` and `error` given the `controls` maps, per image -> [B]
    (module doc; NaN for an image where a residual is constant, e.g. a map that is a function of a control).

    uncertainty, error: [B, ...]; controls: a list of maps [B, ...] of the same shape (may be empty: then the
    plain per-image Spearman correlation)."""
    u, e = _rows(uncertainty, "uncertainty"), _rows(error, "error")
    cs = [_rows(c, "controls") for c in controls]
    if u.shape != e.shape or any(c.shape != u.shape for c in cs):
        raise ConfigError("controls", f"shapes {u.shape}, {e.shape}, {[c.shape for c in cs]}",
                          "the uncertainty, the error and every control map of the same shape [B, ...]")
    out = np.full(u.shape[0], np.nan)
    for b in range(u.shape[0]):
        design = np.column_stack([np.ones(u.shape[1])] + [rankdata(c[b]) for c in cs])
        both = np.column_stack([rankdata(u[b]), rankdata(e[b])])
        coef, *_ = np.linalg.lstsq(design, both, rcond=None)
        res = both - design @ coef
        res -= res.mean(axis=0)
        norms = np.sqrt((res ** 2).sum(axis=0))
        if np.all(norms > 1e-9 * np.sqrt(u.shape[1]) * u.shape[1]):
            out[b] = float(res[:, 0] @ res[:, 1] / (norms[0] * norms[1]))
    return out


def expected_error(x0, x0_hats) -> torch.Tensor:
    """Per-pixel root expected squared error of a denoiser given the image and t, from D noise draws:

        target(p) = sqrt( (1/D) sum_d (x0_hat_d(p) - x0(p))^2 )       x0 [B,C,H,W], x0_hats [D,B,C,H,W]

    an unbiased estimate of E_noise[(x0_hat(p) - x0(p))^2] under the square root (D = 1: one draw's |error|)."""
    return (x0_hats - x0.unsqueeze(0)).pow(2).mean(dim=0).sqrt()
