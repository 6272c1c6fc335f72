"""configs/paper_cifar10.toml (paper scale, meant for a GPU) runs end to end at reduced size on the CPU.

Only what a CPU test cannot have is swapped: the cifar10-ddpm preset's model comes from $UQBENCH_CIFAR10_DDPM
(a tiny random-init 3x32x32 UNet2DModel folder with dropout, saved here), the real images from a `[data]` array
(CIFAR-10 is not shipped: a user adds `[data] path = ".../cifar10_test.npy"`), device cpu, one thread, and the
sizes. The estimators, protocols, sampler and the Inception feature space are the shipped ones.
"""
from __future__ import annotations

import shutil

from pathlib import Path

import numpy as np
import pandas as pd
import tomllib
import torch

from benchmark.cli import main
from estimators.base import scale_window
from tests.test_gmm_config import write_toml

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "paper_cifar10.toml"


def tiny_cifar_unet_folder(folder: Path) -> None:
    from diffusers import UNet2DModel

    torch.manual_seed(0)
    UNet2DModel(sample_size=32, in_channels=3, out_channels=3, layers_per_block=1, block_out_channels=(8, 16),
                down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                norm_num_groups=4, dropout=0.1).save_pretrained(folder)


def test_paper_config_runs_at_reduced_size(tmp_path, monkeypatch, capsys):
    tiny_cifar_unet_folder(tmp_path / "unet")
    monkeypatch.setenv("UQBENCH_CIFAR10_DDPM", str(tmp_path / "unet"))
    images = np.random.default_rng(0).uniform(-1, 1, size=(16, 3, 32, 32)).astype(np.float32)
    np.save(tmp_path / "cifar_like.npy", images)
    data = tomllib.loads(CONFIG.read_text())
    data["run"].update({"steps": 20, "num_samples": 12, "keep": 10, "batch_size": 12, "bootstrap": 10,
                        "device": "cpu", "threads": 1})
    data["estimators"]["bayesdiff"].update({"mc_samples": 3, "fit_images": 8})
    data["protocols"]["sparsification"]["num_images"] = 4
    data["protocols"]["guidance"]["num_samples"] = 4
    data["protocols"]["filtered_fid"] = {"curve_fractions": [1.0]}
    data["data"] = {"path": str(tmp_path / "cifar_like.npy")}
    write_toml(data, tmp_path / "paper.toml")
    (tmp_path / "published").mkdir()
    shutil.copy(CONFIG.parent / "published" / "paper_cifar10.toml", tmp_path / "published" / "paper.toml")  # shipped
    assert main(["run", "--config", str(tmp_path / "paper.toml"), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    printed = capsys.readouterr().out  # the run prints its numbers beside the published ones
    assert "Beside the published values" in printed and "Table 1: filtered FID (`fid_kept[inception]`)" in printed
    assert "Table 2: AURG (`aurg_pooled_mono_uncertainty`)" in printed
    frame = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert {"filtered_fid", "precision_recall", "sparsification", "guidance", "cost"} <= set(frame.protocol)
    assert {"sensitivity", "mc_dropout", "bayesdiff", "random"} <= set(frame.estimator)
    assert (frame.metric.str.endswith("[inception]")).any()
    cost = frame[(frame.protocol == "cost") & (frame.metric == "extra_nfe_per_sample")].set_index("estimator").value
    start, stop = scale_window((45, 49), 20)  # the window's fraction of the trajectory at 20 steps: step 18
    assert cost["sensitivity"] == 5 * (stop - start) == 5
