"""The fitted posterior of `subset_laplace`: a diagonal empirical-Fisher Laplace over a random subset of the
parameters of ALL the network's layers (maths: estimators.subset_laplace_math), its fit and its file.

A fit is fully determined by its settings (`SubsetSettings`: images, subset size and seed, prior, noise), the fit
seed and the network's weights; the file name carries a digest of all of them (`subset_laplace_<key>.pt`), so a saved
fit is reused only when they match. It is looked up next to the model and in the run folder; the runner saves a new
fit in the run folder (a run never writes into the model's folder). Save one next to the model with
    SubsetLaplace(model, SubsetSettings(...)).fit(loader, num_images=256).save_in(Path(model.source))
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import torch
from torch import nn

from benchmark.errors import CapabilityError, ConfigError, MissingAssetError
from benchmark.models.digest import weights_digest
from estimators.fit_batches import noisy_batches
from estimators.subset_laplace_math import (
    ParameterSubset,
    choose_subset,
    draw_subset_values,
    empirical_fisher_diagonal,
    per_sample_subset_gradients,
    subset_precision,
)

FILE_FORMAT = "diffusion-uq-bench/subset-laplace"
FILE_VERSION = 1
#: per-sample gradients are taken for this many images at a time (memory: rows x touched parameters)
GRADIENT_CHUNK = 16


@dataclass(frozen=True)
class SubsetSettings:
    """What a subset-Laplace fit depends on besides the weights: fit images, subset size, subset seed, prior precision,
    likelihood noise sigma."""

    fit_images: int = 256
    num_params: int = 1000
    subset_seed: int = 0
    prior_precision: float = 1.0
    sigma_noise: float = 1.0

    def __post_init__(self) -> None:
        for name in ("fit_images", "num_params"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(name, value, "a positive integer", f"set {name} = {getattr(SubsetSettings, name)}")
        if isinstance(self.subset_seed, bool) or not isinstance(self.subset_seed, int):
            raise ConfigError("subset_seed", self.subset_seed, "an integer", "set subset_seed = 0")
        for name in ("prior_precision", "sigma_noise"):
            if not float(getattr(self, name)) > 0:
                raise ConfigError(name, getattr(self, name), "a positive number", f"set {name} = 1.0")

    def file_name(self, digest: str, seed: int) -> str:
        """subset_laplace_<12 hex>.pt: a digest of the settings, the fit seed and the weights' sha256."""
        key = json.dumps({**asdict(self), "seed": int(seed), "weights": digest}, sort_keys=True)
        return f"subset_laplace_{hashlib.sha256(key.encode()).hexdigest()[:12]}.pt"


class EpsCall(nn.Module):
    """model.predict_eps (uncounted) or model.eps (counted NFEs) as a module's forward, for functional_call:
    its parameters are the model's, named "model.<name>"."""

    def __init__(self, model: nn.Module, counted: bool = False) -> None:
        super().__init__()
        self.model, self.counted = model, counted

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return (self.model.eps if self.counted else self.model.predict_eps)(x, t, y)


class SubsetLaplace:
    """Diagonal Laplace posterior over `settings.num_params` random entries of all of `model`'s parameters
    (module docstring; the curvature is the empirical Fisher, the other parameters stay at the MAP)."""

    def __init__(self, model: nn.Module, settings: SubsetSettings = SubsetSettings()) -> None:
        named = {name: p.numel() for name, p in EpsCall(model).named_parameters()}
        if not named:
            raise CapabilityError(f"subset Laplace needs a network with parameters; {type(model).__name__} has none "
                                  "(an analytic model has no weights to be uncertain about). Fix: use a trained network.")
        if settings.num_params > sum(named.values()):
            raise ConfigError("num_params", settings.num_params, f"at most the network's {sum(named.values())} "
                              "parameter entries")
        self.model, self.settings = model, settings
        self.subset: ParameterSubset = choose_subset(named, settings.num_params, settings.subset_seed)
        self.data_term: torch.Tensor | None = None  # H_ef [K], float64
        self.num_images = 0
        self.fit_seed = 0
        self.path: Path | None = None  # the file it was loaded from or saved to (None: memory only)

    # ------------------------------------------------------------------ fitting
    def fit(self, loader: Iterable, num_images: int | None = None, seed: int = 0, progress: bool = False,
            value_range: tuple[float, float] | None = (-1.0, 1.0)) -> "SubsetLaplace":
        """H_ef on `num_images` images of `loader` (all when None), each at a seeded (t, eps) (estimators.fit_batches),
        per-sample gradients in chunks of GRADIENT_CHUNK images. A guided model is fitted unguided."""
        call = EpsCall(self.model)
        touched = set(self.subset.local())
        params = {k: v.detach() for k, v in call.named_parameters() if k in touched}
        constants = {k: v.detach() for k, v in [*call.named_parameters(), *call.named_buffers()] if k not in touched}
        device, dtype = next(iter(params.values())).device, next(iter(params.values())).dtype
        self.data_term, self.num_images, self.fit_seed = None, 0, int(seed)
        unguided = getattr(self.model, "unguided", None)
        with unguided() if callable(unguided) else contextlib.nullcontext():
            for batch in noisy_batches(self.model, loader, num_images, seed=seed, stream="subset-laplace-fit",
                                       value_range=value_range, device=device, dtype=dtype, progress=progress,
                                       desc="subset Laplace fit"):
                for start in range(0, batch.x_t.shape[0], GRADIENT_CHUNK):
                    rows = slice(start, start + GRADIENT_CHUNK)
                    labels = None if batch.labels is None else batch.labels[rows]
                    grads = per_sample_subset_gradients(call, params, constants, self.subset, batch.x_t[rows],
                                                        batch.t[rows], batch.eps[rows], labels)
                    term = empirical_fisher_diagonal(grads).cpu()
                    self.data_term = term if self.data_term is None else self.data_term + term
                self.num_images += int(batch.x_t.shape[0])
        self.path = None
        return self

    # ------------------------------------------------------------------ posterior
    @property
    def precision(self) -> torch.Tensor:
        """P [K] (float64) = H_ef / sigma^4 + prior_precision."""
        if self.data_term is None:
            raise MissingAssetError("the subset Laplace posterior is not fitted. Fix: call .fit(loader) or "
                                    ".load(path) first.")
        return subset_precision(self.data_term, self.settings.sigma_noise, self.settings.prior_precision)

    def map_values(self, model: nn.Module | None = None) -> torch.Tensor:
        """theta_S,MAP [K]: the subset's entries of the (given or own) model's parameters."""
        return self.subset.gather(dict(EpsCall(model or self.model).named_parameters()))

    def draw_parameters(self, model: nn.Module, draws: int, seed: int) -> list[dict[str, torch.Tensor]]:
        """S draws, each {"model.<name>": tensor} of the touched tensors with the subset set to theta_MAP + z / sqrt(P)
        (estimators.subset_laplace_math.draw_subset_values); for functional_call(EpsCall(model), draw, ...)."""
        self.check_compatible(model)
        tensors = dict(EpsCall(model).named_parameters())
        values = draw_subset_values(self.map_values(model), self.precision, draws, seed)
        return [self.subset.replace(tensors, row) for row in values]

    def check_compatible(self, model: nn.Module) -> None:
        """Refuse a model whose parameter names and sizes differ from the fitted network's."""
        named = {name: p.numel() for name, p in EpsCall(model).named_parameters()}
        if tuple(named) != self.subset.names or tuple(named.values()) != self.subset.numels:
            raise ConfigError("posterior", f"a subset Laplace of a {type(self.model).__name__}",
                              f"a posterior fitted on the sampling model's own parameters ({type(model).__name__})",
                              "fit SubsetLaplace(model) on the model you sample with")

    # ------------------------------------------------------------------ files
    def file_name(self) -> str:
        return self.settings.file_name(weights_digest(self.model), self.fit_seed)

    def save_in(self, folder: Path) -> Path:
        """Write the fit (atomically) to folder / its keyed file name; returns the path."""
        self.precision  # noqa: B018 (refuse an unfitted posterior)
        path = Path(folder) / self.file_name()
        state = {"format": FILE_FORMAT, "version": FILE_VERSION, "settings": asdict(self.settings),
                 "fit_seed": self.fit_seed, "weights_digest": weights_digest(self.model),
                 "names": list(self.subset.names), "numels": list(self.subset.numels), "flat": self.subset.flat,
                 "num_images": self.num_images, "data_term": self.data_term}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)
        self.path = path
        return path

    def load(self, path: Path) -> "SubsetLaplace":
        """Restore a fit written by `save_in` for this model and these settings; returns self."""
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or state.get("format") != FILE_FORMAT or state.get("version") != FILE_VERSION:
            raise ConfigError("subset Laplace file", str(path), f"a {FILE_FORMAT} file of version {FILE_VERSION}")
        if state["settings"] != asdict(self.settings) or not torch.equal(state["flat"], self.subset.flat):
            raise ConfigError("subset Laplace file", str(path), f"a fit with the settings {asdict(self.settings)}",
                              "refit the posterior")
        self.data_term, self.num_images = state["data_term"].to(torch.float64), int(state["num_images"])
        self.fit_seed, self.path = int(state["fit_seed"]), Path(path)
        return self

    @classmethod
    def load_or_fit(cls, model: nn.Module, settings: SubsetSettings, folders: Iterable[Path], fit_data,
                    *, seed: int, progress: bool = False) -> "SubsetLaplace":
        """The fit saved in the first of `folders` that holds this model's, settings' and seed's file, else a new
        one on `fit_data()` = (batches, num_images, value_range), kept in memory (path None)."""
        posterior = cls(model, settings)
        posterior.fit_seed = int(seed)
        name = posterior.file_name()
        for folder in folders:
            if (Path(folder) / name).is_file():
                return posterior.load(Path(folder) / name)
        batches, num_images, value_range = fit_data()
        return posterior.fit(batches, num_images=num_images, seed=seed, progress=progress, value_range=value_range)


__all__ = ["EpsCall", "SubsetLaplace", "SubsetSettings"]
