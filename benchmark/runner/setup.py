"""Everything a run needs before generation: the run directory, the model, estimators, feature extractors."""
from __future__ import annotations

import importlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from benchmark.config import RunConfig
from benchmark.errors import ConfigError, MissingAssetError

FINISHED_MARKER = "manifest.json"
EXTRA_PRESETS_ENV = "UQBENCH_EXTRA_PRESETS"
LAPLACE_CACHE = "laplace_last_layer.pt"  # in the run folder, for a model that has no folder of its own
LAPLACE_USERS = ("bayesdiff", "generative_uncertainty")  # estimators handed the run's fitted Laplace posterior


def check_run_dir(out: Path, config: RunConfig, *, overwrite: bool) -> bool:
    """Whether `out` can hold this run, without touching it. True when it holds an unfinished run of the same
    config (resume); raises ConfigError when it is a file, a foreign folder, a finished run (without
    `overwrite`) or an unfinished run of another config (without `overwrite`)."""
    if out.exists() and not out.is_dir():
        raise ConfigError("--out", str(out), "a directory path, but a file of that name exists",
                          "choose another --out or remove the file")
    saved = out / "config.json"
    if not out.is_dir() or not any(not p.name.startswith(".") for p in out.iterdir()):
        return False  # new or empty (a hidden temporary file of a write killed half-way does not count)
    if not saved.is_file():
        raise ConfigError("--out", str(out), "an empty or run directory, but it holds other files",
                          "choose a new --out folder")
    if (out / FINISHED_MARKER).is_file() and not overwrite:
        raise ConfigError("--out", str(out), "a new folder: it holds a finished run",
                          "pass --overwrite to replace it, or choose another --out")
    if overwrite:
        return False
    if json.loads(saved.read_text()) != config.to_dict():
        raise ConfigError("--out", str(out), "the folder of an unfinished run with a different config",
                          "pass --overwrite to start over, or use the same config to resume")
    return True


def prepare_run_dir(out: Path, config: RunConfig, *, overwrite: bool) -> bool:
    """Create or reuse `out`. Returns True when resuming an unfinished run of the same config.

    A finished run (its manifest.json exists) is never overwritten without `overwrite`; an unfinished one
    with the same config resumes from its shards; a folder that is not a run directory is never deleted.
    """
    if check_run_dir(out, config, overwrite=overwrite):
        return True
    if overwrite and (out / "config.json").is_file():  # a run directory replaced under --overwrite
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    from benchmark.runner.io import save_json

    save_json(config.to_dict(), out / "config.json")
    return False


def load_preset(name: str):
    """A built-in preset, or one named by $UQBENCH_EXTRA_PRESETS (see `extra_presets`)."""
    from benchmark import presets

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
        preset = target if hasattr(target, "load_model") and not isinstance(target, type) else target()
        found[str(preset.name)] = preset
    return found


@dataclass
class EstimatorFactory:
    """Returns fresh estimator instances (one set per batch) for the configured specs when called.

    `posterior` is the fitted last-layer Laplace posterior handed to bayesdiff (None without bayesdiff);
    `posterior_path` is where it is saved (None while it lives only in memory; see `persist`).
    """

    params: dict[str, dict]
    posterior: object | None = None
    posterior_path: Path | None = None
    types: dict[str, str] = field(default_factory=dict)  # instance name -> registered estimator (default: same)

    def __call__(self) -> list:
        import estimators

        made = []
        for name, params in self.params.items():
            estimator = estimators.create(self.types.get(name, name), **params)
            estimator.name = name  # a named variant ([estimators.sens_m10] type = "sensitivity") keeps its name
            made.append(estimator)
        return made

    def persist(self, path: Path) -> None:
        """Save an in-memory posterior to `path` (the run folder) so other ranks and a resumed run load it."""
        if self.posterior is not None and self.posterior_path is None:
            self.posterior_path = self.posterior.save(path)


def estimator_factory(config: RunConfig, model, preset, *, progress: bool = True,
                      laplace_cache: Path | None = None) -> EstimatorFactory:
    """The estimators of `config`; bayesdiff gets its posterior from next to the model, else from
    `laplace_cache` when that file exists, else a fit on the preset's training data (kept in memory)."""
    import estimators

    factory = EstimatorFactory({})
    fit_spec = next((s for s in config.estimators if s.type == "bayesdiff"), None)  # its fit settings serve all
    for spec in config.estimators:
        params = {k: (tuple(v) if isinstance(v, list) else v) for k, v in spec.params.items() if k != "fit_images"}
        if spec.type in LAPLACE_USERS and factory.posterior is None:  # variants share one fitted posterior
            factory.posterior, factory.posterior_path = ensure_laplace(
                model, preset, int((fit_spec or spec).params.get("fit_images", 500)), seed=config.seed,
                progress=progress, cache=laplace_cache)
        if spec.type in LAPLACE_USERS:
            params["laplace"] = factory.posterior
        if "extractor" in estimators.parameters(spec.type) and params.get("features", "classifier") != "pixels":
            params["extractor"] = feature_extractor(preset, params.get("features", "classifier"))
        factory.params[spec.name] = params
        factory.types[spec.name] = spec.type
    return factory


def feature_extractor(preset, space: str):
    """The run's feature extractor of `space` ("classifier": the preset's domain classifier) for estimators
    that embed images themselves (generative_uncertainty)."""
    from metrics import build_feature_extractor

    return build_feature_extractor(space, **({"classifier": preset.load_classifier()} if space == "classifier" else {}))


def ensure_laplace(model, preset, fit_images: int, *, seed: int, progress: bool, cache: Path | None = None):
    """(posterior, path): the model's fitted last-layer Laplace posterior, loaded from next to the model or
    from `cache`, else fitted and saved next to the model (path None when it could not be saved)."""
    from estimators.laplace import LastLayerLaplace, default_path

    try:
        path: Path | None = default_path(model)
    except MissingAssetError:  # the model does not live in a local folder: fit for this run only
        path = None
    la = LastLayerLaplace(model)
    for saved in (path, cache):
        if saved is not None and saved.is_file():
            return la.load(saved), saved
    if preset is None or preset.dataset is None:
        raise MissingAssetError("bayesdiff needs a fitted last-layer Laplace posterior and the model has none saved "
                                "and no training data to fit one. Fix: fit it with LastLayerLaplace(model).fit(loader) "
                                "and save it to estimators.laplace.default_path(model).")
    data = preset.load_data("train", n=fit_images)
    batches = [data.images[i:i + 64] if data.labels is None else (data.images[i:i + 64], data.labels[i:i + 64])
               for i in range(0, data.images.shape[0], 64)]
    la.fit(batches, num_images=min(fit_images, data.images.shape[0]), seed=seed, progress=progress)
    if path is not None:
        try:
            return la, la.save(path)
        except OSError:  # a read-only install: keep it in memory for this run
            pass
    return la, None


def preflight(config: RunConfig, model, preset, make_estimators: Callable[[], list]) -> None:
    """Fail on bad input before any work or file: every estimator observes one sample for one step (a model
    without the capability an estimator needs, NaN from the network), and the assets the protocols read
    later (test data, the domain classifier) are opened."""
    from benchmark.sampling import initial_labels, initial_noise, sample

    idx = torch.zeros(1, dtype=torch.long)
    x_T = initial_noise(config.seed, idx, model.sample_shape).to(model.device)
    y = initial_labels(config.seed, idx, model.num_classes).to(model.device) if model.num_classes else None
    sample(model, x_T, sampler=config.sampler, steps=1, estimators=make_estimators(), y=y, seed=config.seed,
           indices=idx)
    model.reset_nfe()
    if "classifier" in config.features and preset.load_classifier() is None:
        raise ConfigError("run.features", "classifier", f"feature spaces preset {config.preset!r} provides",
                          'set run.features = ["inception"]')
    needs_test_data = "sparsification" in config.protocols or any(
        space == "classifier" or preset.reference_stats(space) is None for space in config.features)
    if needs_test_data:
        preset.load_data("test", n=1)


def resolve_device(name: str) -> torch.device:
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("run.device", name, "a device that exists here (cpu; cuda needs a GPU)", "set run.device = \"cpu\"")
    return torch.device(name)
