"""Finding a preset or a model by name: the built-in presets, the ones named by $UQBENCH_EXTRA_PRESETS, local
model folders and hub ids (`load_model`, re-exported as `benchmark.models.load_model`)."""
from __future__ import annotations

from pathlib import Path

from benchmark import presets
from benchmark.models.loading import load_folder_or_hub
from benchmark.presets import EXTRA_PRESETS_ENV, extra_presets  # noqa: F401 (re-exported)


def load_model(path_or_preset: str | Path, *, num_classes: int | None = None, last_layer: str | None = None,
               path: str | None = None):
    """A DiffusionModel for a preset name (every one `python -m benchmark list` shows, $UQBENCH_EXTRA_PRESETS
    included), a local diffusers folder or a hub id.

    Keyword arguments are those of the `[model]` section (`path` may stand in for the first argument).
    """
    name = str(path if path is not None else path_or_preset)
    if num_classes is None and last_layer is None and is_preset(name):
        return presets.get(name).load_model()
    return load_folder_or_hub(name, num_classes=num_classes, last_layer=last_layer)


def is_preset(name: str) -> bool:
    """Whether `name` names a preset: a built-in, a plug-in's or one of $UQBENCH_EXTRA_PRESETS."""
    return name in presets.names() or name in extra_presets()


def load_preset(name: str):
    """The preset `run.preset` names: a built-in, a plug-in's or one of $UQBENCH_EXTRA_PRESETS (`presets.get`)."""
    return presets.get(name, field_name="run.preset")
