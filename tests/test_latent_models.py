"""Latent and transformer adapters against diffusers: folder loading, samplers on latents, decoder, pixel maps.

References are diffusers' own schedulers, the AutoencoderKL called directly, the transformer called directly,
autograd Jacobians of the real network, and brute-force loops — never the code under test.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from benchmark.config import parse_config
from benchmark.errors import ConfigError
from benchmark.models import load_model
from benchmark.models.dit import DiTDenoiser
from benchmark.models.latent import LatentDiffusionModel
from benchmark.models.pixel_maps import decoder_mc_map, upsample_map
from benchmark.sampling import initial_noise, sample
from benchmark.seeding import derive_seed
from estimators.laplace import LastLayerLaplace
from tests.latent_builders import save_dit_pipeline
from tests.test_sampling import assert_x0_close, diffusers_ddim, diffusers_dpm2

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def dit_folder(tmp_path_factory):
    return save_dit_pipeline(tmp_path_factory.mktemp("dit") / "pipe")


@pytest.fixture(scope="module")
def dit_model(dit_folder):
    return load_model(str(dit_folder))


def test_dit_pipeline_folder_loads_through_the_config(dit_folder):
    config = parse_config({"run": {"num_samples": 4, "keep": 2}, "model": {"path": str(dit_folder)},
                           "protocols": {"cost": {}}})
    model = config.model.load()
    assert isinstance(model, LatentDiffusionModel) and isinstance(model.denoiser, DiTDenoiser)
    assert model.sample_shape == (4, 8, 8) and model.pixel_shape == (1, 16, 16) and model.num_classes == 3
    assert model.scaling_factor == pytest.approx(0.7)
    assert model.last_layer is model.denoiser.network.proj_out_2 and model.has_dropout
    with pytest.raises(ConfigError, match="model.num_classes"):
        parse_config({"run": {}, "model": {"path": str(dit_folder), "num_classes": 5},
                      "protocols": {"cost": {}}}).model.load()


def test_learned_sigma_dit_eps_is_the_first_channels_of_the_transformer(dit_model):
    z = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 2])
    with torch.no_grad():
        reference = dit_model.denoiser.network(z, timestep=torch.tensor([300, 300]), class_labels=labels).sample
        ours = dit_model.eps(z, 300, labels)
    assert reference.shape[1] == 8  # eps and the variance interpolation
    torch.testing.assert_close(ours, reference[:, :4], rtol=0, atol=0)


@pytest.mark.parametrize("sampler,steps,reference", [("ddim", 6, diffusers_ddim), ("dpm2", 4, diffusers_dpm2)])
def test_latent_steps_equal_diffusers_schedulers(dit_model, sampler, steps, reference):
    dit_model.set_guidance_scale(1.0)
    z_T = initial_noise(0, torch.arange(2), dit_model.sample_shape)
    labels = torch.tensor([1, 0])

    class Fixed(torch.nn.Module):  # the reference loops call predict_eps(x, t) without labels
        alphas_cumprod = dit_model.alphas_cumprod

        def predict_eps(self, x, t):
            return dit_model.predict_eps(x, t, labels)

    ours = sample(dit_model, z_T, sampler=sampler, steps=steps, y=labels).x0
    assert_x0_close(ours, reference(Fixed(), z_T, steps))


def test_decode_and_encode_are_the_autoencoder_with_its_scaling_factor(dit_model):
    vae = dit_model.vae
    z = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    images = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1
    dit_model.reset_decoder_counts()
    dit_model.reset_nfe()
    with torch.no_grad():
        torch.testing.assert_close(dit_model.decode(z), vae.decode(z / 0.7).sample.clamp(-1, 1))
        torch.testing.assert_close(dit_model.encode(images), 0.7 * vae.encode(images).latent_dist.mean)
    assert dit_model.decoder_counter["sampler"] == 3 and sum(dit_model.nfe_counter.values()) == 0
    assert dit_model.decoder_seconds["sampler"] > 0


def test_decoder_mc_map_equals_a_brute_force_loop(dit_model):
    mean = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    variance = torch.rand(2, 4, 8, 8, generator=torch.Generator().manual_seed(4)) * 0.5
    indices, seed, draws = torch.tensor([7, 11]), 5, 4
    ours = decoder_mc_map(dit_model.decode, mean, variance, draws, seed=seed, indices=indices)
    expected = torch.zeros(2, 1, 16, 16)
    for b, index in enumerate(indices.tolist()):
        noise = torch.randn((draws, 4, 8, 8), generator=torch.Generator().manual_seed(
            derive_seed(seed, "decoder-mc", index)))
        with torch.no_grad():
            images = [dit_model.vae.decode((mean[b] + variance[b].sqrt() * noise[k])[None] / 0.7).sample.clamp(-1, 1)[0]
                      for k in range(draws)]
        centred = [img - sum(images) / draws for img in images]
        expected[b] = sum(c * c for c in centred) / (draws - 1)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-6)
    # the same sample gets the same map in any batch
    alone = decoder_mc_map(dit_model.decode, mean[1:], variance[1:], draws, seed=seed, indices=indices[1:])
    torch.testing.assert_close(alone, ours[1:], rtol=1e-4, atol=1e-6)


def test_upsample_map_is_the_channel_sum_resized_bilinearly():
    latent = torch.rand(1, 4, 2, 2, generator=torch.Generator().manual_seed(6))
    summed = latent.sum(1)[0]
    out = upsample_map(latent, (3, 4, 4))
    assert out.shape == (1, 3, 4, 4)
    for i in range(4):  # half-pixel centres (align_corners=False), clamped at the border
        for j in range(4):
            y, x = min(max((i + 0.5) / 2 - 0.5, 0), 1), min(max((j + 0.5) / 2 - 0.5, 0), 1)
            value = ((1 - y) * (1 - x) * summed[0, 0] + (1 - y) * x * summed[0, 1]
                     + y * (1 - x) * summed[1, 0] + y * x * summed[1, 1])
            for c in range(3):
                assert float(out[0, c, i, j]) == pytest.approx(float(value), rel=1e-6)
    assert torch.equal(F.interpolate(summed[None, None], size=(4, 4), mode="bilinear")[0, 0], out[0, 0])


@pytest.mark.parametrize("scale", [1.0, 3.0])
def test_laplace_variance_of_a_dit_lands_on_the_right_latent_pixel(dit_model, scale):
    """Closed-form last-layer variance vs sum_theta (d eps / d theta)^2 / P from autograd through the real DiT
    (its own unpatchify); under guidance (1-w)^2 V_u + w^2 V_c of the two branches."""
    gen = torch.Generator().manual_seed(8)
    la = LastLayerLaplace(dit_model)
    layer = la.layer
    la.data_term = {"weight": torch.rand(layer.weight.shape, generator=gen, dtype=torch.float64) * 5,
                    "bias": torch.rand(layer.bias.shape, generator=gen, dtype=torch.float64) * 5}
    precision = la.posterior_precision
    z, t, labels = torch.randn(2, 4, 8, 8, generator=gen), torch.tensor([500, 500]), torch.tensor([2, 1])
    dit_model.set_guidance_scale(scale)
    with torch.no_grad():
        _, features = dit_model.eps_and_features(z, 500, labels)
        ours = la.variance_from_features(features)

    def branch_variance(branch_labels):
        net = dit_model.denoiser.network
        params = {"proj_out_2.weight": layer.weight.detach(), "proj_out_2.bias": layer.bias.detach()}

        def eps_of(weight, bias):
            out = torch.func.functional_call(net, {"proj_out_2.weight": weight, "proj_out_2.bias": bias},
                                             (z,), {"timestep": t, "class_labels": branch_labels})
            return out.sample[:, :4]
        jac_w, jac_b = torch.autograd.functional.jacobian(eps_of, (params["proj_out_2.weight"],
                                                                   params["proj_out_2.bias"]), vectorize=True)
        dims = tuple(range(4, jac_w.ndim))
        return ((jac_w.double() ** 2 / precision["weight"]).sum(dims)
                + (jac_b.double() ** 2 / precision["bias"]).sum(-1))

    if scale == 1.0:
        expected = branch_variance(labels)
    else:
        expected = (1 - scale) ** 2 * branch_variance(torch.tensor([3, 3])) + scale**2 * branch_variance(labels)
    dit_model.set_guidance_scale(1.0)
    torch.testing.assert_close(ours.double(), expected, rtol=1e-4, atol=1e-7)


def test_a_hub_id_naming_a_dit_pipeline_loads_its_snapshot(dit_folder, monkeypatch):
    """A hub id is resolved through huggingface_hub (stubbed here: no network) to a snapshot folder, then loaded
    by its layout like a local folder."""
    import huggingface_hub

    asked = []
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda repo, name: str(dit_folder / name))
    monkeypatch.setattr(huggingface_hub, "snapshot_download",
                        lambda repo, allow_patterns: asked.append((repo, allow_patterns)) or str(dit_folder))
    monkeypatch.setattr("benchmark.models.loading.hub_reachable", lambda endpoint, timeout=3.0: True)  # the probe
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    model = load_model("someone/tiny-dit")
    assert isinstance(model.denoiser, DiTDenoiser) and asked[0][0] == "someone/tiny-dit"
    assert "transformer/*" in asked[0][1] and "vae/*" in asked[0][1]
