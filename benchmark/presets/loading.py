"""Finding a preset or a model by name: the built-in presets, the ones named by $UQBENCH_EXTRA_PRESETS, local
model folders and hub ids (`load_model`, re-exported as `benchmark.models.load_model`)."""
from __future__ import annotations

import importlib
import os
from pathlib import Path

from benchmark import presets
from benchmark.errors import ConfigError
from benchmark.models.loading import load_folder_or_hub

EXTRA_PRESETS_ENV = "UQBENCH_EXTRA_PRESETS"


def load_model(path_or_preset: str | Path, *, num_classes: int | None = None, last_layer: str | None = None,
               path: str | None = None):
    """A DiffusionModel for a preset name (`python -m benchmark list`), a local diffusers folder or a hub id.

    Keyword arguments are those of the `[model]` section (`path` may stand in for the first argument).
    """
    name = str(path if path is not None else path_or_preset)
    if name in presets.names() and num_classes is None and last_layer is None:
        return presets.get(name).load_model()
    return load_folder_or_hub(name, num_classes=num_classes, last_layer=last_layer)


def load_preset(name: str):
    """A built-in preset, or one named by $UQBENCH_EXTRA_PRESETS (see `extra_presets`)."""
    extra = extra_presets()
    if name in extra:
        return extra[name]
    if name not in presets.names():
        raise ConfigError("run.preset", name, f"one of {', '.join([*presets.names(), *extra])}",
                          "see python -m benchmark list")
    return presets.get(name)


def extra_presets() -> dict[str, object]:
    """Presets added without editing the package: $UQBENCH_EXTRA_PRESETS = "module:attr[,module:attr...]".

    Each attr is a preset object (with `name`, `load_model()`, ...) or a class / zero-argument function that
    returns one; it is importable from a fresh process (torchrun workers, a resumed run), which a
    monkeypatch is not. Example: UQBENCH_EXTRA_PRESETS=tests.toy_preset:ToyPreset (the test suite's preset).
    """
    spec = os.environ.get(EXTRA_PRESETS_ENV, "").strip()
    found: dict[str, object] = {}
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        module_name, _, attr = item.partition(":")
        try:
            target = getattr(importlib.import_module(module_name), attr) if module_name and attr else None
        except (ImportError, AttributeError) as err:
            raise ConfigError(EXTRA_PRESETS_ENV, item, f"an importable module:attribute ({err})",
                              "fix the name or unset the variable") from None
        if target is None:
            raise ConfigError(EXTRA_PRESETS_ENV, item, "entries of the form module:attribute",
                              "e.g. UQBENCH_EXTRA_PRESETS=mypackage.presets:MyPreset")
        preset = presets.as_preset(target, EXTRA_PRESETS_ENV, item)  # refuses an estimator class, a module, ...
        found[str(preset.name)] = preset
    return found
