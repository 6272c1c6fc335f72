"""Folder layouts of latent, transformer and text-conditioned diffusers pipelines (registered in loading.py).

A pipeline folder (model_index.json layout, as written by `save_pretrained`) holds scheduler/ and one denoiser:
- transformer/ DiTTransformer2DModel              -> DiTDenoiser (class labels, null class = num_classes)
- transformer/ PixArtTransformer2DModel + text_encoder/ + tokenizer/   -> TextConditionedDenoiser
- unet/ UNet2DConditionModel + text_encoder/ + tokenizer/ (Stable Diffusion) -> TextConditionedDenoiser
- unet/ UNet2DModel (with vae/: a latent UNet)    -> DiffusersUNet
and, when vae/ (AutoencoderKL) is present, the denoiser works on latents inside a LatentDiffusionModel.
"""
from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path

from benchmark.errors import ConfigError, MissingAssetError

DENOISER_CLASSES = ("DiTTransformer2DModel", "PixArtTransformer2DModel", "UNet2DConditionModel", "UNet2DModel")


def _class_name(config_file: Path) -> str | None:
    try:
        return json.loads(config_file.read_text()).get("_class_name")
    except (OSError, ValueError):
        return None


def denoiser_folder(folder: Path) -> tuple[str, Path] | None:
    """(class name, subfolder) of the pipeline's denoiser, or None when the folder is not such a pipeline."""
    for sub in ("transformer", "unet"):
        name = _class_name(folder / sub / "config.json")
        if name in DENOISER_CLASSES:
            return name, folder / sub
    return None


def is_pipeline_folder(folder: Path) -> bool:
    """A transformer or text-conditioned denoiser, or any denoiser with an AutoencoderKL in vae/."""
    found = denoiser_folder(folder)
    if found is None:
        return False
    return found[0] != "UNet2DModel" or (folder / "vae" / "config.json").is_file()


def load_pipeline_folder(folder: Path, *, num_classes: int | None = None, last_layer: str | None = None):
    """The DiffusionModel of a pipeline folder (see the module docstring)."""
    from benchmark.models.diffusers_unet import (
        DiffusersUNet,
        alphas_cumprod_from_scheduler_config,
        prediction_type_from_scheduler_config,
    )

    name, sub = denoiser_folder(folder)  # type: ignore[misc]
    scheduler_file = folder / "scheduler" / "scheduler_config.json"
    if not scheduler_file.is_file():
        raise MissingAssetError(f"pipeline folder {folder} has no scheduler/scheduler_config.json. Fix: save the "
                                "pipeline with save_pretrained() or copy the scheduler folder there.")
    scheduler = json.loads(scheduler_file.read_text())
    ab = alphas_cumprod_from_scheduler_config(scheduler)
    prediction = prediction_type_from_scheduler_config(scheduler)
    network = _load_component(name, sub)
    if name == "DiTTransformer2DModel":
        from benchmark.models.dit import DiTDenoiser

        denoiser = DiTDenoiser(network, ab, prediction_type=prediction, num_classes=num_classes,
                               last_layer_name=last_layer)
    elif name == "UNet2DModel":
        denoiser = DiffusersUNet(network, ab, prediction_type=prediction, num_classes=num_classes,
                                 last_layer_name=last_layer)
    else:
        from benchmark.models.conditioning import TextConditionedDenoiser

        if num_classes is not None:
            raise ConfigError("model.num_classes", num_classes, "absent for a text-conditioned model",
                              "give prompts with run.prompts or run.prompts_file instead")
        tokenizer, encoder = _load_text_components(folder)
        denoiser = TextConditionedDenoiser(network, tokenizer, encoder, ab, prediction_type=prediction,
                                           last_layer_name=last_layer)
    denoiser.source = str(folder)
    if not (folder / "vae" / "config.json").is_file():
        return denoiser
    from benchmark.models.latent import LatentDiffusionModel

    return LatentDiffusionModel(denoiser, _load_component("AutoencoderKL", folder / "vae"))


def _load_component(class_name: str, sub: Path):
    """A diffusers model class `class_name` from `sub` (weights checked, errors named)."""
    import diffusers

    if not list(sub.glob("diffusion_pytorch_model*")):
        raise MissingAssetError(f"{sub} has no weights (diffusion_pytorch_model.safetensors or .bin). Fix: copy the "
                                "weights there or re-save the pipeline with save_pretrained().")
    found = _class_name(sub / "config.json")
    if class_name == "AutoencoderKL" and found != "AutoencoderKL":
        raise ConfigError(f"{sub}/config.json _class_name", found, "AutoencoderKL (the only autoencoder supported)")
    try:
        return getattr(diffusers, class_name).from_pretrained(sub, low_cpu_mem_usage=find_spec("accelerate") is not None)
    except Exception as err:  # corrupt or truncated files
        raise MissingAssetError(f"could not load {class_name} from {sub}: {err}. Fix: the files are corrupt or "
                                "incomplete; re-download or re-save them.") from err


def _load_text_components(folder: Path):
    """(tokenizer, text encoder) from tokenizer/ and text_encoder/, classes as model_index.json names them."""
    import transformers

    for sub in ("tokenizer", "text_encoder"):
        if not (folder / sub).is_dir():
            raise MissingAssetError(f"text-conditioned pipeline {folder} has no {sub}/ folder. Fix: save the whole "
                                    "pipeline (save_pretrained) including its tokenizer and text encoder.")
    index_file = folder / "model_index.json"
    index = json.loads(index_file.read_text()) if index_file.is_file() else {}
    encoder_class = (index.get("text_encoder") or [None, "AutoModel"])[1]
    encoder_cls = getattr(transformers, encoder_class, None)
    if encoder_cls is None:
        raise ConfigError("model_index.json text_encoder", encoder_class, "a class of the transformers package")
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder / "tokenizer")
    return tokenizer, encoder_cls.from_pretrained(folder / "text_encoder").eval()


def hub_pipeline_folder(hub_id: str) -> Path | None:
    """The local snapshot of a hub pipeline with a latent, transformer or text-conditioned denoiser, downloaded
    only because the user named the id (None: the id is not such a pipeline, e.g. a UNet2DModel pipeline)."""
    from huggingface_hub import hf_hub_download, snapshot_download

    try:
        index = json.loads(Path(hf_hub_download(hub_id, "model_index.json")).read_text())
    except Exception:  # no model_index.json (a bare model repository): not a pipeline
        return None
    denoiser = (index.get("transformer") or index.get("unet") or [None, None])[1]
    if denoiser not in DENOISER_CLASSES or (denoiser == "UNet2DModel" and "vae" not in index):
        return None
    wanted = [f"{part}/*" for part in ("scheduler", "transformer", "unet", "vae", "text_encoder", "tokenizer")]
    return Path(snapshot_download(hub_id, allow_patterns=["model_index.json", *wanted]))

