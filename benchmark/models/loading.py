"""A model from a name: a preset, a local diffusers folder (dispatched on its layout), or a hub id.

`ModelSpec` is the `[model]` section of a run config (and the model half of a `benchmark.presets.Preset`):

    [model]
    path = "my_model"          # a diffusers folder (pipeline or bare UNet2DModel), or a hub id
    num_classes = 10           # optional: absent = the model's own (unconditional for a UNet without labels)
    last_layer = "conv_out"    # optional: dotted path of the layer BayesDiff's last-layer Laplace uses

A plain PyTorch network comes from `factory = "glue.py:make_unet"` instead of `path` (with `weights`,
`prediction_type`, `beta_schedule`, ...): that table is a `benchmark.models.factory.FactorySpec`.

Folder layouts are tried in order (`FOLDER_LAYOUTS`); a branch for another architecture adds itself with
`register_layout(name, matches, load)` (latent, transformer and text-conditioned pipelines do).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from benchmark.errors import ConfigError, MissingAssetError

MODEL_KEYS = ("path", "num_classes", "last_layer")


@dataclass(frozen=True)
class ModelSpec:
    """Where a model comes from. `env` names an environment variable that, when set, gives a local folder
    to use instead of `path` (e.g. a downloaded copy of a hub model)."""

    path: str
    num_classes: int | None = None
    last_layer: str | None = None
    env: str | None = None

    def resolved_path(self) -> str:
        """`$env` when set, else `path`."""
        override = os.environ.get(self.env, "").strip() if self.env else ""
        return str(Path(override).expanduser()) if override else self.path

    @property
    def local_dir(self) -> Path | None:
        """The local folder the model loads from, or None (a hub id)."""
        path = Path(self.resolved_path()).expanduser()
        return path if path.is_dir() else None

    def load(self):
        """The model (see `load_model`)."""
        return load_folder_or_hub(self.resolved_path(), num_classes=self.num_classes, last_layer=self.last_layer)


@dataclass(frozen=True)
class FolderLayout:
    """A kind of model folder: `matches(folder)` recognises it; `load(folder, num_classes=, last_layer=)` loads it."""

    name: str
    matches: Callable[[Path], bool]
    load: Callable[..., Any]


FOLDER_LAYOUTS: list[FolderLayout] = []


def register_layout(name: str, matches: Callable[[Path], bool], load: Callable[..., Any], *, first: bool = True) -> None:
    """Add a folder layout; `first` puts it before the UNet2DModel layout (more specific layouts go first)."""
    layout = FolderLayout(name, matches, load)
    FOLDER_LAYOUTS.insert(0, layout) if first else FOLDER_LAYOUTS.append(layout)


def load_folder_or_hub(path: str, *, num_classes: int | None = None, last_layer: str | None = None):
    """A local folder, dispatched on its layout; anything else is tried as a hub id (downloaded only here)."""
    from benchmark.models.diffusers_unet import DiffusersUNet

    folder = Path(path).expanduser()
    if folder.is_dir():
        for layout in FOLDER_LAYOUTS:
            if layout.matches(folder):
                model = layout.load(folder, num_classes=num_classes, last_layer=last_layer)
                model.source = str(folder)
                return model
        raise MissingAssetError(
            f"model folder {folder} has no layout this suite knows ({', '.join(l.name for l in FOLDER_LAYOUTS)}). "
            "Fix: point model.path to a diffusers pipeline folder (model_index.json, unet/, scheduler/) or a "
            "UNet2DModel folder (config.json + diffusion_pytorch_model.safetensors).")
    from benchmark.models.pipelines import hub_pipeline_folder

    if path.count("/") == 1 and not path.startswith((".", "/", "~")) and Path(path).suffix == "":
        check_hub_available(path)  # offline or no network: one line now, not minutes of retries
    snapshot = hub_pipeline_folder(path) if path.count("/") == 1 else None  # DiT / SD / PixArt / latent pipelines
    if snapshot is not None:
        return load_folder_or_hub(str(snapshot), num_classes=num_classes, last_layer=last_layer)
    return DiffusersUNet.from_pretrained(path, num_classes=num_classes, last_layer_name=last_layer)


def hub_offline() -> bool:
    """Whether downloads from the hub are switched off (HF_HUB_OFFLINE, read when asked, not at import)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def hub_reachable(endpoint: str, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the hub's host opens within `timeout` seconds (no request is sent)."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(endpoint)
    try:
        socket.create_connection((url.hostname or "", url.port or (443 if url.scheme == "https" else 80)),
                                 timeout=timeout).close()
    except OSError:
        return False
    return True


def check_hub_available(hub_id: str) -> None:
    """A hub id loads from the local cache, or is downloaded when downloads are allowed and the hub can be reached;
    otherwise a ConfigError (exit 2) names model.path and the fix."""
    from huggingface_hub import constants, try_to_load_from_cache

    if any(isinstance(try_to_load_from_cache(hub_id, name), str)
           for name in ("model_index.json", "config.json", "unet/config.json")):
        return
    fix = "give a local folder (saved with save_pretrained, or downloaded with `hf download " + hub_id + " --local-dir DIR`)"
    if hub_offline():
        raise ConfigError("model.path", hub_id, "a local folder, or a hub id in the local cache: HF_HUB_OFFLINE is "
                          "set, so nothing is downloaded, and the cache does not hold it", fix +
                          ", or unset HF_HUB_OFFLINE to allow the download")
    endpoint = os.environ.get("HF_ENDPOINT", "").strip() or constants.ENDPOINT
    if not hub_reachable(endpoint):
        raise ConfigError("model.path", hub_id, f"a local folder, or a hub id that can be downloaded, but {endpoint} "
                          "cannot be reached (no network?) and the local cache does not hold it", fix +
                          ", or allow downloads (connect to the network, or set HF_ENDPOINT to a reachable mirror)")


def _is_unet2d_folder(folder: Path) -> bool:
    import json

    for config in (folder / "unet" / "config.json", folder / "config.json"):
        if config.is_file():
            try:
                return json.loads(config.read_text()).get("_class_name", "UNet2DModel") == "UNet2DModel"
            except (OSError, ValueError):
                return True  # let the loader report the broken file
    return False


def _load_unet2d(folder: Path, *, num_classes: int | None = None, last_layer: str | None = None):
    from benchmark.models.diffusers_unet import DiffusersUNet

    return DiffusersUNet.from_pretrained(folder, num_classes=num_classes, last_layer_name=last_layer)


register_layout("UNet2DModel (diffusers pipeline or bare UNet folder)", _is_unet2d_folder, _load_unet2d, first=False)

from benchmark.models import pipelines as _pipelines  # noqa: E402 (latent / transformer / text-conditioned layouts)

register_layout("latent, transformer or text-conditioned pipeline (vae/ AutoencoderKL, transformer/ DiT or PixArt, "
                "unet/ UNet2DConditionModel)", _pipelines.is_pipeline_folder, _pipelines.load_pipeline_folder)


def model_spec_from_section(section: dict[str, Any], *, base_dir: Path | None = None):
    """Validate a `[model]` table: a ModelSpec (`path`), or a FactorySpec (`factory`: a plain PyTorch network,
    benchmark.models.factory); a relative path is taken relative to the config's folder when it exists there."""
    from benchmark.models.factory import FACTORY_KEYS, factory_spec_from_section

    if "factory" in section:
        return factory_spec_from_section(section, base_dir=base_dir)
    unknown = sorted(set(section) - set(MODEL_KEYS))
    if unknown:
        only_factory = unknown[0] in FACTORY_KEYS
        raise ConfigError(f"model.{unknown[0]}", section[unknown[0]], f"known keys are {', '.join(MODEL_KEYS)}"
                          + (" (a diffusers folder states it in its own config files)" if only_factory else ""),
                          "remove the key, or build a plain PyTorch network with factory = \"file.py:function\""
                          if only_factory else "correct the spelling or remove the key")
    path = section.get("path")
    if not isinstance(path, str) or not path.strip():
        raise ConfigError("model.path", path, "a local diffusers folder or a hub id",
                          'e.g. path = "my_model" (a folder saved with save_pretrained), or factory = '
                          '"file.py:function" for a plain PyTorch network')
    if base_dir is not None and not Path(path).expanduser().is_absolute() and (base_dir / path).is_dir():
        path = str((base_dir / path).resolve())
    num_classes = section.get("num_classes")
    if num_classes is not None and (not isinstance(num_classes, int) or isinstance(num_classes, bool)
                                    or num_classes < 1):
        raise ConfigError("model.num_classes", num_classes, "an integer >= 1 (leave it out for an unconditional model)",
                          "set num_classes to the model's number of classes, or remove the key")
    last_layer = section.get("last_layer")
    if last_layer is not None and (not isinstance(last_layer, str) or not last_layer):
        raise ConfigError("model.last_layer", last_layer, 'a dotted module path such as "conv_out"',
                          'e.g. last_layer = "conv_out", or remove the key')
    return ModelSpec(path=path, num_classes=num_classes, last_layer=last_layer)
