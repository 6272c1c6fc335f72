"""Plug-ins: estimators and presets defined outside the package, imported before a config is validated.

Three ways in, all read before `[estimators.*]` names are checked:

- ``[run] plugins = ["my_package.my_estimator", "path/to/my_estimator.py"]`` — a module name is imported
  with importlib; a path ending in ``.py`` (relative to the config's folder, else the working directory)
  is imported from its file. Importing it runs its ``@estimators.register("name")`` decorators.
- entry points of installed distributions, group ``diffusion_uq_bench.estimators``: the target is a module
  (imported, as above) or an `UncertaintyEstimator` subclass (registered under the entry point's name
  unless it registered itself); e.g. in the plug-in's pyproject.toml::

      [project.entry-points."diffusion_uq_bench.estimators"]
      my_estimator = "my_package.my_estimator"

- group ``diffusion_uq_bench.presets``: the target is a `benchmark.presets.Preset` (or a class / function
  without arguments returning one), registered under its `name`.

A plug-in that fails to import, registers a class that is not an estimator, or takes a built-in's name is a
ConfigError naming the plug-in and the cause (exit code 2 in the CLI, before anything is written).
"""
from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Sequence

from benchmark.errors import ConfigError
from benchmark.importing import file_module_name, import_file  # noqa: F401 (re-exported)

ESTIMATOR_GROUP = "diffusion_uq_bench.estimators"
PRESET_GROUP = "diffusion_uq_bench.presets"
_FILES: dict[Path, str] = {}  # resolved plug-in file -> module name it was imported as (imported once)
_ENTRY_POINTS_LOADED = False


def load_plugins(plugins: Sequence[str], *, base_dir: Path | None = None, field: str = "run.plugins") -> None:
    """Import every plug-in of `plugins` (module names or .py paths) and the entry-point plug-ins, once each."""
    if isinstance(plugins, str) or not all(isinstance(p, str) and p.strip() for p in plugins):
        raise ConfigError(field, plugins, "a list of module names or .py file paths",
                          'e.g. plugins = ["my_package.my_estimator", "my_estimator.py"]')
    load_entry_points()
    for plugin in plugins:
        if _is_file(plugin):
            _import_file(_resolve_file(plugin, base_dir, field), plugin, field)
        else:
            _guarded_import(lambda: importlib.import_module(plugin), plugin, field, f"plug-in {plugin}")


def resolved_plugins(plugins: Sequence[str], base_dir: Path | None = None) -> tuple[str, ...]:
    """`plugins` with each .py path made absolute as `load_plugins` found it (relative to `base_dir`, the config's
    folder, else the working directory); module names as written. A run saves these, so its config.json reads
    back from any folder (`validate`, `leaderboard`)."""
    return tuple(str(_resolve_file(p, base_dir, "run.plugins")) if _is_file(p) else p for p in plugins)


def load_entry_points() -> None:
    """Import the estimator and preset plug-ins advertised by installed distributions (once per process)."""
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED = True
    for ep in importlib.metadata.entry_points(group=ESTIMATOR_GROUP):
        label = _entry_point_label(ep)
        target = _guarded_import(ep.load, ep.value, f"entry point {ESTIMATOR_GROUP}", label)
        _register_entry_point_class(ep.name, target, label)
    for ep in importlib.metadata.entry_points(group=PRESET_GROUP):
        from benchmark import presets

        label = _entry_point_label(ep)
        target = _guarded_import(ep.load, ep.value, f"entry point {PRESET_GROUP}", label)
        presets.register(presets.as_preset(target, f"entry point {PRESET_GROUP}", ep.value), origin=label)


def _register_entry_point_class(name: str, target: object, label: str) -> None:
    import estimators
    from estimators.registry import registering_from

    if not isinstance(target, type):
        return  # a module: importing it registered its estimators
    if name in estimators.available() and estimators.get_class(name) is target:
        return
    try:
        with registering_from(label):
            estimators.register(name)(target)
    except ValueError as err:
        raise ConfigError(f"entry point {ESTIMATOR_GROUP}", label, _one_line(err),
                          "fix or uninstall the distribution that provides it") from None


def _guarded_import(load, plugin: str, field: str, label: str):
    """load() with every registration recorded as coming from `label`; any failure becomes a ConfigError."""
    from estimators.registry import registering_from

    try:
        with registering_from(label):
            return load()
    except ConfigError:
        raise
    except ModuleNotFoundError as err:
        raise ConfigError(field, plugin, f"an importable module (ModuleNotFoundError: {_one_line(err)})",
                          "install it, fix the name, or give the path of a .py file") from None
    except Exception as err:  # noqa: BLE001 - whatever a user's module raises is reported, not re-raised
        raise ConfigError(field, plugin, f"a plug-in that imports cleanly, but importing it raised "
                          f"{type(err).__name__}: {_one_line(err)}", "fix the plug-in") from None


def _import_file(path: Path, plugin: str, field: str) -> None:
    if path in _FILES:
        return
    module_name = file_module_name(path, "uqbench_plugin")
    _guarded_import(lambda: import_file(path, module_name), plugin, field, f"plug-in {path}")
    _FILES[path] = module_name


def _is_file(plugin: str) -> bool:
    return plugin.endswith(".py") or "/" in plugin or "\\" in plugin


def _resolve_file(plugin: str, base_dir: Path | None, field: str) -> Path:
    path = Path(plugin).expanduser()
    candidates = [path] if path.is_absolute() else [*([base_dir / path] if base_dir else []), Path.cwd() / path]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    raise ConfigError(field, plugin, f"an existing .py file (looked at {', '.join(str(c) for c in candidates)})",
                      "give a path relative to the config file or absolute, or a module name")


def _entry_point_label(ep: importlib.metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    where = f"{dist.name} {dist.version}" if dist is not None else ep.value
    return f"entry point {ep.name} ({where})"


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__
