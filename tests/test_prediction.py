"""Any diffusers UNet: epsilon / v / x0 outputs converted to eps exactly as diffusers' schedulers do, on the same
model; learned-variance outputs; the model folder's prediction_type, num_classes and last layer; the README's
Python snippet on an unconditional v-prediction folder."""
from __future__ import annotations

import json

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel

from benchmark.errors import ConfigError
from benchmark.models import DiffusersUNet, load_model
from benchmark.models.prediction import to_epsilon
from benchmark.sampling import initial_labels, initial_noise, sample
from tests.helpers import tiny_unet

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


def save_folder(folder, unet, prediction_type: str, **scheduler_kwargs) -> None:
    """A diffusers pipeline folder: unet/, scheduler/ (DDIMScheduler config), model_index.json."""
    unet.save_pretrained(folder / "unet")
    DDIMScheduler(prediction_type=prediction_type, **scheduler_kwargs).save_pretrained(folder / "scheduler")
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "DDIMPipeline"}))


@pytest.mark.parametrize("prediction_type", PREDICTION_TYPES)
@pytest.mark.parametrize("scheduler_class", [DDIMScheduler, DDPMScheduler])
def test_eps_gives_the_schedulers_x0_and_update(prediction_type, scheduler_class):
    """x0 = (x_t - s_t eps) / a_t from our eps equals the scheduler's pred_original_sample for the same output."""
    unet = tiny_unet(dropout=0.0)
    scheduler = scheduler_class(prediction_type=prediction_type, clip_sample=False)
    scheduler.set_timesteps(10)
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    for t in scheduler.timesteps[[0, 4, 9]]:
        with torch.no_grad():
            output = unet(x, t).sample
        ab = scheduler.alphas_cumprod[t]
        eps = to_epsilon(output, x, ab.expand(3), prediction_type, channels=1)
        x0 = (x - (1 - ab).sqrt() * eps) / ab.sqrt()
        step = scheduler.step(output, t, x, generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(x0, step.pred_original_sample, rtol=1e-4, atol=1e-5)
        if scheduler_class is DDIMScheduler:  # eta = 0: x_prev = a_prev x0 + s_prev eps
            t_prev = int(t) - scheduler.config.num_train_timesteps // 10
            ab_prev = scheduler.alphas_cumprod[t_prev] if t_prev >= 0 else scheduler.final_alpha_cumprod
            torch.testing.assert_close(ab_prev.sqrt() * x0 + (1 - ab_prev).sqrt() * eps, step.prev_sample,
                                       rtol=1e-4, atol=1e-5)


def test_learned_variance_outputs_use_their_first_channels():
    """A 2C-channel UNet (ADM-style learned range) against DDPMScheduler, which splits off the variance too."""
    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=2, block_out_channels=(8, 16), layers_per_block=1,
                       norm_num_groups=4, down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D")).eval()
    scheduler = DDPMScheduler(prediction_type="v_prediction", variance_type="learned_range", clip_sample=False)
    scheduler.set_timesteps(5)
    x, t = torch.randn(2, 1, 8, 8), scheduler.timesteps[1]
    with torch.no_grad():
        output = unet(x, t).sample
    ab = scheduler.alphas_cumprod[t]
    eps = to_epsilon(output, x, ab, "v_prediction", channels=1)
    step = scheduler.step(output, t, x, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close((x - (1 - ab).sqrt() * eps) / ab.sqrt(), step.pred_original_sample, rtol=1e-4, atol=1e-5)
    with pytest.raises(ConfigError, match="model output channels"):
        to_epsilon(output[:, :1].repeat(1, 3, 1, 1), x, ab, "epsilon", channels=1)
    with pytest.raises(ConfigError, match="prediction_type"):
        to_epsilon(output, x, ab, "x_start", channels=1)


@pytest.mark.parametrize("prediction_type", ["v_prediction", "sample"])
def test_full_ddim_run_matches_the_diffusers_loop_on_the_same_folder(tmp_path, prediction_type):
    """Our DDIM sampler on the loaded folder = diffusers' DDIMScheduler loop (leading spacing, offset 0)."""
    unet = tiny_unet(dropout=0.0, seed=3)
    save_folder(tmp_path, unet, prediction_type, clip_sample=False, set_alpha_to_one=True,
                timestep_spacing="leading", steps_offset=0)
    model = load_model(str(tmp_path))
    assert isinstance(model, DiffusersUNet) and model.prediction_type == prediction_type
    x_T = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ours = sample(model, x_T, sampler="ddim", steps=5).x0
        scheduler = DDIMScheduler.from_pretrained(tmp_path / "scheduler")
        scheduler.set_timesteps(5)
        x = x_T.clone()
        for t in scheduler.timesteps:
            x = scheduler.step(unet(x, t).sample, t, x, eta=0.0).prev_sample
    torch.testing.assert_close(ours, x, rtol=1e-4, atol=1e-4)


def test_folder_settings_num_classes_and_last_layer(tmp_path):
    save_folder(tmp_path / "v", tiny_unet(), "v_prediction")
    v_model = load_model(str(tmp_path / "v"))
    # eps = s_t x_t + a_t conv_out(features): last-layer Laplace maps the output to eps exactly (issue 25)
    assert v_model.num_classes is None and v_model.last_layer is v_model.unet.conv_out
    save_folder(tmp_path / "eps", tiny_unet(num_classes=3), "epsilon")
    eps_model = load_model(str(tmp_path / "eps"), last_layer="conv_out")
    assert eps_model.num_classes == 3 and eps_model.last_layer is eps_model.unet.conv_out
    named = load_model(str(tmp_path / "eps"), last_layer="up_blocks.1.resnets.0.conv2")
    assert named.last_layer is named.unet.up_blocks[1].resnets[0].conv2
    with pytest.raises(ConfigError, match="model.last_layer = 'conv_oops'"):
        load_model(str(tmp_path / "eps"), last_layer="conv_oops")
    with pytest.raises(ConfigError, match="model.num_classes = 10"):
        load_model(str(tmp_path / "eps"), num_classes=10)
    with pytest.raises(ConfigError, match="model.num_classes = 3"):
        load_model(str(tmp_path / "v"), num_classes=3)


def test_readme_python_snippet_on_an_unconditional_v_prediction_folder(tmp_path):
    """docs/estimators.md's snippet, with the model folder in place of the preset name."""
    import estimators

    save_folder(tmp_path, tiny_unet(), "v_prediction")
    model = load_model(str(tmp_path))
    idx = torch.arange(4)
    x_T = initial_noise(seed=0, indices=idx, shape=model.sample_shape)
    y = initial_labels(seed=0, indices=idx, num_classes=model.num_classes)
    assert y is None
    with torch.no_grad():
        out = sample(model, x_T, sampler="ddim", steps=4, y=y,
                     estimators=[estimators.create("sensitivity", m=2, window=(0, 50)), "mc_dropout"])
    assert out.x0.shape == (4, 1, 8, 8) and out.uncertainty["sensitivity"].pixel.shape == (4, 1, 8, 8)
    assert out.uncertainty["sensitivity"].nfe == 2 * 4  # m draws on each of the 4 steps
    labels = initial_labels(seed=0, indices=idx, num_classes=10)
    assert labels.shape == (4,) and int(labels.min()) >= 0 and int(labels.max()) < 10
