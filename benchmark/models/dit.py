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

    def last_layer_output_to_eps(self, output: torch.Tensor) -> torch.Tensor:
        if output.ndim == 4:  # a conv last layer named in the config
            return output[:, : self.sample_shape[0]]
        cfg = self.network.config
        return unpatchify(output, int(cfg.patch_size), int(cfg.out_channels))[:, : self.sample_shape[0]]
