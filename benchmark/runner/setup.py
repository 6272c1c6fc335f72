"""Everything a run checks before generation: preflight (one step of every estimator, the assets the protocols read,
ranges that depend on the model or the data) and the device. The estimators and what they need: `resources`."""
from __future__ import annotations

from typing import Callable

import torch

from benchmark.config import RunConfig
from benchmark.errors import ConfigError
from benchmark.execution.features import needs_real_features
from benchmark.execution.run_dir import FINISHED_MARKER, check_run_dir, prepare_run_dir  # noqa: F401 (re-exported)
from benchmark.presets.loading import EXTRA_PRESETS_ENV, extra_presets, load_preset  # noqa: F401 (re-exported)
from benchmark.runner.resources import check_labels


def check_before_work(config: RunConfig, model, preset) -> None:
    """Every check that needs no computation, run before any posterior fit, feature extraction or sampling: the
    protocols can run on this data, ranges that depend on the model or the data, the feature spaces exist, the test
    images have the model's shape (and labels where a protocol needs them). Each estimator's declared needs are
    checked next, first thing in `benchmark.runner.resources.estimator_factory`, still before any fit."""
    check_protocols_can_run(config, preset)
    check_model_ranges(config, model, preset)
    check_reference_stats(config, preset)
    if "classifier" in config.features and preset.load_classifier() is None:
        raise ConfigError("run.features", "classifier", f"feature spaces preset {config.preset!r} provides",
                          'set run.features = ["inception"]')
    needs_test_data = "sparsification" in config.protocols or any(
        needs_real_features(preset, space) for space in config.features)
    if needs_test_data:
        test = preset.load_data("test", n=1)
        if "sparsification" in config.protocols:
            check_sparsification_labels(model, test)
        real = test.images
        expected = tuple(getattr(model, "pixel_shape", model.sample_shape))  # a latent model decodes to pixel_shape
        if tuple(real.shape[1:]) != expected:
            raise ConfigError("data", getattr(preset, "dataset", None), f"images of the model's shape "
                              f"{expected} (C, H, W), but they are {tuple(real.shape[1:])}",
                              "resize/convert the images, or point [data] at the data the model was trained on")


def null_class_note(model, data) -> str | None:
    """What the sparsification protocol conditions a class-conditional model on when the real test images have no
    labels and the model has a null class (classifier-free guidance: DiT, `ConditionedDenoiser`): the null class,
    i.e. its unconditional branch, as the posterior fit does (`resources.fit_labels`). None otherwise."""
    null = getattr(model, "null_condition", None)
    if (not getattr(model, "num_classes", None) or getattr(model, "cycled_conditions", False) or null is None
            or data.labels is not None):
        return None
    return (f"sparsification: the test images have no labels, so the class-conditional model denoises them with its "
            f"null class ({int(null)}), i.e. its unconditional branch")


def check_sparsification_labels(model, test) -> None:
    """The sparsification protocol re-noises real test images: a class-conditional model needs their labels, or a
    null class to use instead (under guidance both branches then get the null class: the unconditional branch)."""
    if null_class_note(model, test) is None:
        check_labels(model, test, "test", why="the sparsification protocol re-noises labelled test images")


def run_notes(config: RunConfig, model, preset) -> list[str]:
    """What the manifest records about choices the run made for the user (e.g. the null class for unlabelled test
    images in the sparsification protocol)."""
    if "sparsification" not in config.protocols:
        return []
    note = null_class_note(model, preset.load_data("test", n=1))
    return [note] if note else []


def preflight(config: RunConfig, model, preset, make_estimators: Callable[[], list]) -> None:
    """Fail on bad input before any file: every estimator observes one sample for one step (a model without the
    capability an estimator needs, NaN from the network). The checks that need no computation ran before it
    (`check_before_work`, then the estimators' needs in `estimator_factory`)."""
    from benchmark.sampling import condition_labels, initial_noise, sample

    idx = torch.zeros(1, dtype=torch.long, device="cpu")
    x_T = initial_noise(config.seed, idx, model.sample_shape).to(model.device)
    y = condition_labels(model, config.seed, idx)
    y = None if y is None else y.to(model.device)
    sample(model, x_T, sampler=config.sampler, steps=1, estimators=make_estimators(), y=y, seed=config.seed,
           indices=idx)
    model.reset_nfe()


def check_model_ranges(config: RunConfig, model, preset) -> None:
    """Ranges that depend on the model or the data, before anything is written (refused, never clamped): the
    sampler's steps within the model's training timesteps, the sparsification protocol's images within the test
    set, a `fit_images` given for the last-layer posterior within the training set."""
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
    given = [(spec.name, int(spec.params["fit_images"])) for spec in config.estimators if "fit_images" in spec.params]
    if given and getattr(preset, "dataset", None) is not None:
        available = int(preset.load_data("train").images.shape[0])
        for name, wanted in given:
            if wanted > available:
                raise ConfigError(f"estimators.{name}.fit_images", wanted, f"at most the {available} training images "
                                  "of the data (the last-layer posterior is fitted on them)",
                                  f"set fit_images <= {available}, or leave it out to fit on all of them")


def check_reference_stats(config: RunConfig, preset) -> None:
    """A `[data] reference_stats` file must be read (a protocol reads the real statistics of the Inception space,
    where the file serves) and be of Inception pool3 features (2048-d): never ignored, never a matmul error after
    the sampling."""
    from benchmark.execution.features import REAL_TEST
    from benchmark.runner.phases import feature_plan
    from metrics.features import INCEPTION_DIM

    path = getattr(config.data, "reference_stats", None)
    if path is None:
        return
    if ("inception", REAL_TEST) not in feature_plan(config, preset).committed:
        raise ConfigError("data.reference_stats", path, "statistics the run reads: they serve the Inception space's "
                          f"FID, but this run's features are {list(config.features)} (or no protocol reads real "
                          "Inception statistics)", 'add "inception" to run.features (with protocols.filtered_fid), '
                          "or remove data.reference_stats")
    dim = int(config.data.load_reference_stats().mu.size)
    if dim != INCEPTION_DIM:
        raise ConfigError("data.reference_stats", path, f"statistics of {INCEPTION_DIM}-d Inception pool3 features, "
                          f"but mu has {dim} dimensions", "compute them from Inception pool3 features (e.g. clean-fid's "
                          "statistics), or remove data.reference_stats and the run computes them from the data")


def check_protocols_can_run(config: RunConfig, preset) -> None:
    """A protocol the config asks for must be able to run on this preset (never skipped in silence)."""
    oracle = getattr(preset, "oracle", None)
    if "ground_truth" in config.protocols and (oracle is None or oracle() is None):
        raise ConfigError("protocols.ground_truth", config.preset or "(model folder)", "a preset with an analytic "
                          "oracle (exact score and density, e.g. gmm)", "remove [protocols.ground_truth] or set "
                          'run.preset = "gmm"')
    from benchmark.protocols.catalog import PROTOCOL_MODULES

    for name, params in config.protocols.items():  # a protocol's own check of the preset (e.g. hallucination)
        check = getattr(PROTOCOL_MODULES.get(name), "check_can_run", None)
        if callable(check):
            check(params, preset)
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
