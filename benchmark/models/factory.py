"""`[model] factory`: a plain PyTorch noise predictor built by a function, described with diffusers' scheduler names.

    [model]
    factory = "glue.py:make_unet"     # or "package.module:function"; a relative file is taken from the config's folder
    weights = "ddpm_mnist.pth"        # optional: a .pt/.pth/.safetensors state dict loaded into the module
    prediction_type = "epsilon"       # epsilon (default) | v_prediction | sample
    beta_schedule = "linear"          # linear (default) | scaled_linear | squaredcos_cap_v2 ...
    beta_start = 0.0001               # ... with beta_start, beta_end, num_train_timesteps (diffusers' defaults) ...
    beta_end = 0.02
    num_train_timesteps = 1000
    # alphas_cumprod = "ab.npy"       # ... or the schedule ab_t itself (replaces the four keys above)
    last_layer = "conv_out"           # optional: the Conv2d / Linear layer whose input features last-layer Laplace uses
    num_classes = 10                  # optional: a class-conditional network, called as f(x, t, y)
    sample_shape = [1, 28, 28]        # optional: (C, H, W); absent = the shape of the run's data

The function takes no arguments and returns an `nn.Module` called as f(x, t) (t: the integer training timesteps
[B]) or f(x, t, y). Loading it (`FactorySpec.load`) imports the function, builds the module, loads the weights
and probes it with one batch-1 forward call; every failure is a ConfigError naming the field (exit 2 in the CLI,
before the run folder is touched).
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Callable

from benchmark.errors import ConfigError
from benchmark.models.plain_torch import one_line
from benchmark.models.prediction import PREDICTION_TYPES
from benchmark.models.schedules import BETA_SCHEDULES

FACTORY_KEYS = ("factory", "weights", "prediction_type", "beta_schedule", "beta_start", "beta_end",
                "num_train_timesteps", "alphas_cumprod", "last_layer", "num_classes", "sample_shape")
SCHEDULE_KEYS = ("beta_schedule", "beta_start", "beta_end", "num_train_timesteps")


@dataclass(frozen=True)
class FactorySpec:
    """A `[model]` table with `factory`: where the network comes from and the schedule it was trained with.

    Paths are absolute (resolved at parse time); the fields are the table's keys, so `asdict` writes the table
    back. The beta fields are None when `alphas_cumprod` names a file.
    """

    factory: str
    weights: str | None = None
    prediction_type: str = "epsilon"  # this and the schedule's defaults are diffusers' DDPMScheduler's
    beta_schedule: str | None = "linear"
    beta_start: float | None = 1e-4
    beta_end: float | None = 0.02
    num_train_timesteps: int | None = 1000
    alphas_cumprod: str | None = None
    last_layer: str | None = None
    num_classes: int | None = None
    sample_shape: list[int] | None = None  # a list, as JSON reads it back (a resumed run compares config.json)

    # ------------------------------------------------------------------ the ModelSpec interface
    @property
    def path(self) -> str:
        """What names the model in reports and the preset bundle: the factory."""
        return self.factory

    env = None  # no environment-variable override (ModelSpec.env)
    local_dir = None  # not a model folder: a last-layer posterior is fitted into the run folder

    def resolved_path(self) -> str:
        return self.factory

    def with_shape_from(self, data: Any) -> "FactorySpec":
        """This spec with `sample_shape` taken from `data` (a DataSpec: its first training image) when unset."""
        if self.sample_shape is not None or data is None:
            return self
        return replace(self, sample_shape=[int(s) for s in data.load("train", n=1).images.shape[1:]])

    def load(self):
        """The network as a DiffusionModel (benchmark.models.plain_torch.PlainTorchModel), probed once."""
        from benchmark.models.plain_torch import PlainTorchModel, check_call, load_weights, probe
        from benchmark.models.schedules import load_alphas_cumprod, schedule_alphas_cumprod

        if self.sample_shape is None:
            raise ConfigError("model.sample_shape", None, "the shape (C, H, W) of one sample: the factory's network "
                              "does not state it and the run has no [data] to take it from",
                              "set sample_shape = [C, H, W] in [model] (e.g. [1, 28, 28]) or add a [data] section")
        network = build_network(self.factory)
        if self.weights is not None:
            load_weights(network, self.weights)
        check_call(network, self.num_classes, self.factory)
        ab = (load_alphas_cumprod(self.alphas_cumprod) if self.alphas_cumprod is not None else
              schedule_alphas_cumprod(self.beta_schedule, self.num_train_timesteps, self.beta_start, self.beta_end))
        model = PlainTorchModel(network, ab, sample_shape=self.sample_shape, prediction_type=self.prediction_type,
                                num_classes=self.num_classes, last_layer_name=self.last_layer, source=self.factory)
        probe(model, self.factory, self.weights)
        return model

    def source_files(self) -> dict[str, str]:
        """{field: file} of what the model is read from besides the config: the factory's source file (when
        importlib finds one), the weights, the schedule file (for a run's fingerprint)."""
        target = self.factory.rpartition(":")[0]
        try:
            source = target if _is_file(target) else getattr(importlib.util.find_spec(target), "origin", None)
        except (ImportError, ValueError):
            source = None
        from benchmark.models.import_closure import closure_files

        files = {"factory": source, "weights": self.weights, "alphas_cumprod": self.alphas_cumprod}
        imported = {f"import {name}": path for name, path in closure_files(self.factory).items()}
        return {k: str(v) for k, v in {**files, **imported}.items() if v}


# ---------------------------------------------------------------------------------------------- the factory
def build_network(factory: str):
    """Import `factory` ("file.py:function" or "package.module:function"), call the function without arguments
    and return the nn.Module it gives (ConfigError naming model.factory otherwise)."""
    from torch import nn

    from benchmark.models.import_closure import recording

    with recording(factory, closure_roots(factory), exclude=_factory_file(factory)):
        return _build_network(factory, nn)


def _build_network(factory: str, nn) -> Any:
    function = import_factory(factory)
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        parameters = []  # no signature to read (a builtin): the call decides
    required = [p.name for p in parameters if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if required:
        raise ConfigError("model.factory", factory, f"a function callable without arguments, but it requires "
                          f"({', '.join(required)})", "give every argument a default, or wrap the call in a "
                          "function that takes none")
    try:
        network = _with_folder_on_path(factory, function)
    except Exception as err:  # noqa: BLE001 - whatever the user's function raises is reported, not re-raised
        raise ConfigError("model.factory", factory, f"a function that builds the network, but calling it raised "
                          f"{type(err).__name__}: {one_line(err)}", "fix the function") from None
    if not isinstance(network, nn.Module):
        raise ConfigError("model.factory", factory, f"a function returning an nn.Module, but it returned an object "
                          f"of type {type(network).__name__}", "return the network (a torch.nn.Module)")
    return network


def import_factory(factory: str) -> Callable[[], Any]:
    """The function named by "file.py:function" (imported from the file) or "package.module:function"."""
    target, _, name = factory.rpartition(":")
    try:
        if _is_file(target):
            module = _with_folder_on_path(factory, lambda: _import_file(Path(target)))
        else:
            module = importlib.import_module(target)
    except Exception as err:  # noqa: BLE001 - ImportError, SyntaxError, anything the module raises on import
        raise ConfigError("model.factory", factory, f"an importable {'file' if _is_file(target) else 'module'}, but "
                          f"importing it raised {type(err).__name__}: {one_line(err)}",
                          "fix the file" if _is_file(target) else "install the package or give the path of a .py file"
                          ) from None
    function = getattr(module, name, None)
    if not callable(function):
        found = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                       and getattr(v, "__module__", None) == module.__name__)
        raise ConfigError("model.factory", factory, f"a function {name!r} in {target}" +
                          (f" (it defines {', '.join(found[:5])})" if found else ""), "fix the name after the colon")
    return function


def _import_file(path: Path):
    """The module of a .py file, imported under a name unique to its path (re-imported on every load)."""
    from benchmark.importing import file_module_name, import_file

    return import_file(path, file_module_name(path, "uqbench_factory"))


def _with_folder_on_path(factory: str, call: Callable[[], Any]) -> Any:
    """call() with a factory file's folder first on sys.path, so that it imports modules beside it."""
    target = factory.rpartition(":")[0]
    if not _is_file(target):
        return call()
    folder = str(Path(target).parent)
    sys.path.insert(0, folder)
    try:
        return call()
    finally:
        sys.path.remove(folder)


def closure_roots(factory: str) -> list[Path]:
    """Where the factory's own code lives: the factory file's folder, or a factory module's top-level package
    folder (none for a module that cannot be found)."""
    target = factory.rpartition(":")[0]
    if _is_file(target):
        return [Path(target).parent]
    try:
        spec = importlib.util.find_spec(target.partition(".")[0])
    except (ImportError, ValueError):
        return []
    locations = list(getattr(spec, "submodule_search_locations", None) or [])
    origin = getattr(spec, "origin", None)
    return [Path(p) for p in locations] or ([Path(origin).parent] if origin and Path(origin).is_file() else [])


def _factory_file(factory: str) -> Path | None:
    target = factory.rpartition(":")[0]
    return Path(target).resolve() if _is_file(target) else None


def _is_file(target: str) -> bool:
    return target.endswith(".py") or "/" in target or "\\" in target


# ---------------------------------------------------------------------------------------------- parsing
def factory_spec_from_section(section: dict[str, Any], *, base_dir: Path | None = None) -> FactorySpec:
    """Validate a `[model]` table with `factory` (see the module docstring); relative paths are taken from the
    config's folder (`base_dir`), else the working directory. Every error names the field, the value and the fix."""
    unknown = sorted(set(section) - set(FACTORY_KEYS))
    if unknown:
        hint = "path is for diffusers folders and hub ids: give factory or path, not both" if "path" in unknown \
            else "correct the spelling or remove the key"
        raise ConfigError(f"model.{unknown[0]}", section[unknown[0]], f"with model.factory the keys are "
                          f"{', '.join(FACTORY_KEYS)}", hint)
    values = {**{f.name: f.default for f in fields(FactorySpec)}, **section}
    schedule_file = section.get("alphas_cumprod")
    both = [k for k in SCHEDULE_KEYS if k in section] if schedule_file is not None else []
    if both:
        raise ConfigError(f"model.{both[0]}", section[both[0]], "absent when model.alphas_cumprod names the "
                          "schedule", f"remove model.{both[0]} or model.alphas_cumprod")
    spec = FactorySpec(
        factory=_factory(section.get("factory"), base_dir),
        weights=_file(section.get("weights"), base_dir, "model.weights", (".pt", ".pth", ".safetensors"),
                      'a state dict file, e.g. weights = "ddpm_mnist.pth"'),
        prediction_type=_choice(values["prediction_type"], "model.prediction_type", PREDICTION_TYPES,
                                "what the network outputs: the noise, v = a_t eps - s_t x0, or x0"),
        beta_schedule=None if schedule_file else _choice(values["beta_schedule"], "model.beta_schedule", BETA_SCHEDULES,
                                                         "diffusers' name of the training schedule, or give "
                                                         'alphas_cumprod = "file.npy"'),
        beta_start=None if schedule_file else _beta(values["beta_start"], "model.beta_start"),
        beta_end=None if schedule_file else _beta(values["beta_end"], "model.beta_end"),
        num_train_timesteps=None if schedule_file else _integer(values["num_train_timesteps"],
                                                                "model.num_train_timesteps", 2, 1000),
        alphas_cumprod=None if schedule_file is None else _schedule_file(schedule_file, base_dir),
        last_layer=_name(section.get("last_layer")),
        num_classes=None if section.get("num_classes") is None else _integer(section["num_classes"],
                                                                             "model.num_classes", 1, 10),
        sample_shape=_shape(section.get("sample_shape")),
    )
    if spec.beta_start is not None and spec.beta_end is not None and not spec.beta_start < spec.beta_end:
        raise ConfigError("model.beta_end", spec.beta_end, f"greater than beta_start = {spec.beta_start}",
                          "e.g. beta_start = 0.0001, beta_end = 0.02 (DDPM)")
    return spec


def _factory(value: Any, base_dir: Path | None) -> str:
    example = 'e.g. factory = "glue.py:make_unet" (a file beside the config) or "my_package.models:make_unet"'
    if not isinstance(value, str) or value.count(":") < 1 or not all(value.rpartition(":")[i].strip() for i in (0, 2)):
        raise ConfigError("model.factory", value, "\"file.py:function\" or \"package.module:function\"", example)
    target, _, name = value.rpartition(":")
    if not _is_file(target):
        return value
    path = _existing(target, base_dir)
    if path is None:
        raise ConfigError("model.factory", value, f"a .py file that exists (looked in "
                          f"{base_dir or Path.cwd()})", "give the file's path relative to the config's folder")
    return f"{path}:{name}"


def _file(value: Any, base_dir: Path | None, field: str, suffixes: tuple[str, ...], what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or Path(value).suffix.lower() not in suffixes:
        raise ConfigError(field, value, f"a {'/'.join(suffixes)} file", what)
    path = _existing(value, base_dir)
    if path is None:
        raise ConfigError(field, value, f"a file that exists (looked in {base_dir or Path.cwd()})",
                          "give its path relative to the config's folder, or an absolute path")
    return str(path)


def _schedule_file(value: Any, base_dir: Path | None) -> str:
    from benchmark.models.schedules import load_alphas_cumprod

    path = _file(value, base_dir, "model.alphas_cumprod", (".npy",), 'e.g. alphas_cumprod = "alphas_cumprod.npy"')
    load_alphas_cumprod(str(path))  # a readable, valid schedule now, not after the data is loaded
    return str(path)


def _existing(value: str, base_dir: Path | None) -> Path | None:
    """`value` as an absolute path: relative to `base_dir` first, then the working directory (None: no file)."""
    path = Path(value).expanduser()
    candidates = [path] if path.is_absolute() or base_dir is None else [base_dir / path, path]
    return next((p.resolve() for p in candidates if p.is_file()), None)


def _choice(value: Any, field: str, choices: tuple[str, ...], what: str) -> str:
    if value not in choices:
        raise ConfigError(field, value, f"one of {', '.join(choices)} ({what})", f'set {field.split(".")[-1]} = '
                          f'"{choices[0]}" or another of these')
    return value


def _beta(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ConfigError(field, value, "a number in (0, 1)", "e.g. beta_start = 0.0001, beta_end = 0.02 (DDPM)")
    return float(value)


def _integer(value: Any, field: str, low: int, example: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(field, value, f"an integer >= {low}", f"e.g. {field.split('.')[-1]} = {example}")
    return value


def _name(value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ConfigError("model.last_layer", value, "the dotted name of a Conv2d / Linear submodule",
                          'e.g. last_layer = "conv_out" (print(network) lists the names)')
    return value


def _shape(value: Any) -> list[int] | None:
    if value is None:
        return None
    if (not isinstance(value, (list, tuple)) or len(value) != 3
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in value)):
        raise ConfigError("model.sample_shape", value, "three positive integers [C, H, W]",
                          "e.g. sample_shape = [1, 28, 28] (or leave it out to take the data's shape)")
    return list(value)
