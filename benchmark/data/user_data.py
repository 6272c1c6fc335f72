"""The `[data]` section: a built-in dataset or the user's own images (a folder of PNG/JPEG files, class subfolders
as labels, or an .npy/.npz array), reference statistics, and the data's own domain classifier (`classifier_file`,
`check_classifier`)."""
from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchmark.data.datasets import DATASETS, ImageDataset, load_dataset
from benchmark.data.value_range import VALUE_RANGES, to_unit_range
from benchmark.errors import ConfigError

DATA_KEYS = ("name", "path", "reference_stats", "range", "classifier")
CLASSIFIER_FILE = "domain_classifier.pt"  # in an image folder; beside an array file as <stem>.domain_classifier.pt
TRAIN_CLASSIFIER = "python -m benchmark train --what classifier --data"

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
ARRAY_SUFFIXES = (".npy", ".npz")
LABEL_KEYS = ("labels", "train_labels", "test_labels")  # an .npz's class labels: of its one array, or per split


@dataclass(frozen=True)
class DataSpec:
    """The real images a run compares with (`[data]` section; the data half of a `benchmark.presets.Preset`).

    `name`: a built-in dataset (digits, fashion, gmm); or `path`: a folder of PNG/JPEG images or an .npy/.npz
    array [N,C,H,W] or [N,H,W,C] (see `load_image_folder`, `load_image_array`). `reference_stats`: an .npz
    with `mu` and `sigma` (clean-fid's format, optionally `n`) of the Inception pool3 features of the reference
    set; without it the statistics are computed from the data and cached by content hash. `classifier`: a domain
    classifier file trained on this data (`python -m benchmark train --what classifier --data PATH --out FILE`);
    without it the one at `default_classifier_path(path)` serves when it exists.
    """

    name: str | None = None
    path: str | None = None
    reference_stats: str | None = None
    value_range: str | None = None  # [data] range of a float array: "0,1", "-1,1" or "0,255" (None: infer or refuse)
    classifier: str | None = None  # [data] classifier: a DomainClassifier file (None: the default place, if there)

    @property
    def label(self) -> str:
        return str(self.name or self.path)

    def load(self, split: str = "train", n: int | None = None) -> ImageDataset:
        """Images [N,C,H,W] in [-1, 1] of `split` (first n)."""
        if self.name == "gmm":
            from benchmark.data.gmm import build_oracle, oracle_data

            return oracle_data(build_oracle(), split, n)
        if self.name == "grid25":
            from benchmark.data import grid25

            return grid25.oracle_data(split, n)
        if self.name is not None:
            return load_dataset(self.name, split, root=os.environ.get("UQBENCH_DATA_DIR")).subset(n)
        return load_image_data(Path(str(self.path)), split, self.value_range).subset(n)

    def load_reference_stats(self):
        """The `reference_stats` file as metrics.FeatureStats, or None when none is named."""
        return None if self.reference_stats is None else load_reference_stats(self.reference_stats)

    def classifier_file(self) -> Path | None:
        """The data's own domain classifier: `classifier` when given, else `default_classifier_path(path)` when
        that file exists, else None (a built-in dataset: its preset's classifier serves)."""
        if self.classifier is not None:
            return Path(self.classifier)
        if self.path is None:
            return None
        default = default_classifier_path(self.path)
        return default if default.is_file() else None


def data_spec_from_section(section: dict, *, base_dir: Path | None = None) -> DataSpec:
    """Validate a `[data]` table (paths relative to the config's folder when they exist there)."""
    unknown = sorted(set(section) - set(DATA_KEYS))
    if unknown:
        raise ConfigError(f"data.{unknown[0]}", section[unknown[0]], f"known keys are {', '.join(DATA_KEYS)}",
                          "correct the spelling or remove the key")
    name, path = section.get("name"), section.get("path")
    if (name is None) == (path is None):
        raise ConfigError("data", sorted(section), "exactly one of data.name (a built-in dataset) or data.path",
                          'e.g. path = "my_images" (a folder of PNG/JPEG files)')
    if name is not None and name not in (*DATASETS, "gmm", "grid25"):
        raise ConfigError("data.name", name, f"one of {', '.join((*DATASETS, 'gmm', 'grid25'))}",
                          "or give data.path (a folder of images or an .npy/.npz array)")
    path = _existing(path, base_dir, "data.path", "a folder of PNG/JPEG images or an .npy/.npz file") if path else None
    if path is not None and Path(path).is_file() and Path(path).suffix.lower() not in ARRAY_SUFFIXES:
        raise ConfigError("data.path", path, "a folder of PNG/JPEG images or an .npy/.npz array",
                          "convert the data to one of these")
    stats = section.get("reference_stats")
    if stats is not None:
        stats = _existing(stats, base_dir, "data.reference_stats", "an .npz file with mu and sigma")
        load_reference_stats(stats)  # readable, with mu and sigma of matching shapes
    value_range = section.get("range")
    if value_range is not None and (not isinstance(value_range, str) or value_range.replace(" ", "") not in VALUE_RANGES):
        raise ConfigError("data.range", value_range, f"one of {', '.join(repr(r) for r in VALUE_RANGES)} (the value "
                          "range of a float image array)", 'e.g. range = "0,1" for floats in [0, 1]')
    if value_range is not None and name is not None:
        raise ConfigError("data.range", value_range, "only with data.path (a built-in dataset knows its range)",
                          "remove data.range")
    if value_range is not None and path is not None and Path(path).is_dir():
        raise ConfigError("data.range", value_range, "only with an .npy/.npz array (PNG/JPEG images in a folder are "
                          "always read as 0..255)", "remove data.range")
    classifier = section.get("classifier")
    if classifier is not None:
        if name is not None:
            raise ConfigError("data.classifier", classifier, "only with data.path (a built-in dataset uses its "
                              "preset's classifier)", "remove data.classifier")
        classifier = _existing(classifier, base_dir, "data.classifier", f"a classifier file written by `"
                               f"{TRAIN_CLASSIFIER} {path} --out FILE`")
    return DataSpec(name=name, path=path, reference_stats=stats,
                    value_range=None if value_range is None else value_range.replace(" ", ""), classifier=classifier)


def _existing(path: object, base_dir: Path | None, field: str, what: str) -> str:
    if not isinstance(path, str) or not path:
        raise ConfigError(field, path, what, f'give a path as a string, e.g. {field.split(".")[-1]} = "..."')
    candidate = Path(path).expanduser()
    if not candidate.is_absolute() and base_dir is not None and (base_dir / candidate).exists():
        candidate = base_dir / candidate
    if not candidate.exists():
        raise ConfigError(field, path, f"{what} that exists", "give a path relative to the config file or absolute")
    return str(candidate.resolve())


def load_reference_stats(path: str | Path):
    """FeatureStats from an .npz with `mu` [D] and `sigma` [D, D] (clean-fid / pytorch-fid layout); `n` (the
    number of reference images) is read when present, else 0 (unknown)."""
    from metrics.frechet import FeatureStats

    try:
        with np.load(path) as blob:
            mu, sigma = np.asarray(blob["mu"], np.float64), np.asarray(blob["sigma"], np.float64)
            n = int(blob["n"]) if "n" in blob.files else 0
    except (OSError, ValueError, KeyError) as err:
        raise ConfigError("data.reference_stats", str(path), f"an .npz with arrays mu and sigma ({err})",
                          "save it with np.savez(path, mu=mu, sigma=sigma)") from None
    if mu.ndim != 1 or sigma.shape != (mu.size, mu.size):
        raise ConfigError("data.reference_stats", str(path), f"mu [D] and sigma [D, D], got {mu.shape}, {sigma.shape}",
                          "save it with np.savez(path, mu=features.mean(0), sigma=np.cov(features, rowvar=False))")
    return FeatureStats(mu=mu, sigma=sigma, n=n)


def load_image_data(path: Path, split: str, value_range: str | None = None) -> ImageDataset:
    """A folder (its `train/` or `test/` subfolder when present, else the whole folder serves both splits) or
    an array file (an .npz may hold `train` and `test` arrays; else its one array serves both). Class labels
    come from class subfolders (`class_names`) or an .npz's label arrays (`load_image_array`)."""
    if path.is_dir():
        splits = [path / s for s in ("train", "test") if (path / s).is_dir()]
        folder = path / split if (path / split).is_dir() else path
        return load_image_folder(folder, classes=class_names(splits or [path]))
    return load_image_array(path, split, value_range)


def image_files(folder: Path) -> list[Path]:
    """Every PNG/JPEG file under `folder`, sorted by relative path."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def class_names(folders: list[Path]) -> list[str] | None:
    """The classes of an image-folder layout (`<folder>/<class>/<image>`, every image exactly one subfolder deep,
    at least 2 classes): the sorted subfolder names over all `folders` (a split's train/ and test/, so a class
    missing from one split keeps its index); None for any other layout (the images carry no labels)."""
    names: set[str] = set()
    for folder in folders:
        files = image_files(folder)
        if not files or any(f.parent.parent != folder for f in files):
            return None
        names.update(f.parent.name for f in files)
    return sorted(names) if len(names) >= 2 else None


def load_image_folder(folder: Path, classes: list[str] | None = None) -> ImageDataset:
    """Every PNG/JPEG under `folder` (sorted by relative path) as float32 [N,C,H,W] in [-1, 1]: v / 127.5 - 1,
    labelled by class subfolder when `classes` (e.g. `class_names([folder])`) is given: label = its index there.

    Grey-scale images (PIL modes 1, L, LA, I, I;16) give C = 1, all others RGB (alpha dropped) C = 3; all
    images must share one size and channel count.
    """
    from PIL import Image

    files = image_files(folder)
    if not files:
        raise ConfigError("data.path", str(folder), "a folder holding .png/.jpg/.jpeg images",
                          "put the images there or point data.path at the right folder")
    arrays = []
    for file in files:
        try:
            with Image.open(file) as img:
                grey = img.mode in ("1", "L", "LA", "I", "I;16")
                if img.mode in ("I", "I;16"):
                    img = img.point(lambda v: v / 256)  # 16-bit grey to 8-bit
                array = np.asarray(img.convert("L" if grey else "RGB"), dtype=np.uint8)
        except (OSError, ValueError, SyntaxError) as err:  # truncated, corrupt or not an image (PIL's errors)
            raise ConfigError("data.path", str(file), f"a readable image ({type(err).__name__}: {err})",
                              f"remove or re-save {file}") from None
        array = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
        if arrays and array.shape != arrays[0].shape:
            raise ConfigError("data.path", str(file), f"images of one shape: {files[0].name} is "
                              f"{arrays[0].shape} (C, H, W) but this one is {array.shape}",
                              "resize or convert the images to one size and mode")
        arrays.append(array)
    images = torch.from_numpy(np.stack(arrays).astype(np.float32) / 127.5 - 1.0)
    if classes is None:
        parents = {f.parent for f in files}
        single = len(parents) == 1 and next(iter(parents)).parent == folder  # <folder>/<one class>/*.png
        return ImageDataset(images, None, None, folder.name, unlabelled_because=(
            f"one class subfolder ({next(iter(parents)).name}/) only: labels need >= 2 class subfolders"
            if single else None))
    labels = torch.tensor([classes.index(f.parent.name) for f in files], dtype=torch.long)
    return ImageDataset(images, labels, len(classes), folder.name)


def load_image_array(path: Path, split: str, value_range: str | None = None) -> ImageDataset:
    """An .npy array, or an .npz holding one array (or `train` / `test` arrays), as [N,C,H,W] in [-1, 1].

    Layout: [N,C,H,W] when dim 1 has 1 or 3 entries, else [N,H,W,C] when the last dim has. Values: uint8 are
    0..255; a float array's range is declared (`value_range`, [data] range: "0,1", "-1,1" or "0,255") or inferred
    only when unambiguous (a value below 0: "-1,1"; above 1: "0,255"); floats all in [0, 1] are ambiguous and
    refused (read as [-1, 1] they would shift every metric). Non-finite values are refused, naming the file. Class
    labels (integers >= 0) come from an
    .npz's `labels` array (with its one image array) or `train_labels` / `test_labels` (with `train` / `test`);
    the number of classes is 1 + the largest label in the file.
    """
    labels, num_classes, key = None, None, path.name
    try:
        if path.suffix.lower() == ".npz":
            with np.load(path) as blob:
                keys = [k for k in blob.files if k not in LABEL_KEYS]
                key = split if split in keys else (keys[0] if len(keys) == 1 else None)
                if key is None:
                    raise ConfigError("data.path", str(path), f"an .npz with one array or with train/test arrays "
                                      f"(it holds {', '.join(blob.files)})",
                                      "save it with np.savez(path, train=..., test=...)")
                array = _array(path, key, blob)
                label_key = "labels" if key not in ("train", "test") else f"{key}_labels"
                if label_key in blob.files:
                    labels = _checked_labels(path, label_key, _array(path, label_key, blob), array.shape[0])
                    num_classes = 1 + max(int(blob[k].max()) for k in LABEL_KEYS if k in blob.files and blob[k].size)
        else:
            array = _array(path, None, None)
    except ConfigError:
        raise
    except (OSError, EOFError, ValueError, zipfile.BadZipFile) as err:  # empty, truncated, not an array file
        raise ConfigError("data.path", str(path), f"a readable .npy/.npz array file ({type(err).__name__}: {err})",
                          f"re-save {path.name} with np.save / np.savez (or remove it from data.path)") from None
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise ConfigError(f"data.path ({key})", str(path), f"finite image values, but {int((~np.isfinite(array)).sum())} "
                          f"values of array {key!r} are NaN or infinite",
                          f"repair or drop those images (np.isfinite) and re-save {path.name}")
    if array.ndim != 4:
        raise ConfigError("data.path", str(path), f"an array [N,C,H,W] or [N,H,W,C], got shape {array.shape}",
                          "save the images as one 4-d array (a single grey image set: images[:, None])")
    if array.shape[1] not in (1, 3) and array.shape[-1] in (1, 3):
        array = array.transpose(0, 3, 1, 2)
    elif array.shape[1] not in (1, 3):
        raise ConfigError("data.path", str(path), f"1 or 3 channels in dim 1 or dim 3, got shape {array.shape}",
                          "save grey (1 channel) or RGB (3 channels) images, [N,C,H,W] or [N,H,W,C]")
    array = to_unit_range(array, path, value_range)
    return ImageDataset(torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)), labels, num_classes,
                        path.stem)



def _array(path: Path, key: str | None, blob) -> np.ndarray:
    """One array of an .npz (`blob[key]`) or the .npy file; an object array (pickled Python objects, not loaded:
    unpickling runs code) is a ConfigError naming the array."""
    try:
        return np.load(path) if blob is None else blob[key]
    except ValueError as err:
        if "allow_pickle" not in str(err):
            raise
        name = f"data.path ({key})" if key else "data.path"
        raise ConfigError(name, str(path), f"a numeric array, but {'array ' + repr(key) if key else 'it'} holds "
                          "Python objects (dtype object; not loaded, since unpickling runs code)",
                          "save the images as numbers, e.g. np.savez(path, images=np.asarray(images, dtype=np.uint8))"
                          ) from None


def _checked_labels(path: Path, key: str, labels: np.ndarray, count: int) -> torch.Tensor:
    """An .npz's label array: integers >= 0, one per image."""
    if labels.ndim != 1 or labels.shape[0] != count or not np.issubdtype(labels.dtype, np.integer) or (
            labels.size and labels.min() < 0):
        raise ConfigError(f"data.path ({key})", str(path), f"{count} integer class labels >= 0, one per image "
                          f"(got dtype {labels.dtype}, shape {labels.shape})",
                          "save them with np.savez(path, ..., labels=np.array(labels, dtype=np.int64))")
    return torch.from_numpy(labels.astype(np.int64))


# ----------------------------------------------------------------------------- the data's domain classifier

def default_classifier_path(path: str | Path) -> Path:
    """Where `train --what classifier --data PATH` writes and a run on PATH looks: PATH/domain_classifier.pt for a
    folder (it moves with the images; not an image, so never read as data), else PATH's sibling
    <stem>.domain_classifier.pt."""
    path = Path(path)
    return path / CLASSIFIER_FILE if path.is_dir() else path.with_name(f"{path.stem}.{CLASSIFIER_FILE}")


_FINGERPRINTS: dict[tuple, str] = {}


def data_fingerprint(path: str | Path, value_range: str | None = None) -> str:
    """sha256 of what the images and labels are read from: an array file's bytes, or a folder's sorted (relative
    path, bytes) of its PNG/JPEG files (class subfolder names included; other files, the classifier among them,
    left out), plus the declared value range. Memoised per process by the files' sizes and modification times."""
    from metrics.features import file_sha256

    path = Path(path).resolve()
    files = image_files(path) if path.is_dir() else [path]
    key = (str(path), value_range, tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files))
    if key not in _FINGERPRINTS:
        digest = hashlib.sha256(f"range={value_range}\n".encode())
        for file in files:
            name = file.relative_to(path).as_posix() if path.is_dir() else file.name
            digest.update(f"{name}\0{file_sha256(file)}\n".encode())
        _FINGERPRINTS[key] = digest.hexdigest()
    return _FINGERPRINTS[key]


_SUMMARIES: dict[str, tuple] = {}


def _shape_and_classes(spec: DataSpec) -> tuple[tuple[int, int, int], int | None]:
    """(sample shape, class count) of the train split, memoised by the data's fingerprint (a run checks its
    classifier several times; the images are read once)."""
    key = data_fingerprint(str(spec.path), spec.value_range)
    if key not in _SUMMARIES:
        train = spec.load("train")
        _SUMMARIES[key] = (train.sample_shape, train.num_classes)
    return _SUMMARIES[key]


def check_classifier(spec: DataSpec, classifier, where: str | Path) -> None:
    """Refuse (ConfigError naming data.classifier, with the command that retrains it) a domain classifier that
    does not fit the data of `spec`: another channel count or image size (the classifier pads internally, it is
    never resized silently), another class count, or (when it records one) another data fingerprint."""
    (c, h, w), num_classes = _shape_and_classes(spec)
    fix = f"retrain it on this data: `{TRAIN_CLASSIFIER} {spec.path}" + (
        f" --out {where}`" if spec.classifier is not None else "`")
    have_hw = tuple(getattr(classifier, "hw", (classifier.image_size,) * 2))
    problems = []
    if (classifier.in_channels, *have_hw) != (c, h, w):
        problems.append(f"it takes {classifier.in_channels}x{have_hw[0]}x{have_hw[1]} images (C x H x W), "
                        f"the data's are {c}x{h}x{w}")
    if num_classes is not None and classifier.num_classes != num_classes:
        problems.append(f"it has {classifier.num_classes} classes, the data {num_classes}")
    record = getattr(classifier, "trained_on", None) or {}
    if not problems and record.get("fingerprint") and record["fingerprint"] != data_fingerprint(spec.path,
                                                                                                spec.value_range):
        problems.append(f"it was trained on other contents of the data (fingerprint {record['fingerprint'][:12]}, "
                        f"the data now {data_fingerprint(spec.path, spec.value_range)[:12]}): the data changed since")
    if problems:
        raise ConfigError("data.classifier", str(where),
                          f"a classifier trained on this data, but {'; '.join(problems)}", fix)
