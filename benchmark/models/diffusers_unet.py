"""Adapter for any diffusers `UNet2DModel` (optionally class-conditional) plus its scheduler config.

The scheduler config gives the training schedule ab_t and `prediction_type`; epsilon, v_prediction and
sample outputs are converted to eps exactly (benchmark.models.prediction.to_epsilon), and learned-variance
outputs (2C channels) keep their first C.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from benchmark.errors import ConfigError, MissingAssetError
from benchmark.models.base import DiffusionModel, linear_beta_alphas_cumprod
from benchmark.models.prediction import check_prediction_type, to_epsilon


def alphas_cumprod_from_scheduler_config(config: dict) -> torch.Tensor:
    """ab_t of a diffusers scheduler config (any beta schedule diffusers knows), float64 [T]."""
    from diffusers import DDPMScheduler

    keys = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas")
    scheduler = DDPMScheduler(**{k: config[k] for k in keys if k in config and config[k] is not None})
    return scheduler.alphas_cumprod.to(torch.float64)


def prediction_type_from_scheduler_config(config: dict | None) -> str:
    """`prediction_type` of a diffusers scheduler config (epsilon when absent), checked."""
    return check_prediction_type(str((config or {}).get("prediction_type", "epsilon")))


class DiffusersUNet(DiffusionModel):
    """eps_theta from a diffusers UNet2DModel. `last_layer` is `conv_out` (or the submodule named by
    `last_layer_name`, e.g. "conv_out"); `features` enter it.

    Args:
        unet: the UNet2DModel.
        alphas_cumprod: training schedule ab_t (default: the DDPM linear schedule).
        prediction_type: what the UNet outputs: "epsilon", "v_prediction" or "sample".
        num_classes: label count of a class-conditional UNet; None takes the UNet's own (`num_class_embeds`,
            unconditional when it has none). A value that contradicts the UNet is a ConfigError.
        last_layer_name: dotted path of the last layer inside the UNet (`[model] last_layer`).
    """

    def __init__(self, unet: nn.Module, alphas_cumprod: torch.Tensor | None = None, *,
                 prediction_type: str = "epsilon", num_classes: int | None = None,
                 last_layer_name: str | None = None) -> None:
        cfg = unet.config
        own_classes = getattr(cfg, "num_class_embeds", None)
        if num_classes is not None and num_classes != own_classes:
            raise ConfigError("model.num_classes", num_classes,
                              f"the UNet's own class count ({own_classes or 'none: it is unconditional'})",
                              "remove model.num_classes or set it to the UNet's num_class_embeds")
        if alphas_cumprod is None:
            alphas_cumprod = linear_beta_alphas_cumprod()
        in_ch = int(cfg.in_channels)
        size = cfg.sample_size if isinstance(cfg.sample_size, (tuple, list)) else (cfg.sample_size,) * 2
        super().__init__(alphas_cumprod=alphas_cumprod, sample_shape=(in_ch, int(size[0]), int(size[1])),
                         num_classes=int(own_classes) if own_classes else None)
        self.unet = unet.eval()
        self.prediction_type = check_prediction_type(prediction_type)
        self.last_layer_name = last_layer_name
        if last_layer_name is not None:
            self._named_layer(last_layer_name)  # fail now on a wrong path
        self.source: str | None = None

    @classmethod
    def from_pretrained(cls, path_or_id: str | Path, *, num_classes: int | None = None,
                        last_layer_name: str | None = None, **kwargs) -> "DiffusersUNet":
        """Load from a pipeline folder (model_index.json, unet/, scheduler/), a bare UNet folder, or a hub id;
        `num_classes` and `last_layer_name` as in the constructor, `kwargs` go to UNet2DModel.from_pretrained."""
        from importlib.util import find_spec

        from diffusers import UNet2DModel

        # without `accelerate` diffusers falls back to low_cpu_mem_usage=False anyway, but warns on every load
        kwargs.setdefault("low_cpu_mem_usage", find_spec("accelerate") is not None)
        path = Path(path_or_id)
        if path.is_dir():
            unet_dir = path / "unet" if (path / "unet" / "config.json").is_file() else path
            if not (unet_dir / "config.json").is_file():
                raise MissingAssetError(
                    f"model folder {path} has neither unet/config.json nor config.json. Fix: point to a diffusers "
                    "pipeline folder (model_index.json, unet/, scheduler/) or a UNet2DModel folder.")
            weights = list(unet_dir.glob("diffusion_pytorch_model*"))
            if not weights:
                raise MissingAssetError(
                    f"model folder {unet_dir} has no weights (diffusion_pytorch_model.safetensors or .bin). "
                    "Fix: copy the weights there or re-save the model with save_pretrained().")
            try:
                unet = UNet2DModel.from_pretrained(unet_dir, **kwargs)
            except Exception as err:  # corrupt or truncated files
                raise MissingAssetError(
                    f"could not load the UNet weights in {unet_dir}: {err}. Fix: the file is corrupt or incomplete; "
                    "re-download or re-train it.") from err
            scheduler_cfg = _find_scheduler_config(path, unet_dir)
        elif _looks_like_path(str(path_or_id)):
            raise MissingAssetError(f"model folder {path_or_id} does not exist. Fix: give an existing folder, "
                                    "a preset name (`python -m benchmark list`) or a hub id such as google/ddpm-cifar10-32.")
        else:  # a hub id: only fetched because the user asked for it by name
            unet = UNet2DModel.from_pretrained(str(path_or_id), subfolder="unet", **kwargs)
            from huggingface_hub import hf_hub_download

            scheduler_cfg = json.loads(Path(hf_hub_download(str(path_or_id), "scheduler/scheduler_config.json")).read_text())
        ab = alphas_cumprod_from_scheduler_config(scheduler_cfg) if scheduler_cfg else None
        model = cls(unet, alphas_cumprod=ab, prediction_type=prediction_type_from_scheduler_config(scheduler_cfg),
                    num_classes=num_classes, last_layer_name=last_layer_name)
        model.source = str(path_or_id)
        return model

    @property
    def last_layer(self) -> nn.Module | None:
        """The layer named by `last_layer_name`, else `conv_out`; None when the prediction is not that layer's
        output: the UNet transforms its output after conv_out (Fourier time embedding divides by t, skip up-blocks
        add a skip branch). For v- and x0-prediction eps is the exact per-timestep affine map of the output
        (eps = c_x x_t + c_t output, benchmark.models.prediction.epsilon_coefficients), which last-layer Laplace
        applies."""
        if self.last_layer_name is not None:
            return self._named_layer(self.last_layer_name)
        cfg = self.unet.config
        post_processed = cfg.time_embedding_type == "fourier" or any("Skip" in b for b in cfg.up_block_types)
        return None if post_processed else self.unet.conv_out

    def _named_layer(self, name: str) -> nn.Module:
        try:
            return self.unet.get_submodule(name)
        except AttributeError:
            raise ConfigError("model.last_layer", name, "the dotted path of a submodule of the UNet",
                              'e.g. last_layer = "conv_out" (see print(unet) for the names)') from None

    def _check_labels(self, y: torch.Tensor | None, batch: int) -> None:
        if y is not None and self.num_classes is None:
            raise ConfigError("y", tuple(y.shape), "this UNet is unconditional (no num_class_embeds)", "pass y=None")
        super()._check_labels(y, batch)

    def predict_eps(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self._to_eps(self.unet(x, t, class_labels=y).sample, x, t)

    def _to_eps(self, output: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The UNet output [B,C or 2C,H,W] as eps [B,C,H,W] (learned-variance models: the first C channels)."""
        ab = self.alphas_cumprod[t.to(self.alphas_cumprod.device)].to(x.device)
        return to_epsilon(output, x, ab, self.prediction_type, self.sample_shape[0])

    def predict_features(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.predict_eps_and_features(x, t, y)[1]

    def predict_eps_and_features(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None
                                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """One forward pass: eps and the activations entering conv_out (captured by a pre-hook)."""
        captured: list[torch.Tensor] = []
        layer = self.last_layer or self.unet.conv_out
        handle = layer.register_forward_pre_hook(lambda _m, args: captured.append(args[0]))
        try:
            out = self.unet(x, t, class_labels=y).sample
        finally:
            handle.remove()
        return self._to_eps(out, x, t), captured[0]


def _find_scheduler_config(root: Path, unet_dir: Path) -> dict | None:
    for candidate in (root / "scheduler" / "scheduler_config.json", unet_dir / "scheduler_config.json",
                      root / "scheduler_config.json"):
        if candidate.is_file():
            return json.loads(candidate.read_text())
    return None


def _looks_like_path(text: str) -> bool:
    return text.startswith((".", "/", "~")) or text.count("/") != 1 or Path(text).suffix != ""
