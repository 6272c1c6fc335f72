"""Everything a run needs before generation: the run directory, the model, estimators, feature extractors."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from benchmark.config import RunConfig
from benchmark.errors import ConfigError, MissingAssetError
from benchmark.execution.features import needs_real_features
from benchmark.execution.run_dir import FINISHED_MARKER, check_run_dir, prepare_run_dir  # noqa: F401 (re-exported)
from benchmark.presets.loading import EXTRA_PRESETS_ENV, extra_presets, load_preset  # noqa: F401 (re-exported)
from estimators.laplace_reuse import LAPLACE_FIT_KEYS, LaplaceSettings

LAPLACE_CACHE = "laplace_last_layer.pt"  # in the run folder, for a model that has no folder of its own
LAPLACE_USERS = ("bayesdiff", "generative_uncertainty")  # estimators handed the run's fitted Laplace posterior


@dataclass
class EstimatorFactory:
    """Returns fresh estimator instances (one set per batch) for the configured specs when called.

    `posterior` is the fitted last-layer Laplace posterior handed to bayesdiff (None without bayesdiff);
    `posterior_path` is where it is saved (None while it lives only in memory; see `persist`).
    """

    params: dict[str, dict]
    posterior: object | None = None
    posterior_path: Path | None = None
    #: which posterior file served the run and why others were passed over (estimators.laplace_reuse.LaplaceChoice;
    #: `laplace.record()` is the manifest's record), None without bayesdiff
    laplace: object | None = None
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
            if self.laplace is not None:
                self.laplace.path = self.posterior_path


def estimator_factory(config: RunConfig, model, preset, *, progress: bool = True,
                      laplace_cache: Path | None = None) -> EstimatorFactory:
    """The estimators of `config`; bayesdiff gets its posterior from next to the model, else from
    `laplace_cache` when that file exists, else a fit on the preset's training data (kept in memory)."""
    import estimators

    factory = EstimatorFactory({})
    fit_spec = next((s for s in config.estimators if s.type == "bayesdiff"), None)  # its fit settings serve all
    for spec in config.estimators:
        params = {k: (tuple(v) if isinstance(v, list) else v) for k, v in spec.params.items()
                  if k not in LAPLACE_FIT_KEYS}
        if spec.type in LAPLACE_USERS and factory.posterior is None:  # variants share one fitted posterior
            fit = (fit_spec or spec).params
            settings = LaplaceSettings(int(fit.get("fit_images", 500)),
                                       float(fit.get("prior_precision", 1.0)), fit.get("hessian", "ggn"))
            factory.posterior, factory.laplace = ensure_laplace(model, preset, settings, seed=config.seed,
                                                                progress=progress, cache=laplace_cache)
            factory.posterior_path = factory.laplace.path
        if spec.type in LAPLACE_USERS:
            params["laplace"] = factory.posterior
        if "extractor" in estimators.parameters(spec.type) and params.get("features", "classifier") != "pixels":
            params["extractor"] = feature_extractor(preset, params.get("features", "classifier"))
        scores_from_features = callable(getattr(estimators.get_class(spec.type), "score_features", None))
        if (scores_from_features and params.get("features", "classifier") == "classifier"
                and preset.load_classifier() is None):
            raise ConfigError(f"estimators.{spec.name}.features", "classifier", "a feature space the preset provides "
                              "(it has no domain classifier)", 'set features = "inception"')
        factory.params[spec.name] = params
        factory.types[spec.name] = spec.type
    return factory


def feature_extractor(preset, space: str):
    """The run's feature extractor of `space` ("classifier": the preset's domain classifier) for estimators
    that embed images themselves (generative_uncertainty)."""
    from metrics import build_feature_extractor

    return build_feature_extractor(space, **({"classifier": preset.load_classifier()} if space == "classifier" else {}))


def ensure_laplace(model, preset, settings, *, seed: int, progress: bool, cache: Path | None = None):
    """(posterior, choice): the model's last-layer Laplace posterior, loaded from next to the model or from
    `cache` only when that file matches `settings` (fit images, prior, Hessian kind) and the model's weights
    (estimators.laplace_reuse), else fitted and kept in memory (choice.path None; the runner saves it to the run
    folder with `EstimatorFactory.persist`: a run never writes into the model's folder)."""
    from estimators.laplace import LastLayerLaplace, default_path
    from estimators.laplace_reuse import choose_posterior

    try:
        path: Path | None = default_path(model)
    except MissingAssetError:  # the model does not live in a local folder: fit for this run only
        path = None
    la, choice = choose_posterior(model, settings, [path, cache])
    if la is not None:
        return la, choice
    la = LastLayerLaplace(model, prior_precision=settings.prior_precision, hessian=settings.hessian)
    fit_images = settings.fit_images
    if preset is None or preset.dataset is None:
        raise MissingAssetError("bayesdiff needs a fitted last-layer Laplace posterior and the model has none saved "
                                "and no training data to fit one. Fix: fit it with LastLayerLaplace(model).fit(loader) "
                                "and save it to estimators.laplace.default_path(model).")
    data = preset.load_data("train", n=fit_images)
    # a latent model is fitted on the scaled latents of the images; a text-conditioned one unconditionally
    encode = getattr(model, "encode", None)
    images = encode(data.images.to(model.device)).cpu() if callable(encode) else data.images
    labels = None if getattr(model, "cycled_conditions", False) else data.labels
    check_labels(model, data, "train")
    batches = [images[i:i + 64] if labels is None else (images[i:i + 64], labels[i:i + 64])
               for i in range(0, images.shape[0], 64)]
    # a preset with an analytic oracle (gmm) trains on exact mixture draws, which legitimately leave [-1, 1]
    exact_draws = getattr(preset, "oracle", lambda: None)() is not None
    unguided = getattr(model, "unguided", None)  # the posterior is the network's, fitted without guidance
    with unguided() if callable(unguided) else contextlib.nullcontext():
        la.fit(batches, num_images=min(fit_images, images.shape[0]), seed=seed, progress=progress,
               value_range=None if exact_draws or callable(encode) else (-1.0, 1.0))
    return la, choice


def preflight(config: RunConfig, model, preset, make_estimators: Callable[[], list]) -> None:
    """Fail on bad input before any work or file: every estimator observes one sample for one step (a model
    without the capability an estimator needs, NaN from the network), and the assets the protocols read
    later (test data, the domain classifier) are opened."""
    from benchmark.sampling import condition_labels, initial_noise, sample

    check_protocols_can_run(config, preset)
    check_model_ranges(config, model, preset)
    idx = torch.zeros(1, dtype=torch.long)
    x_T = initial_noise(config.seed, idx, model.sample_shape).to(model.device)
    y = condition_labels(model, config.seed, idx)
    y = None if y is None else y.to(model.device)
    sample(model, x_T, sampler=config.sampler, steps=1, estimators=make_estimators(), y=y, seed=config.seed,
           indices=idx)
    model.reset_nfe()
    if "classifier" in config.features and preset.load_classifier() is None:
        raise ConfigError("run.features", "classifier", f"feature spaces preset {config.preset!r} provides",
                          'set run.features = ["inception"]')
    needs_test_data = "sparsification" in config.protocols or any(
        needs_real_features(preset, space) for space in config.features)
    if needs_test_data:
        test = preset.load_data("test", n=1)
        if "sparsification" in config.protocols:
            check_labels(model, test, "test")
        real = test.images
        expected = tuple(getattr(model, "pixel_shape", model.sample_shape))  # a latent model decodes to pixel_shape
        if tuple(real.shape[1:]) != expected:
            raise ConfigError("data", getattr(preset, "dataset", None), f"images of the model's shape "
                              f"{expected} (C, H, W), but they are {tuple(real.shape[1:])}",
                              "resize/convert the images, or point [data] at the data the model was trained on")


def check_model_ranges(config: RunConfig, model, preset) -> None:
    """Ranges that depend on the model or the data, before anything is written: the sampler's steps within the
    model's training timesteps, the sparsification protocol's images within the test set."""
    total = int(len(model.alphas_cumprod))
    if config.steps > total:
        raise ConfigError("run.steps", config.steps, f"at most the model's {total} training timesteps",
                          f"set run.steps <= {total} (e.g. 50)")
    if "sparsification" in config.protocols:
        wanted = int(config.protocols["sparsification"]["num_images"])
        available = int(preset.load_data("test").images.shape[0])
        if wanted > available:
            raise ConfigError("protocols.sparsification.num_images", wanted, f"at most the {available} test images "
                              "of the data", f"set protocols.sparsification.num_images <= {available}")


def check_labels(model, data, split: str) -> None:
    """Real images given to a class-conditional model (the Laplace fit, sparsification) need class labels the
    model knows: class subfolders of an image folder, or an .npz's label arrays (benchmark.data.datasets)."""
    if not getattr(model, "num_classes", None) or getattr(model, "cycled_conditions", False):
        return
    fix = "put each class's images in a subfolder <data>/<class>/ (sorted names = labels 0..K-1) or use an .npz " \
          "with labels"
    if data.labels is None:
        raise ConfigError("data", f"{data.name} ({split}) without class labels", f"labelled images: the model is "
                          f"class-conditional ({model.num_classes} classes)", fix)
    if data.num_classes is not None and data.num_classes > model.num_classes:
        raise ConfigError("data", f"{data.name} ({split}): {data.num_classes} classes", f"at most the model's "
                          f"{model.num_classes} classes", fix)


def check_protocols_can_run(config: RunConfig, preset) -> None:
    """A protocol the config asks for must be able to run on this preset (never skipped in silence)."""
    oracle = getattr(preset, "oracle", None)
    if "ground_truth" in config.protocols and (oracle is None or oracle() is None):
        raise ConfigError("protocols.ground_truth", config.preset or "(model folder)", "a preset with an analytic "
                          "oracle (exact score and density, e.g. gmm)", "remove [protocols.ground_truth] or set "
                          'run.preset = "gmm"')
    if "precision_recall" in config.protocols and not any(
            needs_real_features(preset, space) for space in config.features):
        raise ConfigError("protocols.precision_recall", list(config.features), "a feature space with real images' "
                          "features (P&R needs them; only statistics are committed for the ones given)",
                          'add "classifier" to run.features or remove [protocols.precision_recall]')


def resolve_device(name: str) -> torch.device:
    """The run's torch device; refuses one this machine does not have (exit 2, before anything is written)."""
    fix = 'set run.device = "cpu"'
    if name.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(name.partition(":")[2] or 0)
        if index >= count:
            raise ConfigError("run.device", name, f"a device that exists here (cpu; cuda needs a GPU; {count} "
                              "found)", fix)
    elif name == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ConfigError("run.device", name, "a device that exists here (mps needs Apple silicon)", fix)
    try:
        return torch.device(name)
    except RuntimeError as err:
        raise ConfigError("run.device", name, f"a torch device name ({err})", fix) from None
