"""Issue 32 point 3: failure labels on image presets. The off-manifold label against a brute-force k-NN ball test,
misclassification against a hand count, and a reduced run on the digits preset writing AUROC rows (or a
not-run record) for both labels, with p-values, into the family of verdicts."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmark.cli import main
from benchmark.protocols.failure_labels import misclassified, off_manifold
from benchmark.report.verdicts import is_test


def test_off_manifold_matches_brute_force():
    gen = torch.Generator().manual_seed(0)
    real, fake = torch.randn(60, 3, generator=gen), 1.5 * torch.randn(40, 3, generator=gen)
    d_real = torch.cdist(real.double(), real.double())
    radius = d_real.sort(dim=1).values[:, 3]  # k = 3: the 3rd nearest *other* point (column 0 is the point itself)
    d = torch.cdist(fake.double(), real.double())
    expected = (~(d <= radius.unsqueeze(0)).any(dim=1)).double().numpy()
    got = off_manifold(real, fake, 3)
    assert np.array_equal(got, expected)
    assert 0 < got.sum() < got.size  # the case has both labels


def test_misclassified_counts_argmax_against_the_condition():
    probabilities = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3]])
    assert misclassified(probabilities, torch.tensor([0, 1, 1])).tolist() == [0.0, 1.0, 0.0]


def test_reduced_run_on_digits(tmp_path: Path):
    config = tmp_path / "failure.toml"
    config.write_text("""
[run]
preset = "digits"
steps = 20
num_samples = 60
keep = 50
batch_size = 60
bootstrap = 20
features = ["classifier"]
[estimators.x0_trajectory]
[estimators.local_variance]
[protocols.failure_labels]
k = 3
""")
    out = tmp_path / "run"
    assert main(["run", "--config", str(config), "--out", str(out), "--quiet"]) == 0
    frame = pd.read_csv(out / "metrics.csv")
    rows = frame[frame.protocol == "failure_labels"]
    rates = rows[rows.estimator == "(samples)"].set_index("metric").value
    assert set(rates.index) == {"failure_rate_off_manifold[classifier]", "failure_rate_misclassified[classifier]"}
    manifest = (out / "manifest.json").read_text()
    for label in ("off_manifold", "misclassified"):
        auroc = rows[rows.metric == f"auroc_{label}[classifier]"]
        if 0 < rates[f"failure_rate_{label}[classifier]"] < 1:
            assert set(auroc.estimator) == {"x0_trajectory", "local_variance", "random"}
            assert auroc.p_value.notna().all() and all(is_test("failure_labels", m) for m in auroc.metric)
            delta = rows[(rows.metric == f"auroc_{label}_delta_vs_trivial[classifier]")]
            assert set(delta.estimator) == {"x0_trajectory", "random"}
        else:
            assert auroc.empty and f'"reason": "no_' in manifest
