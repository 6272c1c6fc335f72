"""The paper-size code paths of the metrics equal their brute-force definitions on small inputs: density/coverage
streamed over distance blocks, KID's symmetric half of the kernel blocks, the FID replicate that updates the full
scatter; and bench/paper_size_bench.py runs at tiny sizes (every metric in-process, the script end to end)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from metrics import feature_statistics, fid_from_stats
from metrics.bootstrap import FixedReferenceFID, subsample_counts
from metrics.density_coverage import SubsetDensityCoverage, density_coverage, real_ball_membership
from metrics.kid import polynomial_kernel

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("chunk_size", [7, 64, 2048])
def test_streamed_density_coverage_equals_the_full_membership_matrix(chunk_size):
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(150, 6)), rng.normal(size=(110, 6)) * 1.2 + 0.2
    inside = real_ball_membership(real, fake, 5)  # bool [n, m], one matrix
    got = density_coverage(real, fake, 5, chunk_size=chunk_size)
    assert got.density == inside.sum() / (5 * fake.shape[0])
    assert got.coverage == inside.any(axis=1).mean()


def test_subset_coverage_in_row_blocks_equals_the_float_matrix_product():
    rng = np.random.default_rng(1)
    real, pool = rng.normal(size=(2100, 3)), rng.normal(size=(60, 3))  # 2100 real rows: two row blocks
    subsets = SubsetDensityCoverage(pool, real, k=5)
    masks = rng.random((4, 60)) < 0.5
    want = ((subsets.inside.astype(np.float32) @ masks.T.astype(np.float32)) > 0).mean(axis=0, dtype=np.float64)
    np.testing.assert_array_equal(subsets.coverage(masks), want)


@pytest.mark.parametrize("chunk_rows", [7, 50, 2048])
def test_kid_half_of_the_kernel_blocks_equals_the_full_kernel_matrix(chunk_rows, monkeypatch):
    import metrics.kid as kid_module

    rng = np.random.default_rng(2)
    x = np.abs(rng.normal(size=(103, 16)))
    full = polynomial_kernel(x, x)
    monkeypatch.setattr(kid_module, "CHUNK_ROWS", chunk_rows)
    assert kid_module._off_diagonal_sum(x) == pytest.approx(full.sum() - np.trace(full), rel=1e-13)


@pytest.mark.parametrize("scheme", ["subsample", "few changed"])
def test_fid_replicate_from_the_updated_scatter_equals_the_fid_of_the_copied_rows(scheme):
    rng = np.random.default_rng(3)
    reference = feature_statistics(rng.normal(size=(400, 12)))
    features = rng.normal(size=(200, 12)) * 1.1 + 0.1  # more rows than dimensions: the scatter path
    fid = FixedReferenceFID(reference, features)
    if scheme == "subsample":
        counts = subsample_counts(rng, 200)
    else:
        counts = np.ones(200, dtype=np.int64)
        counts[[3, 70]], counts[[5, 9, 120]] = 0, 2
    assert 2 * np.count_nonzero(counts != 1) < np.count_nonzero(counts)  # the updated-scatter branch is taken
    copied = np.repeat(features, counts, axis=0)
    assert fid(counts) == pytest.approx(fid_from_stats(reference, feature_statistics(copied)), rel=1e-10)


def test_every_metric_of_the_paper_size_bench_runs_on_tiny_inputs():
    sys.path.insert(0, str(ROOT / "bench"))
    import paper_size_bench as bench

    real = bench.synthetic_features(120, 16, seed=0)
    fake = bench.synthetic_features(120, 16, seed=1, shift=0.02)
    for metric in bench.FEATURE_METRICS:
        assert bench._feature_metric(metric, real, fake)
    assert "AUSE" in bench._sparsification(4)()
    assert bench.growth_exponent([100, 200, 400], [1.0, 4.0, 16.0]) == pytest.approx(2.0)


def test_paper_size_bench_script_runs_at_tiny_sizes(tmp_path):
    out = tmp_path / "paper_size.md"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "paper_size_bench.py"), "--metrics", "kid",
                           "--sizes", "100", "200", "--dim", "16",
                           "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    text = out.read_text()
    assert "| kid | 100; 200 | 200 |" in text and "| kid | 100 |" in text


@pytest.mark.parametrize("chunk_size", [7, 32, 4096])
def test_knn_radii_from_half_of_the_blocks_equal_the_brute_force_ones(chunk_size):
    """Blocks above the diagonal serve their transposes: the radii equal a float64 brute force to float32 round-off
    and the chunk sizes agree to round-off (a BLAS product's last bit depends on the block's shape); within one
    chunk size, squared_distances(x, x) holds the very entries the radii come from (pr_bootstrap relies on it)."""
    import torch

    from metrics.precision_recall import knn_squared_radii, squared_distances

    points = torch.from_numpy(np.random.default_rng(4).normal(size=(90, 8)).astype(np.float32))
    radii = knn_squared_radii(points, 3, chunk_size=chunk_size)
    within = squared_distances(points, points, chunk_size)
    assert torch.equal(within, within.T) and torch.isinf(within.diagonal()).all()
    assert torch.equal(torch.kthvalue(within, 3, dim=1).values, radii)
    brute = ((points[:, None].double() - points[None].double()) ** 2).sum(-1).fill_diagonal_(float("inf"))
    torch.testing.assert_close(radii.double(), torch.kthvalue(brute, 3, dim=1).values, rtol=1e-6, atol=1e-6)
