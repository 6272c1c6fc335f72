"""Issue 32 point 4: conformal calibration. Coverage >= 1 - alpha on a known case over 300 random splits (within
binomial bounds), the width ratio of an informative map below 1 and of a constant map at 1, risk control by brute
force, and a reduced run on the digits preset."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom

from benchmark.cli import main
from benchmark.protocols.conformal_math import conformal_quantile, nonconformity, risk_control_threshold

ALPHA = 0.1


def test_split_conformal_covers_on_a_known_case():
    """Heteroscedastic residuals r ~ N(0, sigma^2), sigma known per pixel; u = sigma^0.5 (a wrong but informative
    scale). Over 300 random splits of 200 pixels, pooled test coverage >= 1 - alpha within the binomial's lower
    0.1 % bound, and every split's expected coverage <= 1 - alpha + 1/(n+1) on average."""
    rng = np.random.default_rng(0)
    covered = total = 0
    for _ in range(300):
        sigma = rng.uniform(0.1, 2.0, 200)
        r = rng.normal(0, sigma)
        u = np.sqrt(sigma)
        order = rng.permutation(200)
        cal, test = order[:100], order[100:]
        q = conformal_quantile(nonconformity(r[cal], u[cal]), ALPHA)
        covered += int((np.abs(r[test]) <= q * u[test]).sum())
        total += test.size
    assert covered >= binom.ppf(0.001, total, 1 - ALPHA)
    assert covered / total <= 1 - ALPHA + 1 / 101 + 3 * math.sqrt(0.09 / total)


def test_quantile_rank_and_infinite_case():
    s = np.arange(1, 10, dtype=float)  # n = 9: ceil(10 * 0.9) = 9 -> the largest
    assert conformal_quantile(s, 0.1) == 9.0
    assert conformal_quantile(s, 0.05) == math.inf  # ceil(10 * 0.95) = 10 > 9


def test_width_ratio_of_an_oracle_map_is_below_one():
    rng = np.random.default_rng(1)
    sigma = rng.uniform(0.05, 2.0, 20000)
    r = rng.normal(0, sigma)
    cal, test = np.arange(10000), np.arange(10000, 20000)
    q = conformal_quantile(nonconformity(r[cal], sigma[cal]), ALPHA)
    q_const = conformal_quantile(np.abs(r[cal]), ALPHA)
    assert np.mean(q * sigma[test]) / q_const < 0.9
    ones = np.ones_like(sigma)
    assert conformal_quantile(nonconformity(r[cal], ones[cal]), ALPHA) == q_const  # a constant map: ratio 1


def test_risk_control_threshold_by_brute_force():
    rng = np.random.default_rng(2)
    for _ in range(50):
        n = 40
        s = rng.integers(0, 15, n).astype(float)
        f = (rng.random(n) < 0.3).astype(float)
        lam = risk_control_threshold(s, f, 0.2)
        ok = [c for c in np.unique(s) if (np.sum(f * (s <= c)) + 1) / (n + 1) <= 0.2]
        assert lam == (max(ok) if ok else -math.inf)


def test_risk_control_holds_over_random_splits():
    """E[kept failure risk] <= alpha: mean over 300 splits of an informative score on 30 % failures."""
    rng = np.random.default_rng(3)
    risks = []
    for _ in range(300):
        f = (rng.random(200) < 0.3).astype(float)
        s = rng.normal(size=200) + 1.5 * f
        lam = risk_control_threshold(s[:100], f[:100], ALPHA)
        risks.append(np.mean((s[100:] <= lam) & (f[100:] == 1)))
    assert np.mean(risks) <= ALPHA + 3 * np.std(risks) / math.sqrt(300)


def test_reduced_run_on_digits(tmp_path: Path):
    config = tmp_path / "conformal.toml"
    config.write_text("""
[run]
preset = "digits"
steps = 20
num_samples = 40
keep = 30
batch_size = 40
bootstrap = 20
features = ["classifier"]
[estimators.x0_trajectory]
[estimators.local_variance]
[protocols.sparsification]
num_images = 16
noise_draws = 1
[protocols.conformal]
alpha = 0.1
""")
    out = tmp_path / "run"
    assert main(["run", "--config", str(config), "--out", str(out), "--quiet"]) == 0
    frame = pd.read_csv(out / "metrics.csv")
    rows = frame[frame.protocol == "conformal"].set_index(["estimator", "metric"])
    for name in ("x0_trajectory", "local_variance", "random"):
        coverage = rows.loc[(name, "pixel_coverage[alpha=0.1]")]
        assert 0.5 < coverage.value <= 1 and coverage.ci_low <= coverage.value <= coverage.ci_high
        assert rows.loc[(name, "pixel_width_ratio[alpha=0.1]")].value > 0
        assert 0 <= rows.loc[(name, "kept_share[alpha=0.1]")].value <= 1


def test_a_negated_map_gets_no_interval_and_a_zero_map_acts_as_a_constant_one(monkeypatch, tmp_path):
    """A negated map (negative values) is no interval scale: the protocol records why instead of reporting coverage
    0; an all-zero map is floored like the nonconformity score, so it gives a constant map's intervals."""
    from types import SimpleNamespace

    import torch

    from benchmark.protocols import conformal

    rng = np.random.default_rng(0)
    x0 = torch.from_numpy(rng.normal(size=(40, 1, 4, 4)))
    x_hat = x0 + torch.from_numpy(rng.normal(size=x0.shape))
    maps = {"plain": torch.ones_like(x0), "negated": -torch.ones_like(x0), "zero": torch.zeros_like(x0)}
    monkeypatch.setattr(conformal.sparsification, "denoise_real", lambda inputs, params: (x0, x_hat, maps, 500))
    inputs = SimpleNamespace(config=SimpleNamespace(seed=0, bootstrap=20, protocols={}), estimator_names=list(maps))
    rows = {(r.estimator, r.metric): r for r in conformal.pixel_rows(inputs, {"alpha": 0.1})}
    assert ("(not run)", "no_interval_scale[negated]") in rows
    assert not any(name == "negated" for name, _ in rows)
    for metric in ("pixel_coverage[alpha=0.1]", "pixel_width_ratio[alpha=0.1]"):
        assert rows[("zero", metric)].value == pytest.approx(rows[("plain", metric)].value)
    assert rows[("plain", "pixel_width_ratio[alpha=0.1]")].value == pytest.approx(1.0)
