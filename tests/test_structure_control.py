"""Sparsification verdicts against trivial maps: the partial rank correlation against scipy / statsmodels, and
planted signals of known kind (a structure-free signal beats the trivial maps, a pure edge map does not)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from scipy.stats import pearsonr, rankdata, spearmanr
from sklearn.datasets import load_digits

from benchmark.protocols.sparsification import trivial_rows
from estimators.local_variance import local_variance
from metrics import sparsification
from metrics.structure_control import partial_spearman_per_image


def test_partial_spearman_with_one_control_is_the_textbook_formula():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(5, 200))
    u, e = z + rng.normal(size=z.shape), z ** 3 + rng.normal(size=z.shape)
    got = partial_spearman_per_image(u, e, [z])
    for b in range(5):
        r_ue, r_uz, r_ez = (spearmanr(a, c)[0] for a, c in ((u[b], e[b]), (u[b], z[b]), (e[b], z[b])))
        assert got[b] == pytest.approx((r_ue - r_uz * r_ez) / np.sqrt((1 - r_uz**2) * (1 - r_ez**2)), abs=1e-10)


def test_partial_spearman_with_two_controls_matches_ols_residuals():
    import statsmodels.api as sm

    rng = np.random.default_rng(1)
    c1, c2 = rng.normal(size=(2, 3, 150))
    u, e = c1 - c2 + rng.normal(size=c1.shape), c1 * c2 + rng.normal(size=c1.shape)
    got = partial_spearman_per_image(u, e, [c1, c2])
    for b in range(3):
        design = sm.add_constant(np.column_stack([rankdata(c1[b]), rankdata(c2[b])]))
        res_u = sm.OLS(rankdata(u[b]), design).fit().resid
        res_e = sm.OLS(rankdata(e[b]), design).fit().resid
        assert got[b] == pytest.approx(pearsonr(res_u, res_e)[0], abs=1e-10)
    # a map that is a control itself carries nothing beyond it
    assert np.isnan(partial_spearman_per_image(c1, e, [c1, c2])).all()


def _sobel_magnitude(images: torch.Tensor) -> torch.Tensor:
    x = images.numpy()
    gx, gy = ndimage.sobel(x, axis=-1, mode="nearest"), ndimage.sobel(x, axis=-2, mode="nearest")
    return torch.from_numpy(np.sqrt(gx**2 + gy**2))


@pytest.fixture(scope="module")
def planted():
    """Digit images (16 x 16) whose expected error is an edge part plus a structure-free part of known strength."""
    rng = np.random.default_rng(0)
    digits = load_digits().images[:120] / 8.0 - 1.0
    x0 = torch.from_numpy(np.kron(digits, np.ones((2, 2)))).unsqueeze(1)  # [120, 1, 16, 16]
    x_hat = x0 + 0.05 * torch.from_numpy(rng.normal(size=x0.shape))
    edges = _sobel_magnitude(x0)
    free = torch.from_numpy(ndimage.gaussian_filter(rng.normal(size=x0.shape), sigma=(0, 0, 1.5, 1.5))).abs()
    error = edges / edges.mean() + 0.5 * free / free.mean()
    trivial = {"local_variance": local_variance(x_hat), "gradient": _sobel_magnitude(x_hat)}
    return x0, x_hat, error, free, trivial


def _rows(error, maps, trivial):
    every = {**maps, **trivial}
    per_image = {n: np.asarray(sparsification(error, m, fractions=20).ause_per_image) for n, m in every.items()}
    rows = trivial_rows(error, every, per_image, list(trivial), error.shape[0], 0)
    return {(r.estimator, r.metric): r for r in rows}


def test_a_structure_free_signal_beats_the_trivial_maps(planted):
    x0, x_hat, error, free, trivial = planted
    noisy = free + 0.3 * free.std() * torch.from_numpy(np.random.default_rng(2).normal(size=free.shape))
    rows = _rows(error, {"planted": noisy}, trivial)
    partial = rows[("planted", "partial_spearman_given_trivial")]
    assert partial.value > 0.1 and partial.p_value < 1e-6
    assert set(r[1] for r in rows) >= {"ause_delta_vs_local_variance", "ause_delta_vs_gradient",
                                       "ause_delta_vs_trivial"}


def test_a_pure_edge_map_does_not_beat_the_floor(planted):
    """An edge detector of the final sample other than the configured ones (the Laplacian magnitude) is no better
    than the best trivial map on AUSE, and adds nothing significant beyond them."""
    x0, x_hat, error, free, trivial = planted
    laplace = torch.from_numpy(np.abs(ndimage.laplace(x_hat.numpy(), mode="nearest")))
    rows = _rows(error, {"edges": _sobel_magnitude(x_hat), "laplace": laplace}, trivial)
    for name in ("edges", "laplace"):
        delta = rows[(name, "ause_delta_vs_trivial")]
        assert not (delta.value < 0 and delta.p_value < 0.05), name
    assert ("edges", "partial_spearman_given_trivial") not in rows  # the edge map is one of the controls: no residual
    partial = rows[("laplace", "partial_spearman_given_trivial")]
    assert not (partial.value > 0 and partial.p_value < 0.05)
    # while against `random` the same edge maps look excellent (AURG far above 0): the floor that matters is the
    # trivial one
    aurg = np.asarray(sparsification(error, laplace, fractions=20).aurg_per_image)
    assert aurg.mean() > 0.05


def test_the_family_asks_each_question_once(planted):
    """Over null runs (maps without information), AURG and ΔAUSE against the `random` map are one test twice
    (correlation -1: only AURG may be a verdict), while the two sparsification verdicts against the trivial maps
    are distinct questions (|correlation| < 0.99)."""
    from benchmark.report import verdicts

    x0, x_hat, error, free, trivial = planted
    rng = np.random.default_rng(3)
    floor = torch.from_numpy(np.abs(rng.normal(size=error.shape)))
    stats = []
    for _ in range(40):
        null = torch.from_numpy(np.abs(rng.normal(size=error.shape)))
        rows = _rows(error, {"null": null}, trivial)
        aurg = float(np.mean(sparsification(error, null, fractions=20).aurg_per_image))
        delta_random = float(np.mean(sparsification(error, null, fractions=20).ause_per_image)
                             - np.mean(sparsification(error, floor, fractions=20).ause_per_image))
        stats.append((aurg, delta_random, rows[("null", "ause_delta_vs_trivial")].value,
                      rows[("null", "partial_spearman_given_trivial")].value))
    corr = np.corrcoef(np.array(stats).T)
    assert corr[0, 1] < -0.99  # the duplicate the family no longer holds
    assert abs(corr[2, 3]) < 0.99 and abs(corr[0, 3]) < 0.99
    members = {base for protocol, base in verdicts.TESTS if protocol == "sparsification"}
    assert "ause_delta_vs_random" not in members and verdicts.SUPERSEDED_BY[("sparsification", "aurg")] in members
