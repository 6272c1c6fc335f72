"""Built-in presets: listing, committed weights that sample, the gmm oracle/network pair, cifar10-ddpm loading."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from benchmark import presets
from benchmark.errors import ConfigError
from benchmark.models import DiffusersUNet, GaussianMixtureModel, load_model
from benchmark.sampling.engine import sample

ALL = ["digits", "fashion", "gmm", "fashion-latent", "grid25", "cifar10-ddpm"]


def test_list_shows_every_preset_and_unknown_names_fail():
    assert presets.names() == ALL
    text = presets.list_presets_text()
    assert all(name in text for name in ALL)
    with pytest.raises(ConfigError, match=", ".join(ALL)):
        presets.get("mnist")
    cifar = presets.get("cifar10-ddpm")
    assert (cifar.sampler, cifar.steps) == ("ddim", 50)
    assert cifar.estimator_defaults == {"mc_samples": 5, "uq_steps": [45, 46, 47, 48]}


def test_fashion_samples_64_labelled_images_from_committed_weights():
    model = load_model("fashion")
    assert isinstance(model, DiffusersUNet) and model.sample_shape == (1, 32, 32) and model.num_classes == 10
    assert model.unet.config.dropout == 0.1
    y = torch.arange(64) % 10
    x_T = torch.randn(64, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = sample(model, x_T, sampler="ddim", steps=2, y=y)
    assert out.x0.shape == (64, 1, 32, 32) and bool(torch.isfinite(out.x0).all())
    assert out.nfe == 2.0  # one network evaluation per sample and step
    assert presets.get("fashion").model_dir.name == "fashion"


def test_committed_classifier_reference_stats_match_the_test_set():
    """The committed npz equals mean/covariance (ddof 1) of the committed classifier's features of the test split."""
    preset = presets.get("digits")
    stats = preset.reference_stats("classifier")
    data = preset.load_data("test")
    with torch.no_grad():
        feats = preset.load_classifier().features(data.images).double().numpy()
    assert stats.n == len(data) and stats.mu.shape == (128,)
    np.testing.assert_allclose(stats.mu, feats.mean(0), atol=1e-5)
    np.testing.assert_allclose(stats.sigma, np.cov(feats, rowvar=False), atol=1e-5)
    inception = presets.get("fashion").reference_stats("inception")
    assert inception.mu.shape == (2048,) and inception.sigma.shape == (2048, 2048) and inception.n >= 2000


def test_gmm_oracle_is_built_from_digit_prototypes_and_matches_its_network():
    from sklearn.datasets import load_digits

    from benchmark.data.datasets import digits_split_indices
    from benchmark.data.gmm import GMM_STD

    preset = presets.get("gmm")
    oracle, net = preset.oracle(), preset.load_model()
    assert isinstance(oracle, GaussianMixtureModel) and oracle.std == GMM_STD
    assert oracle.sample_shape == net.sample_shape == (1, 16, 16) and net.num_classes is None
    assert torch.equal(oracle.alphas_cumprod, net.alphas_cumprod)
    raw = load_digits()
    idx = digits_split_indices(1797, "train")
    for k in (0, 7):
        rows = idx[raw.target[idx] == k]
        proto = np.pad(raw.images[rows].mean(0) / 8.0 - 1.0, 4, constant_values=-1.0)
        np.testing.assert_allclose(oracle.means[k, 0].numpy(), proto, atol=1e-12)
    draws = preset.load_data("test", n=8)
    again = oracle.sample_data(8, generator=torch.Generator().manual_seed(1))
    assert torch.equal(draws.images, again) and draws.labels is None
    x = torch.randn(3, 1, 16, 16)
    assert net.eps(x, 900).shape == oracle.eps(x, 900).shape == (3, 1, 16, 16)
    assert preset.load_classifier().image_size == 16


def test_cifar10_ddpm_loads_a_local_folder_from_the_env_variable(tmp_path, monkeypatch):
    from diffusers import DDPMScheduler, UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=8, in_channels=3, out_channels=3, block_out_channels=(8, 16), layers_per_block=1,
                       norm_num_groups=4, down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D"), dropout=0.1).eval()
    unet.save_pretrained(tmp_path / "unet")
    DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear").save_pretrained(tmp_path / "scheduler")
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "DDPMPipeline"}))
    monkeypatch.setenv(presets.CIFAR10_ENV, str(tmp_path))
    preset = presets.get("cifar10-ddpm")
    model = preset.load_model()
    assert preset.model_dir == tmp_path and preset.load_classifier() is None and preset.oracle() is None
    assert model.sample_shape == (3, 8, 8) and model.num_classes is None
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(model.eps(x, 10), unet(x, torch.tensor([10, 10])).sample)
    assert preset.reference_stats("inception") is None
