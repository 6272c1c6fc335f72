"""Transformer denoisers: class-conditional `DiTTransformer2DModel` (Peebles & Xie 2023), learned sigma allowed.

The last layer is `proj_out_2`, an nn.Linear on the tokens [N, T, D] -> [N, T, p*p*C_out] that the model
unpatchifies to [N, C_out, H, W]; `last_layer_output_to_eps` applies the same permutation, so a last-layer
Laplace variance computed per token output lands on the right pixel (U-ViT's `decoder_pred` in the public
BayesDiff code is the same kind of layer). A learned-sigma model (C_out = 2C) keeps its first C channels.
"""
from __future__ import annotations

import torch
from torch import nn

from benchmark.errors import ConfigError
from benchmark.models.guided import ConditionedDenoiser


def unpatchify(tokens: torch.Tensor, patch_size: int, channels: int) -> torch.Tensor:
    """[N, h*w, p*p*C] (token-major, each token's values in (p, q, c) order) -> [N, C, h*p, w*p], as diffusers' DiT."""
    n, num_tokens, _ = tokens.shape
    side = int(round(num_tokens**0.5))
    grid = tokens.reshape(n, side, side, patch_size, patch_size, channels)
    return torch.einsum("nhwpqc->nchpwq", grid).reshape(n, channels, side * patch_size, side * patch_size)


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Inverse of `unpatchify`: [N, C, h*p, w*p] -> [N, h*w, p*p*C]."""
    n, channels, height, width = images.shape
    h, w = height // patch_size, width // patch_size
    grid = images.reshape(n, channels, h, patch_size, w, patch_size)
    return torch.einsum("nchpwq->nhwpqc", grid).reshape(n, h * w, patch_size * patch_size * channels)


def transformer_output_layout(output: torch.Tensor, config, channels: int) -> torch.Tensor:
    """A transformer's last-layer output [N, T, p*p*C_out] (or a conv's [N, C_out, H, W]) -> eps layout [N,C,H,W]."""
    if output.ndim == 4:
        return output[:, :channels]
    return unpatchify(output, int(config.patch_size), int(config.out_channels))[:, :channels]


def transformer_layer_output(eps: torch.Tensor, like: torch.Tensor, config) -> torch.Tensor:
    """eps-layout values [N,C,H,W] in the layout of the last-layer output `like` ([N,T,p*p*C_out]), zero elsewhere."""
    if like.ndim == 4:
        out = torch.zeros_like(like)
        out[:, : eps.shape[1]] = eps
        return out
    full = eps.new_zeros((eps.shape[0], int(config.out_channels), *eps.shape[2:]))
    full[:, : eps.shape[1]] = eps
    return patchify(full, int(config.patch_size)).reshape(like.shape)


class DiTDenoiser(ConditionedDenoiser):
    """eps from a class-conditional diffusers DiTTransformer2DModel; label `num_classes` is the null class.

    `num_classes` defaults to the model's `num_embeds_ada_norm` (the label table has one more row, the null
    class, because diffusers' DiT always keeps the label-dropout embedding).
    """

    def __init__(self, transformer: nn.Module, alphas_cumprod: torch.Tensor, *, prediction_type: str = "epsilon",
                 num_classes: int | None = None, last_layer_name: str | None = None) -> None:
        cfg = transformer.config
        own = int(cfg.num_embeds_ada_norm)
        if num_classes is not None and num_classes != own:
            raise ConfigError("model.num_classes", num_classes, f"the DiT's own class count ({own})",
                              "remove model.num_classes or set it to the transformer's num_embeds_ada_norm")
        size = int(cfg.sample_size)
        super().__init__(transformer, alphas_cumprod=alphas_cumprod, sample_shape=(int(cfg.in_channels), size, size),
                         num_conditions=own, prediction_type=prediction_type,
                         last_layer_name=last_layer_name or "proj_out_2")

    def network_output(self, x: torch.Tensor, t: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        return self.network(x, timestep=t, class_labels=conditions).sample

    def layer_output_layout(self, output: torch.Tensor) -> torch.Tensor:
        return transformer_output_layout(output, self.network.config, self.sample_shape[0])

    def eps_to_layer_output(self, eps: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return transformer_layer_output(eps, like, self.network.config)
