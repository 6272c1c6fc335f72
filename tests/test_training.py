"""`benchmark train`: a few digits iterations, save/reload through the library's loaders, exact resume."""
from __future__ import annotations


import pytest
import torch

from benchmark.errors import ConfigError
from benchmark.models import DiffusersUNet, load_model
from benchmark.training import TrainConfig, batch_indices, ema_decay_at, lr_at, train_diffusion
from benchmark.training.classifier import train_classifier
from benchmark.training.command import train_main

TINY_ARCH = dict(block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4, add_attention=False,
                 down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"))


def _cfg(out, steps: int) -> TrainConfig:
    return TrainConfig(dataset="digits", out=str(out), steps=steps, batch_size=16, warmup=2, checkpoint_every=2,
                       threads=1, arch=dict(TINY_ARCH))


def test_train_save_and_reload_through_library_loaders(tmp_path):
    summary = train_diffusion(_cfg(tmp_path, 3), progress=False)
    assert summary["steps"] == 3 and summary["num_classes"] == 10
    for rel in ("model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
                "scheduler/scheduler_config.json", "model_card.md", "checkpoint.pt"):
        assert (tmp_path / rel).is_file(), rel
    model = DiffusersUNet.from_pretrained(tmp_path)
    same = load_model(str(tmp_path))
    assert model.sample_shape == (1, 16, 16) and model.num_classes == 10
    assert model.unet.config.dropout == 0.1 and model.unet.config.num_class_embeds == 10
    # the saved weights are the EMA weights of the checkpoint
    ema = torch.load(tmp_path / "checkpoint.pt", weights_only=False)["ema"]
    for key, value in model.unet.state_dict().items():
        assert torch.equal(value, ema[key]), key
    x, y = torch.randn(4, 1, 16, 16), torch.tensor([0, 3, 5, 9])
    assert torch.equal(model.eps(x, 500, y), same.eps(x, 500, y))
    # the training schedule is the DDPM linear one: ab_1 = 1 - 1e-4
    assert model.alphas_cumprod[0].item() == pytest.approx(1 - 1e-4, abs=1e-7)
    card = (tmp_path / "model_card.md").read_text()
    assert "Steps: 3" in card and "digits" in card and "dropout 0.1" in card


def test_resume_reproduces_an_uninterrupted_run(tmp_path):
    full = train_diffusion(_cfg(tmp_path / "full", 4), progress=False)
    train_diffusion(_cfg(tmp_path / "split", 2), progress=False)
    resumed = train_diffusion(_cfg(tmp_path / "split", 4), progress=False)
    assert full["steps"] == resumed["steps"] == 4
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=False)
    assert a["step"] == b["step"] == 4
    for part in ("unet", "ema"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), (part, key)


def test_cli_refuses_to_overwrite_a_run_without_resume(tmp_path):
    train_diffusion(_cfg(tmp_path, 1), progress=False)
    with pytest.raises(ConfigError, match="--resume"):
        train_main(["--dataset", "digits", "--out", str(tmp_path), "--steps", "2", "--no-progress"])


def test_batches_cover_each_epoch_once():
    n, bs = 10, 3  # 3 batches per epoch, the last row of each permutation is dropped
    epoch0 = torch.cat([batch_indices(n, bs, s, seed=0) for s in range(3)])
    assert len(set(epoch0.tolist())) == 9
    assert torch.equal(batch_indices(n, bs, 4, seed=0), batch_indices(n, bs, 4, seed=0))
    assert ema_decay_at(0, 0.999) == 0.0 and ema_decay_at(198, 0.999) == pytest.approx(0.99)
    assert ema_decay_at(10**6, 0.999) == 0.999
    assert lr_at(0, 1.0, 10) == pytest.approx(0.1) and lr_at(50, 1.0, 10, total=100) == 1.0
    assert lr_at(85, 1.0, 10, total=100) == pytest.approx(0.55) and lr_at(100, 1.0, 10, total=100) == pytest.approx(0.1)


def test_classifier_trains_and_roundtrips(tmp_path):
    from metrics.classifier import DomainClassifier

    path = tmp_path / "clf.pt"
    summary = train_classifier("digits", path, epochs=1, batch_size=64, max_steps=5, width=8, threads=1,
                               progress=False)
    assert summary["steps"] == 5 and 0.0 <= summary["test_accuracy"] <= 1.0
    clf = DomainClassifier.load(path)
    assert clf.image_size == 16 and clf.feature_dim == 128 and not clf.training
    x = torch.rand(6, 1, 16, 16) * 2 - 1
    assert clf(x).shape == (6, 10) and clf.features(x).shape == (6, 128)
    # an in-memory model whose BatchNorm statistics moved away from the init survives save -> load exactly
    torch.manual_seed(1)
    fresh = DomainClassifier(in_channels=1, num_classes=10, image_size=16, width=8)
    fresh.train()(torch.rand(32, 1, 16, 16) * 2 - 1)
    fresh.eval().save(tmp_path / "fresh.pt")
    loaded = DomainClassifier.load(tmp_path / "fresh.pt")
    assert torch.equal(loaded(x), fresh(x)) and torch.equal(loaded.features(x), fresh.features(x))
    assert not torch.equal(DomainClassifier(in_channels=1, num_classes=10, image_size=16, width=8).eval()(x), fresh(x))
