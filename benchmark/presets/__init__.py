"""Presets (layer 3): a named bundle of a model (`[model]`), its data (`[data]`) and an optional domain classifier.

A preset is a `Preset` (frozen dataclass). Anything a run config's `[model]` + `[data]` sections say, a
preset says once under a name; a config naming `run.preset` may still override either half. The interface
the runner uses (and a preset written outside the package provides):

    preset.load_model() -> DiffusionModel         the network (benchmark.models.loading.ModelSpec.load)
    preset.load_data(split, n=None) -> ImageDataset   real images [N,C,H,W] in [-1, 1], split "train"/"test"
    preset.load_classifier() -> DomainClassifier | None   a domain classifier for fast FID (None: Inception)
    preset.reference_stats(feature) -> FeatureStats | None   committed statistics of the reference set
    preset.oracle() -> GaussianMixtureModel | None   the exact model, for the ground-truth protocol

Built-in presets keep their assets in a folder next to this file (a diffusers pipeline folder plus
classifier.pt, ref_stats_<feature>.npz, model_card.md). `cifar10-ddpm` has no committed weights: it loads the
folder named by $UQBENCH_CIFAR10_DDPM, else the hub id google/ddpm-cifar10-32 (only when called). More
presets come from the entry-point group `diffusion_uq_bench.presets` (benchmark.config.plugins) and from
$UQBENCH_EXTRA_PRESETS (`extra_presets`); both are checked with `as_preset`. `get` finds all three kinds.

May import: errors/seeding, metrics, models, data, sampling, estimators. Never training, config or anything above.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from benchmark.data.user_data import DataSpec
from benchmark.errors import ConfigError, MissingAssetError
from benchmark.models.loading import ModelSpec

if TYPE_CHECKING:
    from benchmark.data.datasets import ImageDataset
    from benchmark.models.base import DiffusionModel
    from benchmark.models.gmm import GaussianMixtureModel
    from metrics.classifier import DomainClassifier

PRESETS_DIR = Path(__file__).resolve().parent
CIFAR10_ENV = "UQBENCH_CIFAR10_DDPM"
CIFAR10_HUB_ID = "google/ddpm-cifar10-32"
FEATURES = ("inception", "classifier")
PRESET_METHODS = ("load_model", "load_data", "load_classifier", "reference_stats")
BUILTIN = "built-in"
EXTRA_PRESETS_ENV = "UQBENCH_EXTRA_PRESETS"


@dataclass(frozen=True)
class Preset:
    """A named model + data bundle.

    Args:
        name: what `run.preset` names.
        model: where the network comes from (path or hub id, num_classes, last_layer).
        data: the real images protocols compare with (None: a model without data; FID needs reference stats).
        classifier: path of a `metrics.classifier.DomainClassifier` checkpoint (None: Inception features serve).
        stats_dir: folder holding committed `ref_stats_<feature>.npz` of the data's test split.
        description, sampler, steps: shown by `python -m benchmark list`.
        estimator_defaults: the paper settings of the estimators for this model (informational).
        oracle_factory: builds the exact model (GaussianMixtureModel) for the ground-truth protocol.
    """

    name: str
    model: ModelSpec
    data: DataSpec | None = None
    classifier: Path | None = None
    stats_dir: Path | None = None
    description: str = ""
    sampler: str = "ddim"
    steps: int = 50
    estimator_defaults: dict[str, Any] = field(default_factory=dict)
    oracle_factory: Callable[[], "GaussianMixtureModel"] | None = None

    # ------------------------------------------------------------------ what the bundle says
    @property
    def num_classes(self) -> int | None:
        return self.model.num_classes

    @property
    def dataset(self) -> str | None:
        """The data's name or path (None without data)."""
        return None if self.data is None else self.data.label

    @property
    def model_dir(self) -> Path | None:
        """The local model folder, or None (a hub id)."""
        return self.model.local_dir

    @property
    def folder(self) -> str | None:
        """The name of the committed asset folder next to this module (built-in presets), else None."""
        return self.stats_dir.name if self.stats_dir is not None and self.stats_dir.parent == PRESETS_DIR else None

    # ------------------------------------------------------------------ assets
    def load_model(self) -> "DiffusionModel":
        """The network (the gmm preset returns its trained network, not the oracle)."""
        folder = Path(self.model.resolved_path())
        if folder.parent == PRESETS_DIR and not any((folder / f).is_file() for f in ("unet/config.json", "model_index.json")):
            raise MissingAssetError(
                f"preset {self.name!r} has no trained weights in {folder}. Fix: train them with "
                f"`python -m benchmark train --dataset {self.dataset or self.name} --out {folder}` "
                "or restore the folder from the repository (git checkout).")
        return self.model.load()

    def load_classifier(self) -> "DomainClassifier | None":
        """The domain classifier whose features serve fast FID (None if the preset has none). The data's own
        classifier (`DataSpec.classifier_file`, put in place by `for_run`) is checked against the data first
        (benchmark.data.user_data.check_classifier: size, channels, classes, fingerprint; ConfigError if stale)."""
        if self.classifier is None:
            return None
        from metrics.classifier import DomainClassifier

        data = self.data
        if data is None or data.path is None or data.classifier_file() != Path(self.classifier):
            return DomainClassifier.load(self.classifier)
        from benchmark.data.user_data import TRAIN_CLASSIFIER, check_classifier

        classifier = DomainClassifier.load(self.classifier, field="data.classifier", fix=f"retrain it on this data "
                                           f"(`{TRAIN_CLASSIFIER} {data.path}`), or delete it")
        check_classifier(data, classifier, self.classifier)
        return classifier

    def oracle(self) -> "GaussianMixtureModel | None":
        """The exact model (the gmm preset's analytic mixture), else None."""
        return None if self.oracle_factory is None else self.oracle_factory()

    def load_data(self, split: str = "train", n: int | None = None) -> "ImageDataset":
        """Images [N,C,H,W] in [-1, 1] of `split` (first n); for gmm, n seeded exact draws from the oracle."""
        if split not in ("train", "test"):
            raise ConfigError("split", split, "one of 'train', 'test'")
        if self.data is None:
            raise MissingAssetError(
                f"preset {self.name!r} has no data (CIFAR-10 is not bundled). Fix: add a [data] section "
                "(path = a folder of images or an .npz array) or run a preset with data (fashion, digits, gmm).")
        return self.data.load(split, n)

    def reference_stats(self, feature: str):
        """Statistics (metrics.FeatureStats: mu, sigma, n) of the reference set in `feature` space, or None:
        the data's `reference_stats` file (Inception), else the committed ref_stats_<feature>.npz."""
        if feature not in FEATURES:
            raise ConfigError("feature", feature, f"one of {', '.join(FEATURES)}")
        if feature == "inception" and self.data is not None and self.data.reference_stats is not None:
            return self.data.load_reference_stats()
        path = self.stats_dir / f"ref_stats_{feature}.npz" if self.stats_dir is not None else None
        if path is None or not path.is_file():
            return None
        from benchmark.data.user_data import load_reference_stats

        return load_reference_stats(path)


def _gmm_oracle() -> "GaussianMixtureModel":
    from benchmark.data.gmm import build_oracle

    return build_oracle()


def _grid_oracle() -> "GaussianMixtureModel":
    from benchmark.data.grid25 import build_oracle

    return build_oracle()


def _grid25() -> Preset:
    """Aithal et al.'s grid of 25 Gaussians in 8x8 images (benchmark/data/grid25.py), with a learned MLP score
    (benchmark/models/grid_mlp.py, an x0 predictor; weights from `python -m benchmark train --dataset grid25`)."""
    from benchmark.models.factory import FactorySpec
    from benchmark.models.grid_mlp import PREDICTION_TYPE

    model = FactorySpec(factory="benchmark.models.grid_mlp:make_network",
                        weights=str(PRESETS_DIR / "grid25" / "weights.pt"), prediction_type=PREDICTION_TYPE,
                        last_layer="out", sample_shape=[1, 8, 8])
    return Preset("grid25", model, DataSpec(name="grid25"), stats_dir=PRESETS_DIR / "grid25",
                  description="Aithal et al.'s 2-D grid of 25 Gaussians in 8x8 images, learned MLP score (hallucinations "
                              "with exact labels; the exact score is its oracle)", sampler="ddpm",
                  oracle_factory=_grid_oracle)


def _builtin(name: str, description: str, *, data: str | None, num_classes: int | None = None,
             classifier_from: str | None = None, **kwargs: Any) -> Preset:
    folder = PRESETS_DIR / name
    return Preset(name, ModelSpec(str(folder), num_classes=num_classes), DataSpec(name=data) if data else None,
                  classifier=PRESETS_DIR / (classifier_from or name) / "classifier.pt", stats_dir=folder,
                  description=description, **kwargs)


_BUILTINS: dict[str, Preset] = {
    p.name: p
    for p in (
        _builtin("digits", "sklearn digits 16x16, class-conditional UNet (tiny; tests and the smoke run)",
                 data="digits", num_classes=10),
        _builtin("fashion", "Fashion-MNIST 32x32, class-conditional UNet with dropout 0.1 (default of make demo)",
                 data="fashion", num_classes=10),
        _builtin("gmm", "analytic 10-component Gaussian mixture on digit prototypes (exact ground truth) "
                        "+ a small UNet trained on its samples", data="gmm", classifier_from="digits",
                 oracle_factory=_gmm_oracle),
        Preset("fashion-latent", ModelSpec(str(PRESETS_DIR / "fashion-latent"), num_classes=10), DataSpec(name="fashion"),
               classifier=PRESETS_DIR / "fashion" / "classifier.pt", stats_dir=PRESETS_DIR / "fashion",
               description="Fashion-MNIST 32x32 -> 8x8x4 AutoencoderKL latents, class-conditional DiT with dropout 0.1 "
                           "and label dropout (classifier-free guidance); see its model_card.md"),
        _grid25(),
        Preset("cifar10-ddpm", ModelSpec(CIFAR10_HUB_ID, env=CIFAR10_ENV),
               description=f"{CIFAR10_HUB_ID} (unconditional 32x32 RGB); folder from ${CIFAR10_ENV} or the hub",
               estimator_defaults={"mc_samples": 5, "uq_steps": [45, 46, 47, 48]}),
    )
}
_PLUGGED: dict[str, tuple[Any, str]] = {}  # name -> (preset, origin) registered by entry points


def names() -> list[str]:
    """Names of the built-in presets, then those registered by plug-ins (`extra_presets` has the ones named by
    $UQBENCH_EXTRA_PRESETS; `get` finds those too)."""
    return [*_BUILTINS, *_PLUGGED]


def get(name: str, *, field_name: str = "preset"):
    """The preset called `name`: a built-in, a plug-in's, or one named by $UQBENCH_EXTRA_PRESETS (ConfigError
    naming `field_name` for an unknown name)."""
    if name in _BUILTINS:
        return _BUILTINS[name]
    if name in _PLUGGED:
        return _PLUGGED[name][0]
    extra = extra_presets()
    if name in extra:
        return extra[name]
    raise ConfigError(field_name, name, f"one of {', '.join([*names(), *extra])}",
                      f"see `python -m benchmark list`, or add a preset of your own with {EXTRA_PRESETS_ENV}="
                      "module:attribute (or a plug-in's entry point)")


def origin(name: str) -> str:
    """Where the preset `name` comes from: "built-in", the plug-in that registered it or $UQBENCH_EXTRA_PRESETS."""
    get(name)
    return BUILTIN if name in _BUILTINS else _PLUGGED[name][1] if name in _PLUGGED else f"${EXTRA_PRESETS_ENV}"


def extra_presets() -> dict[str, object]:
    """Presets added without editing the package: $UQBENCH_EXTRA_PRESETS = "module:attr[,module:attr...]".

    Each attr is a preset object (with `name`, `load_model()`, ...) or a class / zero-argument function that
    returns one; it is importable from a fresh process (torchrun workers, a resumed run, `validate`), which a
    monkeypatch is not. A name taken by a built-in or plug-in preset is refused. Example:
    UQBENCH_EXTRA_PRESETS=tests.toy_preset:ToyPreset (the test suite's preset).
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
        preset = as_preset(target, EXTRA_PRESETS_ENV, item)  # refuses an estimator class, a module, ...
        if preset.name in names():
            raise ConfigError(EXTRA_PRESETS_ENV, item, f"a preset with a name of its own, but {preset.name!r} is "
                              f"taken ({origin(preset.name)})", "give the preset another name")
        found[str(preset.name)] = preset
    return found


def register(preset: Any, *, origin: str) -> None:
    """Make a plug-in's preset available by its name (a built-in's name is refused)."""
    if preset.name in _BUILTINS or (preset.name in _PLUGGED and _PLUGGED[preset.name][0] is not preset):
        raise ConfigError(f"preset {preset.name!r} from {origin}", preset.name,
                          f"a name not taken (already: {origin_or_none(preset.name)})", "give the preset a name of its own")
    _PLUGGED[preset.name] = (preset, origin)


def origin_or_none(name: str) -> str | None:
    return origin(name) if name in names() else None


def as_preset(target: Any, field_name: str, value: str):
    """`target` as a preset: a preset object, or a class / function without arguments that returns one.

    A preset has a string `name` and the methods load_model, load_data, load_classifier, reference_stats
    (a `Preset` has them all); anything else (an estimator class, a model, a module) is a ConfigError.
    """
    from estimators.base import UncertaintyEstimator

    if isinstance(target, type) and issubclass(target, UncertaintyEstimator):
        raise ConfigError(field_name, value, f"a preset, but {target.__name__} is an estimator class",
                          "register estimators with estimators.register (plug-ins), name presets here")
    candidate = target
    if not _is_preset(candidate) and callable(candidate):
        try:
            candidate = candidate()
        except TypeError as err:
            raise ConfigError(field_name, value, f"a preset or a callable without arguments returning one ({err})",
                              "point at a benchmark.presets.Preset object") from None
    if not _is_preset(candidate):
        missing = [m for m in PRESET_METHODS if not callable(getattr(candidate, m, None))]
        raise ConfigError(field_name, value, f"a preset (benchmark.presets.Preset), but it gives a "
                          f"{type(candidate).__name__}" + (f" without {', '.join(missing)}" if missing else ""),
                          "point at a benchmark.presets.Preset object")
    return candidate


def _is_preset(obj: Any) -> bool:
    return (not isinstance(obj, type) and isinstance(getattr(obj, "name", None), str)
            and all(callable(getattr(obj, m, None)) for m in PRESET_METHODS))


def for_run(base: Any | None, model: ModelSpec | None, data: DataSpec | None) -> Any:
    """The preset a run uses: `base` (run.preset) with `[model]` / `[data]` put in its place.

    Without a base, the bundle is the model folder with its data and its classifier (Inception features serve
    without one). New data drops the base's committed statistics (they describe the base's data); its own domain
    classifier (`[data] classifier`, or the file `train --what classifier --data PATH` wrote, see
    `DataSpec.classifier_file`) replaces the base's. A `[model] factory` without `sample_shape` takes the shape of
    the run's data (FactorySpec.with_shape_from).
    """
    if model is not None and callable(getattr(model, "with_shape_from", None)):
        model = model.with_shape_from(data if data is not None else getattr(base, "data", None))
    if model is None and data is None:
        if base is None:
            raise ConfigError("run.preset", None, "a preset name, or a [model] section", "set run.preset or add [model]")
        return base
    own_classifier = data.classifier_file() if data is not None and callable(getattr(data, "classifier_file", None)) \
        else None
    if base is None:
        assert model is not None, "a config with [data] but neither [model] nor run.preset is refused at parse time"
        return Preset(name=Path(model.path).name or model.path, model=model, data=data, classifier=own_classifier,
                      description=f"[model] {model.path}")
    if not isinstance(base, Preset):
        raise ConfigError("model" if model is not None else "data", getattr(base, "name", base),
                          "[model] / [data] only with a built-in or Preset-based run.preset",
                          "remove run.preset (a [model] section alone defines the run's preset)")
    bundle = replace(base, model=model or base.model)
    if data is None:
        return bundle
    return replace(bundle, data=data, stats_dir=None, classifier=own_classifier or bundle.classifier)


def list_presets_text() -> str:
    """One line per preset: name, sampler/steps, conditioning, origin and description (`benchmark list`)."""
    width = max(len(n) for n in names())
    lines = []
    for name in names():
        p = get(name)
        cond = f"{p.num_classes} classes" if getattr(p, "num_classes", None) else "unconditional"
        lines.append(f"  {p.name:<{width}}  {getattr(p, 'sampler', 'ddim')} {getattr(p, 'steps', 50):>3} steps  "
                     f"{cond:<13}  [{origin(name)}]  {getattr(p, 'description', '')}")
    return "\n".join(lines)
