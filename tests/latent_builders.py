"""Tiny random-init latent, transformer and text-conditioned pipelines built in the tests (nothing downloaded).

Pixel images 1x16x16 <-> latents 4x8x8 (AutoencoderKL, two levels); DiT with learned sigma on 3 classes;
UNet2DConditionModel and PixArtTransformer2DModel conditioned on a 2-layer CLIPTextModel whose tokenizer is a
word-level vocabulary made here.
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

import torch

WORDS = ("a", "photo", "of", "cat", "dog", "red", "blue", "car", "shoe", "bag")
MAX_TOKENS = 8
TEXT_DIM = 16


@contextlib.contextmanager
def seeded(seed: int):
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.random.set_rng_state(state)


def tiny_vae(seed: int = 0, scaling_factor: float = 0.7):
    """AutoencoderKL 1x16x16 -> 4x8x8 (no attention), random init, eval mode."""
    from diffusers import AutoencoderKL

    with seeded(seed):
        vae = AutoencoderKL(in_channels=1, out_channels=1, down_block_types=("DownEncoderBlock2D",) * 2,
                            up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 8), layers_per_block=1,
                            latent_channels=4, norm_num_groups=4, sample_size=16, mid_block_add_attention=False,
                            scaling_factor=scaling_factor)
    return vae.eval()


def tiny_dit(num_classes: int = 3, learned_sigma: bool = True, dropout: float = 0.1, seed: int = 1):
    """DiTTransformer2DModel on 4x8x8 latents, patch 2, one block; out 8 channels when learned_sigma."""
    from diffusers import DiTTransformer2DModel

    with seeded(seed):
        dit = DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4,
                                    out_channels=8 if learned_sigma else 4, num_layers=1, sample_size=8, patch_size=2,
                                    num_embeds_ada_norm=num_classes, dropout=dropout)
        for p in dit.parameters():  # DiT zero-inits its output (adaLN-Zero): randomise so eps depends on x, t, y
            torch.nn.init.normal_(p, std=0.1)
    return dit.eval()


def tiny_tokenizer():
    """A word-level tokenizer (transformers PreTrainedTokenizerFast) over WORDS, padded to MAX_TOKENS."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<unk>": 1, "<bos>": 2, "<eos>": 3, **{w: i + 4 for i, w in enumerate(WORDS)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=MAX_TOKENS, pad_token="<pad>",
                                   unk_token="<unk>", bos_token="<bos>", eos_token="<eos>")


def tiny_text_encoder(seed: int = 2):
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(vocab_size=len(WORDS) + 4, hidden_size=TEXT_DIM, intermediate_size=32,
                            num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=MAX_TOKENS,
                            pad_token_id=0, bos_token_id=2, eos_token_id=3)
    with seeded(seed):
        return CLIPTextModel(config).eval()


def tiny_cond_unet(dropout: float = 0.0, seed: int = 3):
    """UNet2DConditionModel on 4x8x8 latents with cross-attention to TEXT_DIM-wide text states."""
    from diffusers import UNet2DConditionModel

    with seeded(seed):
        unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16),
                                    layers_per_block=1, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=TEXT_DIM,
                                    norm_num_groups=4, attention_head_dim=2, dropout=dropout)
    return unet.eval()


def tiny_pixart(seed: int = 4):
    """PixArtTransformer2DModel on 4x8x8 latents (patch 2), captions TEXT_DIM wide."""
    from diffusers import PixArtTransformer2DModel

    with seeded(seed):
        net = PixArtTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8,
                                       num_layers=1, sample_size=8, patch_size=2, cross_attention_dim=16,
                                       caption_channels=TEXT_DIM, dropout=0.1)
        for p in net.parameters():
            torch.nn.init.normal_(p, std=0.1)
    return net.eval()


def ddpm_scheduler():
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                         prediction_type="epsilon")


def ddim_scheduler():
    from diffusers import DDIMScheduler

    return DDIMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                         timestep_spacing="leading", steps_offset=0, set_alpha_to_one=True, clip_sample=False)


def save_dit_pipeline(folder: Path, *, num_classes: int = 3, learned_sigma: bool = True) -> Path:
    """A DiTPipeline-layout folder (model_index.json, transformer/, vae/, scheduler/) written by save_pretrained."""
    from diffusers import DiTPipeline

    DiTPipeline(transformer=tiny_dit(num_classes, learned_sigma), vae=tiny_vae(),
                scheduler=ddim_scheduler()).save_pretrained(folder)
    return folder


def sd_pipeline():
    """A tiny random StableDiffusionPipeline (no safety checker) with the word-level tokenizer."""
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(vae=tiny_vae(), text_encoder=tiny_text_encoder(), tokenizer=tiny_tokenizer(),
                                   unet=tiny_cond_unet(), scheduler=ddim_scheduler(), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)


def save_sd_pipeline(folder: Path) -> Path:
    """An SD-layout folder (unet/, vae/, text_encoder/, tokenizer/, scheduler/) written by save_pretrained."""
    sd_pipeline().save_pretrained(folder)
    return folder


def read_index(folder: Path) -> dict:
    return json.loads((folder / "model_index.json").read_text())


# ----------------------------------------------------------------------------- an in-test preset for CLI runs
LATENT_DIR_ENV = "UQBENCH_TEST_LATENT_DIR"


def write_latent_assets(folder: Path, *, text: bool = True) -> Path:
    """A pipeline (SD layout with a dropout UNet, or DiT), 48 random 1x16x16 images and a random classifier."""
    import numpy as np
    from diffusers import StableDiffusionPipeline

    from metrics.classifier import DomainClassifier

    folder.mkdir(parents=True, exist_ok=True)
    if text:
        StableDiffusionPipeline(vae=tiny_vae(), text_encoder=tiny_text_encoder(), tokenizer=tiny_tokenizer(),
                                unet=tiny_cond_unet(dropout=0.1), scheduler=ddim_scheduler(), safety_checker=None,
                                feature_extractor=None, requires_safety_checker=False).save_pretrained(folder / "pipe")
    else:
        save_dit_pipeline(folder / "pipe")
    images = np.random.default_rng(0).uniform(-1, 1, size=(48, 1, 16, 16)).astype(np.float32)
    np.savez(folder / "data.npz", train=images[:32], test=images[32:])
    with seeded(0):
        DomainClassifier(in_channels=1, num_classes=3, image_size=16).eval().save(folder / "classifier.pt")
    return folder


def tiny_latent_preset():
    """The preset of the folder named by $UQBENCH_TEST_LATENT_DIR (see write_latent_assets)."""
    import os

    from benchmark.data.user_data import DataSpec
    from benchmark.models.loading import ModelSpec
    from benchmark.presets import Preset

    folder = Path(os.environ[LATENT_DIR_ENV])
    return Preset("tiny-latent", ModelSpec(str(folder / "pipe")), DataSpec(path=str(folder / "data.npz")),
                  classifier=folder / "classifier.pt", description="tiny random latent pipeline (tests)")
