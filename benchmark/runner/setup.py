"""Everything a run needs before generation: the run directory, the model, estimators, feature extractors."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import torch

from benchmark.config import RunConfig
from benchmark.errors import ConfigError, MissingAssetError

FINISHED_MARKER = "manifest.json"


def prepare_run_dir(out: Path, config: RunConfig, *, overwrite: bool) -> bool:
    """Create or reuse `out`. Returns True when resuming an unfinished run of the same config.

    A finished run (its manifest.json exists) is never overwritten without `overwrite`; an unfinished one
    with the same config resumes from its shards; a folder that is not a run directory is never deleted.
    """
    if out.exists() and not out.is_dir():
        raise ConfigError("--out", str(out), "a directory path, but a file of that name exists",
                          "choose another --out or remove the file")
    saved = out / "config.json"
    if out.is_dir() and any(out.iterdir()):
        is_run = saved.is_file()
        if not is_run:
            raise ConfigError("--out", str(out), "an empty or run directory, but it holds other files",
                              "choose a new --out folder")
        if (out / FINISHED_MARKER).is_file() and not overwrite:
            raise ConfigError("--out", str(out), "a new folder: it holds a finished run",
                              "pass --overwrite to replace it, or choose another --out")
        if overwrite:
            shutil.rmtree(out)
        elif json.loads(saved.read_text()) != config.to_dict():
            raise ConfigError("--out", str(out), "the folder of an unfinished run with a different config",
                              "pass --overwrite to start over, or use the same config to resume")
        else:
            return True
    out.mkdir(parents=True, exist_ok=True)
    from benchmark.runner.io import save_json

    save_json(config.to_dict(), saved)
    return False


def load_preset(name: str):
    from benchmark import presets

    if name not in presets.names():
        raise ConfigError("run.preset", name, f"one of {', '.join(presets.names())}", "see python -m benchmark list")
    return presets.get(name)


def estimator_factory(config: RunConfig, model, preset, *, progress: bool = True) -> Callable[[], list]:
    """A function that returns fresh estimator instances (one set per batch) for the configured specs."""
    import estimators

    fixed: dict[str, dict] = {}
    for spec in config.estimators:
        params = {k: (tuple(v) if isinstance(v, list) else v) for k, v in spec.params.items() if k != "fit_images"}
        if spec.name == "bayesdiff":
            params["laplace"] = ensure_laplace(model, preset, int(spec.params.get("fit_images", 500)),
                                               seed=config.seed, progress=progress)
        fixed[spec.name] = params

    def make() -> list:
        return [estimators.create(name, **params) for name, params in fixed.items()]

    return make


def ensure_laplace(model, preset, fit_images: int, *, seed: int, progress: bool):
    """The model's fitted last-layer Laplace posterior: loaded from next to the model, else fitted and saved."""
    from estimators.laplace import LastLayerLaplace, default_path

    try:
        path: Path | None = default_path(model)
    except MissingAssetError:  # the model does not live in a local folder: fit for this run only
        path = None
    la = LastLayerLaplace(model)
    if path is not None and path.is_file():
        return la.load(path)
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
            la.save(path)
        except OSError:  # a read-only install: keep it in memory for this run
            pass
    return la


def resolve_device(name: str) -> torch.device:
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("run.device", name, "a device that exists here (cpu; cuda needs a GPU)", "set run.device = \"cpu\"")
    return torch.device(name)
