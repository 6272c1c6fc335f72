"""The [run] settings that shape a model's calls: guidance scale, prompts, a latent model's pixel maps, autocast."""
from __future__ import annotations

from typing import Sequence

from benchmark.errors import ConfigError
from benchmark.models.guided import check_guidance_scale
from benchmark.models.pixel_maps import check_strategy
from benchmark.models.precision import check_autocast


def apply_run_settings(model, *, guidance_scale: float = 1.0, prompts: Sequence[str] = (),
                       pixel_maps: str = "upsample", decoder_mc_samples: int = 8, autocast: str = "off") -> None:
    """Set classifier-free guidance (w), the prompts of a text-conditioned model, the pixel-map strategy of a
    latent model and the autocast of its network calls (on the model's device: place the model first); a setting
    the model cannot honour is a ConfigError naming the field."""
    model.autocast = check_autocast(autocast, model.device)
    scale = check_guidance_scale(guidance_scale)
    strategy, samples = check_strategy(pixel_maps, decoder_mc_samples)
    name = type(getattr(model, "denoiser", model)).__name__
    text = bool(getattr(model, "cycled_conditions", False))
    if text and not prompts:
        raise ConfigError("run.prompts", None, f"prompts for the text-conditioned {name}",
                          'set run.prompts = ["a photo of a cat", ...] or run.prompts_file = "prompts.txt"')
    if prompts and not text:
        raise ConfigError("run.prompts", list(prompts), f"absent: {name} is not text-conditioned",
                          "remove run.prompts / run.prompts_file (class labels are drawn per sample)")
    if prompts:
        model.set_prompts(list(prompts))
    if scale != 1.0:
        if not callable(getattr(model, "set_guidance_scale", None)):
            raise ConfigError("run.guidance_scale", scale, f"1: {name} has no null condition for classifier-free "
                              "guidance", "use a DiT, PixArt or text-conditioned pipeline, or set guidance_scale = 1")
        if not model.num_classes:
            raise ConfigError("run.guidance_scale", scale, "1 for an unconditional model", "set guidance_scale = 1")
    if callable(getattr(model, "set_guidance_scale", None)):
        model.set_guidance_scale(scale)
    if not callable(getattr(model, "decode", None)):
        if strategy != "upsample":
            raise ConfigError("run.pixel_maps", strategy, f"'upsample' (the default): {name} is not a latent model, "
                              "its maps are already in pixel space", "remove run.pixel_maps")
        return
    model.pixel_map_strategy, model.decoder_mc_samples = strategy, samples
