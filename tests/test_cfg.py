"""Classifier-free guidance: equal to diffusers' guided pipelines, NFE accounting, and a text-conditioned CLI run.

References: StableDiffusionPipeline run end to end on the same latents, the networks called per branch,
and forward hooks that count the rows the network really evaluates.
"""
from __future__ import annotations

import pandas as pd
import pytest
import torch

import estimators
from benchmark.cli import main
from benchmark.errors import ConfigError
from benchmark.models import load_model
from benchmark.models.conditioning import TextConditionedDenoiser
from benchmark.models.run_settings import apply_run_settings
from benchmark.sampling import initial_noise, sample
from estimators.laplace import LastLayerLaplace
from tests.latent_builders import (
    LATENT_DIR_ENV,
    ddim_scheduler,
    save_dit_pipeline,
    sd_pipeline,
    tiny_pixart,
    tiny_text_encoder,
    tiny_tokenizer,
    tiny_vae,
    write_latent_assets,
)
from tests.test_sampling import assert_x0_close

pytestmark = pytest.mark.usefixtures("single_thread")
PROMPTS = ["a red car", "a photo of a dog"]


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sd") / "pipe"
    sd_pipeline().save_pretrained(folder)
    return folder


def test_sd_layout_folder_with_cfg_equals_the_diffusers_pipeline(sd_folder):
    """StableDiffusionPipeline (prompts, w = 5, DDIM) on the same latents vs our sampler on the loaded folder."""
    model = load_model(str(sd_folder))
    assert isinstance(model.denoiser, TextConditionedDenoiser) and model.last_layer is model.denoiser.network.conv_out
    apply_run_settings(model, guidance_scale=5.0, prompts=PROMPTS)
    assert model.num_classes == 2 and model.rows_per_sample == 2
    z_T = initial_noise(0, torch.arange(2), model.sample_shape)
    ours = sample(model, z_T, sampler="ddim", steps=3, y=torch.tensor([0, 1]))
    assert ours.nfe == 6  # 3 steps x 2 rows
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(sd_folder, safety_checker=None, requires_safety_checker=False)
    pipe.scheduler = ddim_scheduler()  # the pipeline's __init__ rewrites steps_offset 0 -> 1; our grid is offset 0
    with torch.no_grad():
        reference = pipe(prompt=PROMPTS, num_inference_steps=3, guidance_scale=5.0, latents=z_T.clone(),
                         output_type="latent", height=16, width=16).images
    assert_x0_close(ours.x0, reference)


def test_dit_guided_eps_is_the_weighted_branches(tmp_path):
    model = load_model(str(save_dit_pipeline(tmp_path / "dit")))
    z, labels = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2])
    net, t = model.denoiser.network, torch.tensor([400] * 3)
    with torch.no_grad():
        eps_u = net(z, timestep=t, class_labels=torch.tensor([3, 3, 3])).sample[:, :4]  # null class = num_classes
        eps_c = net(z, timestep=t, class_labels=labels).sample[:, :4]
        model.set_guidance_scale(4.0)
        torch.testing.assert_close(model.eps(z, 400, labels), -3.0 * eps_u + 4.0 * eps_c, rtol=1e-5, atol=1e-6)
        model.set_guidance_scale(1.0)
        torch.testing.assert_close(model.eps(z, 400, labels), eps_c, rtol=0, atol=0)


def test_pixart_text_transformer_guided_eps(tmp_path):
    from diffusers import PixArtAlphaPipeline

    PixArtAlphaPipeline(tokenizer=tiny_tokenizer(), text_encoder=tiny_text_encoder(), vae=tiny_vae(),
                        transformer=tiny_pixart(), scheduler=ddim_scheduler()).save_pretrained(tmp_path / "pixart")
    model = load_model(str(tmp_path / "pixart"))
    assert model.last_layer is model.denoiser.network.proj_out
    apply_run_settings(model, guidance_scale=2.5, prompts=PROMPTS)
    z = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    emb, mask = model.denoiser.prompt_embeddings, model.denoiser.prompt_mask
    net, t = model.denoiser.network, torch.tensor([250, 250])
    kwargs = {"timestep": t, "added_cond_kwargs": {"resolution": None, "aspect_ratio": None}}
    with torch.no_grad():
        eps_c = net(z, encoder_hidden_states=emb[:2], encoder_attention_mask=mask[:2], **kwargs).sample[:, :4]
        eps_u = net(z, encoder_hidden_states=emb[[2, 2]], encoder_attention_mask=mask[[2, 2]], **kwargs).sample[:, :4]
        torch.testing.assert_close(model.eps(z, 250, torch.tensor([0, 1])), -1.5 * eps_u + 2.5 * eps_c,
                                   rtol=1e-5, atol=1e-6)


def test_nfe_accounting_under_guidance_counts_the_rows_the_network_evaluates(tmp_path):
    """Sampler and every estimator's extra calls count 2 rows per sample under guidance, as a hook sees them."""
    model = load_model(str(save_dit_pipeline(tmp_path / "dit")))
    la = LastLayerLaplace(model).fit([(model.encode(torch.rand(8, 1, 16, 16) * 2 - 1), torch.tensor([0, 1, 2] * 2 + [0, 1]))],
                                     progress=False, value_range=None)
    seen = {"rows": 0}
    model.denoiser.network.register_forward_hook(lambda _m, args, _out: seen.__setitem__(
        "rows", seen["rows"] + args[0].shape[0]))
    z_T, labels = initial_noise(0, torch.arange(2), model.sample_shape), torch.tensor([2, 0])
    reported = {}
    for scale in (1.0, 3.0):
        model.set_guidance_scale(scale)
        seen["rows"] = 0
        made = [estimators.create("sensitivity", m=3, window=[40, 50]),
                estimators.create("mc_dropout", m=2, window=[40, 50]),
                estimators.create("bayesdiff", laplace=la, mc_samples=3, skip=2)]
        out = sample(model, z_T, steps=10, y=labels, estimators=made)
        per_sample = {"sampler": out.nfe, **{k: v.nfe for k, v in out.uncertainty.items()}}
        assert sum(per_sample.values()) * 2 == seen["rows"]  # 2 samples
        reported[scale] = per_sample
    assert reported[1.0]["sampler"] == 10 and reported[3.0]["sampler"] == 20
    for name, nfe in reported[1.0].items():
        assert reported[3.0][name] == 2 * nfe > 0, name


def test_guidance_on_a_model_without_a_null_condition_is_refused(unet_model):
    with pytest.raises(ConfigError, match="run.guidance_scale"):
        apply_run_settings(unet_model, guidance_scale=3.0)
    with pytest.raises(ConfigError, match="run.prompts"):
        apply_run_settings(unet_model, prompts=["a cat"])


def test_text_pipeline_runs_through_the_cli_with_prompts_and_w5(tmp_path, monkeypatch):
    """A text-conditioned tiny SD-layout pipeline, prompts, w = 5, decoder-MC pixel maps, every estimator kind."""
    assets = write_latent_assets(tmp_path / "assets")
    monkeypatch.setenv(LATENT_DIR_ENV, str(assets))
    monkeypatch.setenv("UQBENCH_EXTRA_PRESETS", "tests.latent_builders:tiny_latent_preset")
    config = tmp_path / "text.toml"
    config.write_text(f"""
[run]
preset = "tiny-latent"
steps = 10
num_samples = 12
keep = 10
batch_size = 6
bootstrap = 10
guidance_scale = 5
prompts = {PROMPTS + ["a blue shoe"]!r}
pixel_maps = "decoder_mc"
decoder_mc_samples = 3

[estimators.sensitivity]
m = 3
window = [40, 50]
[estimators.mc_dropout]
m = 2
window = [40, 50]
[estimators.bayesdiff]
mc_samples = 3
fit_images = 16

[protocols.filtered_fid]
curve_fractions = [1.0]
[protocols.sparsification]
num_images = 4
noise_fraction = 0.5
fractions = 5
[protocols.cost]
""".replace("'", '"'))
    out = tmp_path / "run"
    assert main(["run", "--config", str(config), "--out", str(out), "--quiet"]) == 0
    frame = pd.read_csv(out / "metrics.csv")
    cost = frame[frame.protocol == "cost"]
    nfe = cost[cost.metric == "nfe_per_sample"].set_index("estimator").value
    extra = cost[cost.metric == "extra_nfe_per_sample"].set_index("estimator").value
    # 2 rows per guided call: 10 steps; sensitivity m = 3 on the 2 steps of 10 in [40, 50]
    assert nfe["(sampler)"] == 20 and extra["sensitivity"] == 2 * 3 * 2
    calls = cost[cost.metric == "decoder_calls_per_sample"].value
    # the image, then K = 3 draws per estimator map but the random floor's (drawn in pixel space, never decoded)
    assert list(calls) == [1 + 3 * (len(extra) - 1)]
    assert {"ause", "aurg"} <= set(frame[(frame.protocol == "sparsification") & (frame.estimator == "bayesdiff")].metric)
    assert (out / "plots").is_dir() and any((out / "plots").glob("extremes_*.png"))


def test_bad_conditioning_settings_name_the_field(tmp_path, unet_model):
    from benchmark.config import parse_config

    base = {"run": {"preset": "fashion"}, "protocols": {"cost": {}}}
    with pytest.raises(ConfigError, match="run.prompts_file"):
        parse_config({**base, "run": {"preset": "fashion", "prompts_file": str(tmp_path / "missing.txt")}})
    with pytest.raises(ConfigError, match="run.pixel_maps"):
        parse_config({**base, "run": {"preset": "fashion", "pixel_maps": "nearest"}})
    with pytest.raises(ConfigError, match="run.decoder_mc_samples"):
        parse_config({**base, "run": {"preset": "fashion", "decoder_mc_samples": 1}})
    (tmp_path / "p.txt").write_text("a red car\n\n a blue shoe \n")
    assert parse_config({**base, "run": {"preset": "fashion", "prompts_file": str(tmp_path / "p.txt")}}).prompts == (
        "a red car", "a blue shoe")
    with pytest.raises(ConfigError, match="run.pixel_maps"):  # a pixel-space model has no latent maps to decode
        apply_run_settings(unet_model, pixel_maps="decoder_mc")
