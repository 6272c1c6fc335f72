"""Text conditioning: prompts from the run config, encoded once with the pipeline's own tokenizer + text encoder.

`[run] prompts = [...]` or `[run] prompts_file = "path"` (one prompt per line) give P prompts; sample i uses
prompt i mod P (cycled over sample indices), so its condition index is i mod P and the null condition P is the
empty prompt "" (Stable Diffusion's unconditional branch). Each prompt is encoded once, when the prompts are set:
    ids = tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length, truncation=True)
    emb = text_encoder(ids[, attention_mask])[0]              (as diffusers' StableDiffusionPipeline.encode_prompt)
Denoisers: `UNet2DConditionModel` (last layer conv_out) and `PixArtTransformer2DModel` (last layer proj_out, a
linear layer on tokens, unpatchified like DiT's).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from benchmark.errors import CapabilityError, ConfigError
from benchmark.models.dit import transformer_layer_output, transformer_output_layout
from benchmark.models.guided import ConditionedDenoiser


def read_prompts(prompts: Sequence[str] | None = None, prompts_file: str | Path | None = None) -> list[str]:
    """The run's prompts: `prompts`, or the non-empty lines of `prompts_file` (exactly one of them)."""
    if prompts is not None and prompts_file is not None:
        raise ConfigError("run.prompts_file", str(prompts_file), "not together with run.prompts",
                          "keep one of run.prompts and run.prompts_file")
    if prompts_file is not None:
        path = Path(prompts_file).expanduser()
        if not path.is_file():
            raise ConfigError("run.prompts_file", str(prompts_file), "an existing text file, one prompt per line",
                              "check the path (relative paths are taken from the current folder)")
        prompts = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not prompts:
            raise ConfigError("run.prompts_file", str(prompts_file), "a file with at least one non-empty line")
        return prompts
    if prompts is None:
        return []
    if isinstance(prompts, str) or not all(isinstance(p, str) and p.strip() for p in prompts) or not prompts:
        raise ConfigError("run.prompts", prompts, "a non-empty list of non-empty strings",
                          'e.g. prompts = ["a photo of a cat", "a red car"]')
    return [p.strip() for p in prompts]


@torch.no_grad()
def encode_prompts(tokenizer, text_encoder: nn.Module, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(embeddings [P, L, D], attention mask [P, L]) of `prompts` with the pipeline's tokenizer and encoder."""
    tokens = tokenizer(list(prompts), padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                       return_tensors="pt")
    device = next(text_encoder.parameters()).device
    ids, mask = tokens.input_ids.to(device), tokens.attention_mask.to(device)
    use_mask = bool(getattr(text_encoder.config, "use_attention_mask", False))
    embeddings = text_encoder(ids, attention_mask=mask if use_mask else None)[0]
    return embeddings, mask


def cycled_conditions(indices: torch.Tensor, num_prompts: int) -> torch.Tensor:
    """Prompt index of each sample index: i mod P."""
    return torch.as_tensor(indices, dtype=torch.long, device="cpu").flatten() % int(num_prompts)


class TextConditionedDenoiser(ConditionedDenoiser):
    """eps from a text-conditioned network (UNet2DConditionModel or PixArtTransformer2DModel) on the run's prompts.

    Condition index k < P selects prompt k, index P the empty prompt (null condition). `set_prompts` encodes the
    prompts (P + 1 encoder rows, once); before it the model has no conditions and refuses to sample.
    """

    cycled_conditions = True  # sample i uses condition i mod P (benchmark.sampling.condition_labels)

    def __init__(self, network: nn.Module, tokenizer, text_encoder: nn.Module, alphas_cumprod: torch.Tensor, *,
                 prediction_type: str = "epsilon", last_layer_name: str | None = None) -> None:
        cfg = network.config
        size = cfg.sample_size if isinstance(cfg.sample_size, (tuple, list)) else (cfg.sample_size,) * 2
        self._transformer = hasattr(cfg, "patch_size") and cfg.patch_size is not None
        super().__init__(network, alphas_cumprod=alphas_cumprod,
                         sample_shape=(int(cfg.in_channels), int(size[0]), int(size[1])), num_conditions=None,
                         prediction_type=prediction_type,
                         last_layer_name=last_layer_name or ("proj_out" if self._transformer else "conv_out"))
        self._text = (tokenizer, text_encoder.eval())  # not submodules: encoded once, never part of MC-Dropout
        self.prompts: list[str] = []
        self.register_buffer("prompt_embeddings", torch.zeros(0), persistent=False)
        self.register_buffer("prompt_mask", torch.zeros(0, dtype=torch.long), persistent=False)

    def set_prompts(self, prompts: Sequence[str]) -> None:
        """Encode `prompts` (and the empty prompt, the null condition) once; condition k is prompts[k]."""
        prompts = read_prompts(prompts)
        tokenizer, encoder = self._text
        embeddings, mask = encode_prompts(tokenizer, encoder, [*prompts, ""])
        device = self.alphas_cumprod.device
        self.prompt_embeddings, self.prompt_mask = embeddings.to(device), mask.to(device)
        self.prompts, self.num_classes = list(prompts), len(prompts)

    def network_output(self, x: torch.Tensor, t: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        if not self.prompts:
            raise CapabilityError(f"{type(self.network).__name__} is text-conditioned and has no prompts. Fix: set "
                                  'run.prompts = ["..."] or run.prompts_file, or call model.set_prompts([...])')
        states = self.prompt_embeddings[conditions].to(x.dtype)
        if not self._transformer:
            return self.network(x, t, encoder_hidden_states=states).sample
        return self.network(x, encoder_hidden_states=states, encoder_attention_mask=self.prompt_mask[conditions],
                            timestep=t, added_cond_kwargs={"resolution": None, "aspect_ratio": None}).sample

    def layer_output_layout(self, output: torch.Tensor) -> torch.Tensor:
        return transformer_output_layout(output, self.network.config, self.sample_shape[0])

    def eps_to_layer_output(self, eps: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return transformer_layer_output(eps, like, self.network.config)
