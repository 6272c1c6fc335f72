"""metrics.SparsificationError and metrics.FilteredFID (torchmetrics.Metric): against the functional versions,
over several update calls, and across 2 processes (gloo backend, spawn start method) with uneven shards."""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from metrics import (
    FilteredFID,
    SparsificationError,
    feature_statistics,
    fid_from_stats,
    filtered_fid,
    keep_lowest,
    random_subset,
    sparsification,
)
from metrics.filtered import random_subsets

IMAGES, POOL, DIM, KEEP = 10, 90, 5, 70


def data():
    """Fixed per-pixel errors / uncertainties [10, 1, 6, 6], features [90, 5], scores [90], reference stats."""
    rng = np.random.default_rng(0)
    error = torch.from_numpy(rng.normal(size=(IMAGES, 1, 6, 6)))
    uncertainty = error.abs() + torch.from_numpy(rng.uniform(0, 1, size=error.shape))
    features = rng.normal(size=(POOL, DIM)) + np.linspace(0, 1, POOL)[:, None]
    scores = np.linspace(0, 1, POOL) + 0.3 * rng.uniform(size=POOL)
    reference = feature_statistics(rng.normal(size=(400, DIM)))
    return error, uncertainty, features, scores, reference


def test_sparsification_metric_equals_the_functional_version_over_several_updates():
    error, uncertainty, *_ = data()
    metric = SparsificationError(fractions=20)
    for start in (0, 3, 7):
        stop = {0: 3, 3: 7, 7: IMAGES}[start]
        metric.update(error[start:stop], uncertainty[start:stop])
    expected = sparsification(error, uncertainty, fractions=20)
    out = metric.compute()
    assert float(out["ause"]) == pytest.approx(expected.ause, rel=1e-12)
    assert float(out["aurg"]) == pytest.approx(expected.aurg, rel=1e-12)


def test_filtered_fid_metric_equals_the_functional_version_and_brute_force():
    _, _, features, scores, reference = data()
    metric = FilteredFID(reference, keep=KEEP, seed=3)
    order = np.random.default_rng(1).permutation(POOL)  # rows arrive shuffled, with their sample indices
    for chunk in np.array_split(order, 4):
        metric.update(torch.from_numpy(features[chunk]), torch.from_numpy(scores[chunk]), torch.from_numpy(chunk))
    out = metric.compute()
    expected = filtered_fid(features, scores, reference, KEEP, seed=3)
    kept = fid_from_stats(reference, feature_statistics(features[keep_lowest(scores, KEEP)]))
    chance = np.mean([fid_from_stats(reference, feature_statistics(features[mask]))
                      for mask in random_subsets(POOL, KEEP, 3, 100)])  # the floor: mean over 100 random K-subsets
    assert random_subsets(POOL, KEEP, 3, 100)[0].tolist() == random_subset(POOL, KEEP, 3).tolist()
    assert float(out["fid_kept"]) == pytest.approx(expected.fid_kept, rel=1e-12) == pytest.approx(kept, rel=1e-12)
    assert float(out["fid_random"]) == pytest.approx(chance, rel=1e-12)
    assert float(out["delta_vs_random"]) == pytest.approx(kept - chance, rel=1e-9)


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        error, uncertainty, features, scores, reference = data()
        image_rows = np.arange(IMAGES)[:4] if rank == 0 else np.arange(IMAGES)[4:]  # uneven shards
        sample_rows = np.arange(POOL)[rank::world]  # interleaved, as the runner shards by sample index
        ause = SparsificationError(fractions=20)
        ause.update(error[image_rows], uncertainty[image_rows])
        ffid = FilteredFID(reference, keep_fraction=KEEP / POOL, seed=3)
        ffid.update(torch.from_numpy(features[sample_rows]), torch.from_numpy(scores[sample_rows]),
                    torch.from_numpy(sample_rows))
        result = {key: float(value) for key, value in {**ause.compute(), **ffid.compute()}.items()}
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_states_merge_across_two_processes(tmp_path):
    mp.start_processes(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True, start_method="spawn")
    error, uncertainty, features, scores, reference = data()
    spars = sparsification(error, uncertainty, fractions=20)
    expected = filtered_fid(features, scores, reference, KEEP, seed=3)
    for rank in (0, 1):
        got = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert got["ause"] == pytest.approx(spars.ause, rel=1e-12)
        assert got["aurg"] == pytest.approx(spars.aurg, rel=1e-12)
        assert got["fid_kept"] == pytest.approx(expected.fid_kept, rel=1e-12)
        assert got["fid_random"] == pytest.approx(expected.fid_random, rel=1e-12)
