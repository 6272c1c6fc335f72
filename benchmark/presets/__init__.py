"""Built-in presets: named configs bundling a model, its data, a domain classifier and reference statistics.

Committed assets live in a folder per preset next to this file (a diffusers pipeline folder plus
classifier.pt, ref_stats_<feature>.npz and model_card.md). `cifar10-ddpm` has no committed weights: it
loads the folder named by $UQBENCH_CIFAR10_DDPM, else the hub id google/ddpm-cifar10-32 (only when called).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark.errors import ConfigError, MissingAssetError

if TYPE_CHECKING:
    from benchmark.datasets import ImageDataset
    from benchmark.models import DiffusionModel, GaussianMixtureModel
    from metrics.classifier import DomainClassifier

PRESETS_DIR = Path(__file__).resolve().parent
CIFAR10_ENV = "UQBENCH_CIFAR10_DDPM"
CIFAR10_HUB_ID = "google/ddpm-cifar10-32"
FEATURES = ("inception", "classifier")


@dataclass(frozen=True)
class Preset:
    """A named model + data config. `folder` is the committed asset folder name (None: no committed weights).

    `estimator_defaults` holds the paper settings of the uncertainty estimators for this model
    (e.g. M = 5 Monte-Carlo passes on steps 45..48 for cifar10-ddpm).
    """

    name: str
    description: str
    sampler: str = "ddim"
    steps: int = 50
    num_classes: int | None = None
    dataset: str | None = None
    folder: str | None = None
    classifier_from: str | None = None
    estimator_defaults: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ assets
    @property
    def model_dir(self) -> Path | None:
        """The local model folder (a fitted Laplace file can be saved there), or None."""
        if self.name == "cifar10-ddpm":
            env = os.environ.get(CIFAR10_ENV)
            return Path(env).expanduser() if env else None
        return PRESETS_DIR / self.folder if self.folder else None

    def load_model(self) -> "DiffusionModel":
        """The network as a DiffusersUNet (the GMM preset returns its trained network, not the oracle)."""
        from benchmark.models import DiffusersUNet

        if self.name == "cifar10-ddpm":
            folder = self.model_dir
            return DiffusersUNet.from_pretrained(folder if folder is not None else CIFAR10_HUB_ID)
        folder = self.model_dir
        if folder is None or not (folder / "unet" / "config.json").is_file():
            raise MissingAssetError(
                f"preset {self.name!r} has no trained weights in {folder}. Fix: train them with "
                f"`python -m benchmark train --dataset {self.dataset or self.name} --out {folder}` "
                "or restore the folder from the repository (git checkout).")
        return DiffusersUNet.from_pretrained(folder)

    def load_classifier(self) -> "DomainClassifier | None":
        """The domain classifier whose features serve fast FID (None if the preset has none)."""
        from metrics.classifier import DomainClassifier

        owner = self.classifier_from or (self.folder if self.dataset else None)
        if owner is None:
            return None
        return DomainClassifier.load(PRESETS_DIR / owner / "classifier.pt")

    def oracle(self) -> "GaussianMixtureModel | None":
        """The analytic mixture for the gmm preset, else None."""
        if self.name != "gmm":
            return None
        from benchmark.presets.gmm import build_oracle

        return build_oracle()

    def load_data(self, split: str = "train", n: int | None = None) -> "ImageDataset":
        """Images [N,C,H,W] in [-1, 1] of `split` (first n); for gmm, n seeded exact draws from the oracle."""
        from benchmark.datasets import load_dataset

        if split not in ("train", "test"):
            raise ConfigError("split", split, "one of 'train', 'test'")
        if self.name == "gmm":
            from benchmark.presets.gmm import oracle_data

            return oracle_data(self.oracle(), split, n)  # type: ignore[arg-type]
        if self.dataset is None:
            raise MissingAssetError(
                f"preset {self.name!r} ships no dataset loader (CIFAR-10 is not bundled). Fix: use feature "
                "statistics you computed yourself, or run a preset with a dataset (fashion, digits, gmm).")
        return load_dataset(self.dataset, split, root=os.environ.get("UQBENCH_DATA_DIR")).subset(n)

    def reference_stats(self, feature: str):
        """Committed test-set statistics (metrics.FeatureStats with mu, sigma, n) for `feature`, or None."""
        if feature not in FEATURES:
            raise ConfigError("feature", feature, f"one of {', '.join(FEATURES)}")
        folder = PRESETS_DIR / self.folder if self.folder else None
        path = folder / f"ref_stats_{feature}.npz" if folder else None
        if path is None or not path.is_file():
            return None
        import numpy as np

        from metrics.frechet import FeatureStats

        with np.load(path) as blob:
            return FeatureStats(mu=blob["mu"].astype(np.float64), sigma=blob["sigma"].astype(np.float64),
                                n=int(blob["n"]))


_PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("digits", "sklearn digits 16x16, class-conditional UNet (tiny; tests and the smoke run)",
               num_classes=10, dataset="digits", folder="digits"),
        Preset("fashion", "Fashion-MNIST 32x32, class-conditional UNet with dropout 0.1 (default of make demo)",
               num_classes=10, dataset="fashion", folder="fashion"),
        Preset("gmm", "analytic 10-component Gaussian mixture on digit prototypes (exact ground truth) "
                      "+ a small UNet trained on its samples", dataset="gmm", folder="gmm", classifier_from="digits"),
        Preset("cifar10-ddpm", f"{CIFAR10_HUB_ID} (unconditional 32x32 RGB); folder from ${CIFAR10_ENV} or the hub",
               estimator_defaults={"mc_samples": 5, "uq_steps": [45, 46, 47, 48]}),
    )
}


def names() -> list[str]:
    """Names of the built-in presets."""
    return list(_PRESETS)


def get(name: str) -> Preset:
    """The preset called `name`."""
    if name not in _PRESETS:
        raise ConfigError("preset", name, f"one of {', '.join(_PRESETS)}", "see `python -m benchmark list`")
    return _PRESETS[name]


def list_presets_text() -> str:
    """One line per preset: name, sampler/steps, conditioning and description (for `python -m benchmark list`)."""
    width = max(len(n) for n in _PRESETS)
    lines = []
    for p in _PRESETS.values():
        cond = f"{p.num_classes} classes" if p.num_classes else "unconditional"
        lines.append(f"  {p.name:<{width}}  {p.sampler} {p.steps:>3} steps  {cond:<13}  {p.description}")
    return "\n".join(lines)
