"""What an estimator needs from the run, declared on its class; the runner supplies it, caches it and checks it in
preflight, the same way for a built-in estimator and for a plug-in.

    @register("my_epistemic")
    class MyEstimator(UncertaintyEstimator):
        requires = Requirements(posterior="posterior", last_layer=True, real_images=True)

        def __init__(self, posterior=None, m: int = 5): ...

The needs:
- `posterior`: the name of a constructor argument that receives the run's fitted last-layer Laplace posterior
  (`estimators.laplace.LastLayerLaplace`). One posterior serves every estimator of a run that asks for it; it is
  loaded from next to the model or from the run folder when a saved one matches the model's weights and the fit
  settings, else fitted once on the data's training images. Its fit settings are the config keys
  POSTERIOR_FIT_KEYS (`fit_images`, `prior_precision`, `hessian`), accepted on every estimator that asks for a
  posterior; two estimators that set them differently are refused.
- `fitted`: the name of a constructor argument that receives a resource the estimator fits itself on the data's
  training images: the class method `fit_resource(model, training: TrainingImages, params)` (params: the instance's
  config values) returns it, once per instance before any sampling; the runner saves it in the run folder when it
  has a `save_in(folder)` and no `path` yet. Implies `real_images` and `labels`.
- `real_images`: the data's training images (a posterior is fitted on them).
- `labels`: class labels of those images when the model is class-conditional.
- `dropout`: dropout layers the model can switch on at inference (`model.has_dropout`).
- `last_layer`: a last layer whose input features the model exposes (`model.last_layer`).
- `feature_extractor`: the name of a constructor argument that receives the run's feature extractor of the space
  named by the estimator's `features` parameter ("classifier": the data's domain classifier).
- `data_mean`: the name of a constructor argument that receives the mean [C,H,W] of the data's training images in
  the model's sample space (the first DATA_MEAN_IMAGES of them; encoded first for a latent model): what an
  estimator can know about the data without the model (`distance_to_mean`). Implies `real_images`.
A state variance (what the augmentation protocol reads) is what an estimator provides, not a need: the class
attribute `state_variance = True`.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable

from benchmark.errors import ConfigError
from estimators.laplace import DEFAULT_FILENAME as POSTERIOR_FILE  # noqa: F401 (the run folder's copy)

#: config keys of a posterior user that configure the shared posterior's fit, not the estimator
POSTERIOR_FIT_KEYS = ("fit_images", "prior_precision", "hessian")
#: their defaults (what `python -m benchmark list` prints)
POSTERIOR_FIT_DEFAULTS = {"fit_images": 500, "prior_precision": 1.0, "hessian": "ggn"}
#: training images the `data_mean` need averages
DATA_MEAN_IMAGES = 2048


@dataclass(frozen=True)
class Requirements:
    """See the module docstring. The default needs nothing beyond the sampler's own step."""

    posterior: str | None = None
    real_images: bool = False
    labels: bool = False
    dropout: bool = False
    last_layer: bool = False
    feature_extractor: str | None = None
    data_mean: str | None = None
    fitted: str | None = None

    def __post_init__(self) -> None:
        if self.fitted is not None:  # fitted on real (labelled) images
            object.__setattr__(self, "real_images", True)
            object.__setattr__(self, "labels", True)
        if self.data_mean is not None:  # the mean is taken over the data's training images
            object.__setattr__(self, "real_images", True)
        if self.posterior is not None:  # a posterior is fitted on the model's last layer, on real (labelled) images
            object.__setattr__(self, "last_layer", True)
            object.__setattr__(self, "real_images", True)
            object.__setattr__(self, "labels", True)

    def supplied_arguments(self) -> tuple[str, ...]:
        """Constructor arguments the run fills in (never config keys)."""
        return tuple(a for a in (self.posterior, self.feature_extractor, self.data_mean, self.fitted) if a)

    def describe(self) -> str:
        """One line for the estimator cards, e.g. "posterior, real images, labels, last layer"."""
        said = [f.name.replace("_", " ") for f in fields(self) if getattr(self, f.name)]
        return ", ".join(said) or "nothing beyond the sampler's step"


@dataclass(frozen=True)
class TrainingImages:
    """The run's training images for an estimator that fits its own resource (`Requirements.fitted`).

    `load(n)` -> (batches of images [B,C,H,W] or (images, labels) pairs in the model's sample space, the number of
    images, the value range to check or None), labelled as for the shared posterior; `seed` the run's; `folders`
    where a saved fit is looked up, in order (next to the model, then the run folder); `progress` whether to show a
    progress bar."""

    load: Callable[[int], tuple[list, int, tuple[float, float] | None]]
    seed: int
    folders: tuple[Path, ...] = ()
    progress: bool = False


def requirements_of(cls: type) -> Requirements:
    """The class's declared `requires` (the default Requirements() when it declares none)."""
    found = getattr(cls, "requires", None)
    if found is None:
        return Requirements()
    if not isinstance(found, Requirements):
        raise ConfigError(f"{cls.__name__}.requires", type(found).__name__, "an estimators.Requirements(...)")
    return found


def config_keys(cls: type, constructor_parameters: list[str]) -> set[str]:
    """The keys an `[estimators.<name>]` table may hold for `cls`: its constructor's parameters less the ones the
    run supplies, plus the posterior's fit settings when it asks for a posterior."""
    needs = requirements_of(cls)
    keys = set(constructor_parameters) - set(needs.supplied_arguments())
    return keys | set(POSTERIOR_FIT_KEYS) if needs.posterior else keys


def fit_settings(users: list[tuple[str, dict[str, Any]]]):
    """The run's posterior fit settings (estimators.laplace_reuse.LaplaceSettings) from the (instance name, params)
    of every estimator that asks for a posterior; None when none does. Keys one estimator leaves out take the value
    another one gives, else the default; two different values for one key are refused."""
    from estimators.laplace_reuse import LaplaceSettings

    if not users:
        return None
    chosen: dict[str, tuple[str, Any]] = {}
    for instance, params in users:
        for key in POSTERIOR_FIT_KEYS:
            if key in params:
                if key in chosen and chosen[key][1] != params[key]:
                    raise ConfigError(f"estimators.{instance}.{key}", params[key], f"the value estimators."
                                      f"{chosen[key][0]}.{key} = {chosen[key][1]!r} gives (one posterior serves the "
                                      "run)", f"give {key} once, or the same value in both tables")
                chosen.setdefault(key, (instance, params[key]))
    values = {key: value for key, (_, value) in chosen.items()}
    try:
        return LaplaceSettings(**{**POSTERIOR_FIT_DEFAULTS, **values})
    except ConfigError as err:
        owner = chosen.get(err.field, (users[0][0], None))[0]
        located = ConfigError(f"estimators.{owner}.{err.field}", None, "")
        located.args = (f"estimators.{owner}.{err}",)
        raise located from None


def missing_capability(needs: Requirements, model) -> tuple[str, str] | None:
    """(what `model` lacks of `needs`, the fix), phrases for an error message; None when it lacks nothing."""
    if needs.dropout and not getattr(model, "has_dropout", False):
        return ("dropout layers (nn.Dropout* with p > 0)", "use a model trained with dropout (e.g. a DiffusersUNet "
                "built with dropout > 0, as the built-in presets are)")
    if needs.last_layer and getattr(model, "last_layer", None) is None:
        return ("a last layer whose input features it exposes (last_layer + predict_features: the layer of the "
                "last-layer Laplace posterior)", 'use a DiffusersUNet or a preset model, or name the layer with '
                '[model] last_layer = "<module>"')
    return None


def load_or_fit_posterior(model, settings, candidates: list[Path | None], fit_data: Callable[[], tuple],
                          *, seed: int, progress: bool):
    """(posterior, choice): the first saved posterior among `candidates` that matches `settings` and the model's
    weights (estimators.laplace_reuse), else one fitted now on `fit_data()` = (batches, num_images, value_range)
    and kept in memory (choice.path None). A model with classifier-free guidance is fitted unguided."""
    import contextlib

    from estimators.laplace import LastLayerLaplace
    from estimators.laplace_reuse import choose_posterior

    posterior, choice = choose_posterior(model, settings, candidates)
    if posterior is not None:
        return posterior, choice
    posterior = LastLayerLaplace(model, prior_precision=settings.prior_precision, hessian=settings.hessian)
    batches, num_images, value_range = fit_data()
    unguided = getattr(model, "unguided", None)
    with unguided() if callable(unguided) else contextlib.nullcontext():
        posterior.fit(batches, num_images=num_images, seed=seed, progress=progress, value_range=value_range)
    choice.fitted_images = int(posterior.num_images)
    return posterior, choice


def model_posterior_path(model) -> Path | None:
    """Where a posterior of `model` is saved next to its weights, or None for a model without a local folder."""
    from benchmark.errors import MissingAssetError
    from estimators.laplace import default_path

    try:
        return default_path(model)
    except MissingAssetError:
        return None
