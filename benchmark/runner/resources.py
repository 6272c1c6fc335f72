"""What estimators declare they need (estimators.requirements), supplied the same way to every estimator, built-in or
plug-in: checked before any costly work, then built once and handed to each estimator instance.

- a fitted last-layer posterior: one per run, loaded from next to the model or from the run folder when a saved
  one matches the weights and fit settings, else fitted once on the data's training images (`shared_posterior`);
- a resource an estimator fits itself on the training images (`fitted`: its class's `fit_resource`);
- a feature extractor of the space the estimator's `features` parameter names;
- the mean of the data's training images in the model's sample space (`data_mean`);
- capabilities of the model (dropout, a last layer) and of the data (training images, labels): `check_needs`.
The runner names no estimator: it reads each class's `requires`.
"""
from __future__ import annotations

from pathlib import Path

import torch

from benchmark.config import RunConfig
from benchmark.errors import CapabilityError, ConfigError, MissingAssetError
from benchmark.execution.estimator_factory import EstimatorFactory
from estimators.requirements import (
    DATA_MEAN_IMAGES,
    POSTERIOR_FIT_KEYS,
    Requirements,
    TrainingImages,
    fit_settings,
    load_or_fit_posterior,
    missing_capability,
    model_posterior_path,
    requirements_of,
)

FIT_BATCH = 64  # images per batch of the posterior fit


def needs_of(config: RunConfig) -> dict[str, Requirements]:
    """{instance name: its estimator class's declared needs} for the configured estimators."""
    import estimators

    return {spec.name: requirements_of(estimators.get_class(spec.type)) for spec in config.estimators}


def check_needs(config: RunConfig, model, preset, posterior_cache: Path | None = None,
                needs: dict[str, Requirements] | None = None) -> None:
    """Refuse, before any fit, feature extraction or sampling, an estimator whose needs the model or data lack. The
    training images (and their labels) a posterior is fitted on are needed only when no saved posterior exists.
    An estimator that reads features (its `feature_extractor`, or a `score_features` method) needs its space."""
    needs = needs if needs is not None else needs_of(config)
    saved = [p for p in (model_posterior_path(model) if model is not None else None, posterior_cache)
             if p is not None and p.is_file()]
    labelled_images = False
    for spec in config.estimators:
        wants = needs[spec.name]
        lacking = missing_capability(wants, model)
        if lacking is not None:
            what, fix = lacking
            raise CapabilityError(f"estimator {spec.name!r} needs a model with {what}, but {type(model).__name__} has "
                                  f"none. Fix: {fix}, or drop [estimators.{spec.name}].")
        images_needed = wants.real_images and not (wants.posterior and saved)
        if images_needed and (preset is None or getattr(preset, "dataset", None) is None):
            raise ConfigError(f"estimators.{spec.name}", spec.type, "a run with training images (its needs: "
                              f"{wants.describe()})", "add a [data] section (name or path) or save a fitted "
                              "posterior next to the model")
        labelled_images |= wants.labels and images_needed
        reads_features = wants.feature_extractor or callable(getattr(_class(spec.type), "score_features", None))
        if reads_features and feature_space(spec) == "classifier" and preset.load_classifier() is None:
            raise ConfigError(f"estimators.{spec.name}.features", "classifier", "a feature space the data provides "
                              "(it has no domain classifier)", 'set features = "inception"')
    if labelled_images:  # unlabelled data is fine: fit_labels chooses (null class or uniform labels)
        check_labels(model, preset.load_data("train", n=1), "train", allow_unlabelled=True)


def estimator_factory(config: RunConfig, model, preset, *, progress: bool = True,
                      posterior_cache: Path | None = None) -> EstimatorFactory:
    """The configured estimators, each handed what it declares it needs (checked first, `check_needs`). The shared
    posterior comes from next to the model, else from `posterior_cache` when that file matches, else from a fit on
    the training images (kept in memory until `EstimatorFactory.persist`)."""
    needs = needs_of(config)
    check_needs(config, model, preset, posterior_cache, needs)
    factory = EstimatorFactory({})
    settings = fit_settings([(s.name, s.params) for s in config.estimators if needs[s.name].posterior])
    if settings is not None:
        factory.posterior, factory.posterior_choice = shared_posterior(model, preset, settings, seed=config.seed,
                                                                       progress=progress, cache=posterior_cache)
        factory.posterior_path = factory.posterior_choice.path
    factory.fitted = fitted_resources(config, model, preset, needs, progress=progress, cache=posterior_cache)
    mean = None
    for spec in config.estimators:
        wants = needs[spec.name]
        params = {k: (tuple(v) if isinstance(v, list) else v) for k, v in spec.params.items()
                  if not (wants.posterior and k in POSTERIOR_FIT_KEYS)}
        if wants.posterior:
            params[wants.posterior] = factory.posterior
        if wants.feature_extractor and feature_space(spec) != "pixels":
            params[wants.feature_extractor] = feature_extractor(preset, feature_space(spec))
        if wants.fitted:
            params[wants.fitted] = factory.fitted[spec.name]
        if wants.data_mean:
            mean = training_mean(preset, model) if mean is None else mean
            params[wants.data_mean] = mean
        factory.params[spec.name] = params
        factory.types[spec.name] = spec.type
    return factory


def feature_space(spec) -> str | None:
    """The feature space an estimator instance reads: its `features` parameter, else its constructor's default."""
    from benchmark.config.checks import parameter_rule

    return spec.params.get("features", parameter_rule(_class(spec.type), "features").default)


def training_mean(preset, model) -> torch.Tensor:
    """The mean [C,H,W] (float32, CPU) of the first DATA_MEAN_IMAGES training images in the model's sample space:
    a latent model's images are encoded first (in batches of FIT_BATCH), as for the posterior fit."""
    images = preset.load_data("train", n=DATA_MEAN_IMAGES).images
    encode = getattr(model, "encode", None)
    if callable(encode):
        with torch.no_grad():
            images = torch.cat([encode(images[i:i + FIT_BATCH].to(model.device)).cpu()
                                for i in range(0, images.shape[0], FIT_BATCH)])
    return images.to(torch.float64).mean(dim=0).to(torch.float32)


def feature_extractor(preset, space: str):
    """The run's feature extractor of `space` ("classifier": the preset's domain classifier) for estimators that
    embed images themselves."""
    from metrics import build_feature_extractor

    return build_feature_extractor(space, **({"classifier": preset.load_classifier()} if space == "classifier" else {}))


def shared_posterior(model, preset, settings, *, seed: int, progress: bool, cache: Path | None = None):
    """(posterior, choice): the model's last-layer posterior, loaded from next to the model or from `cache` only when
    that file matches `settings` and the weights, else fitted on the training images and kept in memory (choice.path
    None; the runner saves it to the run folder: a run never writes into the model's folder). `choice.fit_labels`
    says how the fit images were labelled (`fit_labels`)."""
    how: list[str] = []

    def fit_data() -> tuple[list, int, tuple[float, float] | None]:
        batches, count, value_range, said = training_batches(model, preset, settings.fit_images, seed)
        how.append(said)
        return batches, count, value_range

    posterior, choice = load_or_fit_posterior(model, settings, [model_posterior_path(model), cache], fit_data,
                                              seed=seed, progress=progress)
    choice.fit_labels = how[0] if how else None
    return posterior, choice


def training_batches(model, preset, n: int, seed: int) -> tuple[list, int, tuple[float, float] | None, str]:
    """(batches of FIT_BATCH images or (images, labels) pairs, their count, the value range to check or None, how they
    were labelled) of the first `n` training images in the model's sample space (a latent model's encoded), for a
    fit on them."""
    if preset is None or preset.dataset is None:
        raise MissingAssetError("the run's estimators need a fit on training images, the model has none saved "
                                "and there are no training images to fit one. Fix: add a [data] section with the "
                                "model's training images, or save a fitted posterior next to the model.")
    data = preset.load_data("train", n=n)
    encode = getattr(model, "encode", None)  # a latent model is fitted on the scaled latents of the images
    images = encode(data.images.to(model.device)).cpu() if callable(encode) else data.images
    labels, said = fit_labels(model, data, seed)
    batches = [images[i:i + FIT_BATCH] if labels is None else (images[i:i + FIT_BATCH], labels[i:i + FIT_BATCH])
               for i in range(0, images.shape[0], FIT_BATCH)]
    # a preset with an analytic oracle (gmm) trains on exact mixture draws, which legitimately leave [-1, 1]
    exact_draws = getattr(preset, "oracle", lambda: None)() is not None
    value_range = None if exact_draws or callable(encode) else (-1.0, 1.0)
    return batches, min(n, images.shape[0]), value_range, said


def fitted_resources(config: RunConfig, model, preset, needs: dict[str, Requirements], *, progress: bool,
                     cache: Path | None) -> dict[str, object]:
    """{instance name: the resource its class's `fit_resource` returns} for every estimator that fits its own
    (Requirements.fitted); a saved fit is looked up next to the model, then in the run folder (`cache`'s)."""
    import estimators

    source = getattr(model, "source", None)
    folders = tuple(Path(f) for f in (source, None if cache is None else cache.parent) if f and Path(f).is_dir())
    training = TrainingImages(lambda n: training_batches(model, preset, n, config.seed)[:3], seed=config.seed,
                              folders=folders, progress=progress)
    made = {}
    for spec in config.estimators:
        if needs[spec.name].fitted:
            params = {k: (tuple(v) if isinstance(v, list) else v) for k, v in spec.params.items()}
            made[spec.name] = estimators.get_class(spec.type).fit_resource(model, training, params)
    return made


def fit_labels(model, data, seed: int):
    """(labels [N] or None, how they were chosen) for the posterior fit of `model` on `data`:
    - an unconditional or text-conditioned model: None ("none (...)");
    - labelled data: the data's labels (their class count checked against the model's);
    - unlabelled data and a model with a null condition (classifier-free guidance: DiT, `ConditionedDenoiser`):
      the null class for every image, i.e. the posterior of the unconditional branch;
    - unlabelled data otherwise: labels drawn uniformly from the model's classes with a generator seeded by the
      run's seed (the fit then averages over classes; the report says so)."""
    from benchmark.seeding import derive_seed

    classes = getattr(model, "num_classes", None)
    if not classes or getattr(model, "cycled_conditions", False):
        return None, "none (unconditional or text-conditioned model)"
    if data.labels is not None:
        check_labels(model, data, "train")
        return data.labels, "the data's labels"
    n = data.images.shape[0]
    null = getattr(model, "null_condition", None)
    if null is not None:
        return torch.full((n,), int(null), dtype=torch.long, device="cpu"), f"the null class ({int(null)}) for every " \
            "image: the data has no labels, so the posterior is the unconditional branch's"
    generator = torch.Generator(device="cpu").manual_seed(derive_seed(seed, "posterior_fit_labels", 0))
    return torch.randint(0, int(classes), (n,), generator=generator, device="cpu"), f"uniform random labels over the " \
        f"model's {int(classes)} classes: the data has no labels"


def check_labels(model, data, split: str, *, why: str = "", allow_unlabelled: bool = False) -> None:
    """Real images given to a class-conditional model need class labels the model knows (class subfolders of an
    image folder, or an .npz's label arrays): always for the sparsification protocol (`why`); for the posterior fit
    only their count (`allow_unlabelled`: unlabelled images get the null class or uniform labels,
    benchmark.runner.resources.fit_labels)."""
    if not getattr(model, "num_classes", None) or getattr(model, "cycled_conditions", False):
        return
    fix = "put each class's images in a subfolder <data>/<class>/ (sorted names = labels 0..K-1) or use an .npz " \
          "with labels"
    if data.labels is None and not allow_unlabelled:
        if getattr(data, "unlabelled_because", None):  # e.g. one class subfolder: a conditional model needs its classes
            raise ConfigError("data", f"{data.name} ({split}): {data.unlabelled_because}", "images of the class-"
                              f"conditional model's classes ({model.num_classes}), each class in its own subfolder", fix)
        raise ConfigError("data", f"{data.name} ({split}) without class labels", f"labelled images: the model is "
                          f"class-conditional ({model.num_classes} classes)" + (f" and {why}" if why else ""), fix)
    if data.num_classes is not None and data.num_classes > model.num_classes:
        raise ConfigError("data", f"{data.name} ({split}): {data.num_classes} classes", f"at most the model's "
                          f"{model.num_classes} classes", fix)


def _class(name: str) -> type:
    import estimators

    return estimators.get_class(name)
