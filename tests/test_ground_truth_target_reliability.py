"""Epistemic targets with a stated ceiling (issue 24 item 3): split-half reliability and correction for attenuation.

References, none produced by the code under test:
- every correlation is recomputed here with scipy.stats.spearmanr on the arrays themselves;
- classical test theory gives the known answers on the gmm preset: two independent S-draw shared-theta targets
  V, V' correlate, in expectation, as the reliability of one (E corr(V, V') = r_full), which the split-half
  estimate must predict; a map that is (nearly) the noise-free target correlates with V as sqrt(r_full), so its
  correlation corrected for the target's noise is (nearly) 1.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

import estimators
from benchmark.protocols.ground_truth_reliability import reliability_rows, spearman_brown, split_half_target
from benchmark.protocols.ground_truth_targets import shared_theta_draws, shared_theta_spread
from benchmark.sampling import initial_noise

SAMPLES, BLOCK, BLOCKS = 24, 16, 4  # the gmm known-answer test: samples, draws per target, disjoint targets
NAMES = ["target_reliability_pixel_shared_theta_var", "target_reliability_score_shared_theta_var",
         "spearman_pixel_vs_shared_theta_var_corrected", "spearman_score_vs_shared_theta_var_corrected"]


def scipy_rho(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(spearmanr(a.numpy().ravel(), b.numpy().ravel()).statistic)


def scipy_pixel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over images of scipy's per-image Spearman of two [N,C,H,W] maps."""
    return float(np.mean([scipy_rho(u, v) for u, v in zip(a, b)]))


def sums(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).sum(1)


def test_split_halves_are_the_variances_of_the_first_and_second_half_of_the_draws():
    draws = torch.randn(9, 3, 1, 2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    target = split_half_target(draws)
    torch.testing.assert_close(target.full, torch.from_numpy(np.var(draws.numpy(), axis=0, ddof=1)))
    torch.testing.assert_close(target.half_a, torch.from_numpy(np.var(draws[:4].numpy(), axis=0, ddof=1)))
    torch.testing.assert_close(target.half_b, torch.from_numpy(np.var(draws[4:8].numpy(), axis=0, ddof=1)))
    assert split_half_target(draws[:3]).half_a is None  # a half of one draw has no variance


def test_spearman_brown_predicts_the_reliability_of_a_doubled_parallel_measure():
    """Simulation with a known answer: x = T + e, Var T = 1, Var e = 2 per half; the mean of two halves has
    reliability 1 / (1 + 1) = 0.5 and each half 1 / 3; step-up 2 (1/3) / (4/3) = 0.5."""
    rng = np.random.default_rng(0)
    true = rng.normal(size=200_000)
    half_a, half_b = (true + rng.normal(scale=math.sqrt(2), size=true.size) for _ in range(2))
    r_half = float(np.corrcoef(half_a, half_b)[0, 1])
    assert r_half == pytest.approx(1 / 3, abs=0.01)
    assert spearman_brown(r_half) == pytest.approx(0.5, abs=0.01)
    assert spearman_brown(1 / 3) == pytest.approx(0.5) and math.isnan(spearman_brown(-1.0))


def test_reliability_rows_equal_scipy_on_the_arrays():
    gen = torch.Generator().manual_seed(1)
    scale = torch.rand(12, 1, 4, 4, generator=gen, dtype=torch.float64) + 0.2
    draws = scale * torch.randn(41, 12, 1, 4, 4, generator=gen, dtype=torch.float64)  # odd: the last only in full
    target = split_half_target(draws)
    maps = scale + 0.1 * torch.rand(12, 1, 4, 4, generator=gen, dtype=torch.float64)
    scores = sums(maps).numpy()
    rows = {r.metric: r for r in reliability_rows("ground_truth", "e", maps, scores, target, n_boot=50, seed=0)}
    assert list(rows) == NAMES
    a, b = target.half_a, target.half_b
    r_pixel = 2 * scipy_pixel(a, b) / (1 + scipy_pixel(a, b))
    r_score = 2 * scipy_rho(sums(a), sums(b)) / (1 + scipy_rho(sums(a), sums(b)))
    expected = [r_pixel, r_score, scipy_pixel(maps, target.full) / math.sqrt(r_pixel),
                scipy_rho(sums(maps), sums(target.full)) / math.sqrt(r_score)]
    for name, value in zip(NAMES, expected):
        row = rows[name]
        assert row.value == pytest.approx(value, abs=1e-12), name
        assert row.ci_low <= row.value <= row.ci_high and row.n == 12, name
    few = reliability_rows("ground_truth", "e", maps, scores, split_half_target(draws[:3]), n_boot=50, seed=0)
    assert all(math.isnan(r.value) for r in few)  # S < 4: visible NaN rows


@pytest.fixture(scope="module")
def gmm_draws():
    """x0^s [64, B, 1, 16, 16] under 64 shared dropout draws of the gmm preset's network (DDIM, 10 steps), and
    the same through shared_theta_spread for the first 16 (the draws are nested)."""
    from benchmark import presets

    torch.set_num_threads(1)
    model = presets.get("gmm").load_model()
    idx = torch.arange(SAMPLES)
    x_T = initial_noise(0, idx, model.sample_shape)
    mc = estimators.create("mc_dropout", m=2)
    run = dict(sampler="ddim", steps=10, seed=0, indices=idx)
    draws = shared_theta_draws(mc, model, x_T, draws=BLOCK * BLOCKS, **run).double()
    spread = shared_theta_spread(mc, model, x_T, draws=BLOCK, **run).double()
    return draws, spread


def test_shared_theta_draws_are_nested_and_give_the_spread(gmm_draws):
    draws, spread = gmm_draws
    torch.testing.assert_close(draws[:BLOCK].var(dim=0, unbiased=True), spread, rtol=1e-5, atol=1e-9)


def test_an_independent_target_scores_the_reliability_and_an_exact_one_the_ceiling(gmm_draws):
    """Known answers on the gmm preset (dropout posterior, 16-draw targets, 24 samples, DDIM 10 steps; 4 disjoint
    blocks of the 64 draws, each the target once, means over the 4):
    - a second, independent 16-draw target V' used as the estimator: its raw correlation with the target V
      (scipy) is the target's reliability r (the split-half estimate), E corr(V, V') = r. The code corrects
      for the target's noise only (the estimator taken as exact), giving sqrt(r); corrected for the second
      target's own noise too (over the square root of its own split-half reliability) it is 1;
    - a near-exact estimator, the variance over the other 48 draws: the corrected correlation is its own
      correlation with the noise-free target, sqrt(r_48) with r_48 = 3r / (1 + 2r) (Spearman-Brown, 16 -> 48
      draws), about 0.95; over sqrt(r_48) it is 1.
    Tolerances: 0.05 per pixel (24 images x 256 pixels), 0.15 per score (Spearman across 24 samples: a standard
    error of about 0.06 at rho 0.85). Measured: pixel r 0.762, raw 0.758, second corrected 0.868 (sqrt r 0.873),
    exact corrected 0.936 (sqrt r_48 0.952); score r 0.840, raw 0.917, exact corrected 1.023."""
    draws, _ = gmm_draws
    blocks = [split_half_target(draws[k * BLOCK:(k + 1) * BLOCK]) for k in range(BLOCKS)]
    values: dict = {}
    for k, target in enumerate(blocks):
        second = blocks[k ^ 1]  # its paired independent block
        rest = torch.cat([draws[:k * BLOCK], draws[(k + 1) * BLOCK:]]).var(dim=0, unbiased=True)
        for tag, maps, of in (("second", second.full, target), ("exact", rest, target), ("own", second.full, second)):
            for r in reliability_rows("ground_truth", tag, maps, sums(maps).numpy(), of, n_boot=20, seed=0):
                values.setdefault((tag, r.metric), []).append(r.value)  # "own": the second target's reliability
        values.setdefault("raw_pixel", []).append(scipy_pixel(second.full, target.full))
        values.setdefault("raw_score", []).append(scipy_rho(sums(second.full), sums(target.full)))
    mean = {key: float(np.mean(v)) for key, v in values.items()}
    for level, tol in (("pixel", 0.05), ("score", 0.15)):
        reliability = mean[("second", f"target_reliability_{level}_shared_theta_var")]
        own = np.array(values[("own", f"target_reliability_{level}_shared_theta_var")])
        corrected = f"spearman_{level}_vs_shared_theta_var_corrected"
        assert 0.5 < reliability < 1, level
        assert mean[f"raw_{level}"] == pytest.approx(reliability, abs=tol), level
        assert mean[("second", corrected)] == pytest.approx(math.sqrt(reliability), abs=tol), level
        both = np.array(values[("second", corrected)]) / np.sqrt(own)
        assert float(both.mean()) == pytest.approx(1, abs=tol), level
        rest_reliability = np.array([3 * r / (1 + 2 * r) for r in values[("exact", f"target_reliability_{level}"
                                                                                 "_shared_theta_var")]])
        exact = np.array(values[("exact", corrected)])
        assert float(exact.mean()) == pytest.approx(float(np.sqrt(rest_reliability).mean()), abs=tol), level
        assert float((exact / np.sqrt(rest_reliability)).mean()) == pytest.approx(1, abs=tol), level
        assert float(exact.mean()) > 0.9, level  # near the ceiling of 1
