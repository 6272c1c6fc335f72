"""Image datasets without torchvision: scikit-learn `digits` and Fashion-MNIST from its IDX `.gz` files.

Every dataset comes back as float32 images [N,C,H,W] in [-1, 1] and integer labels [N]:

- ``digits``: sklearn's 1797 8x8 digits (values 0..16), mapped v -> v / 8 - 1 and
  padded with the background value -1 to 16x16 (4 pixels each side) so a UNet can downsample it twice.
  Split: a fixed permutation (seed 0) puts 80% in ``train`` and 20% in ``test``.
- ``fashion``: Fashion-MNIST 28x28 uint8, mapped v -> v / 127.5 - 1 and padded with -1 to 32x32
  (2 pixels each side); the official 60k/10k train/test split.
"""
from __future__ import annotations

import gzip
import os
import struct
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchmark.errors import ConfigError, MissingAssetError

DATASETS = ("digits", "fashion")
FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
DIGITS_SIZE = 16
DIGITS_TEST_FRACTION = 0.2


@dataclass
class ImageDataset:
    """images float32 [N,C,H,W] in [-1, 1]; labels long [N] (or None); `num_classes` labels 0..K-1;
    `unlabelled_because`: why images without labels have none, when the layout looks labelled (one class subfolder)."""

    images: torch.Tensor
    labels: torch.Tensor | None
    num_classes: int | None
    name: str
    unlabelled_because: str | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.images.shape[1:])  # type: ignore[return-value]

    def subset(self, n: int | None) -> "ImageDataset":
        """The first n items (all when n is None)."""
        if n is None:
            return self
        labels = None if self.labels is None else self.labels[:n]
        return ImageDataset(self.images[:n], labels, self.num_classes, self.name, self.unlabelled_because)


def load_dataset(name: str, split: str = "train", root: str | Path | None = None,
                 download: bool = False) -> ImageDataset:
    """Load `name` ("digits" or "fashion") for `split` ("train" or "test").

    `root` is looked in first for the Fashion-MNIST files, then /usr/share/datasets/fashion-mnist; with
    `download=True` missing files are fetched from the official location into `root` (or
    ~/.cache/uqbench/fashion-mnist).
    """
    if split not in ("train", "test"):
        raise ConfigError("split", split, "one of 'train', 'test'")
    if name == "digits":
        return _load_digits(split)
    if name == "fashion":
        return _load_fashion(split, root, download)
    raise ConfigError("dataset", name, f"one of {', '.join(DATASETS)}")


# ----------------------------------------------------------------------------- digits
def digits_to_unit_range(values: np.ndarray) -> np.ndarray:
    """sklearn digit intensities 0..16 -> [-1, 1]: v / 8 - 1."""
    return values.astype(np.float32) / 8.0 - 1.0


def digits_split_indices(n: int, split: str) -> np.ndarray:
    """Deterministic 80/20 split of range(n): a permutation with seed 0, first 20% is the test set."""
    perm = np.random.default_rng(0).permutation(n)
    n_test = int(round(DIGITS_TEST_FRACTION * n))
    return np.sort(perm[:n_test] if split == "test" else perm[n_test:])


def _load_digits(split: str) -> ImageDataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    idx = digits_split_indices(len(bunch.target), split)
    img = digits_to_unit_range(bunch.images[idx])  # [N,8,8]
    pad = (DIGITS_SIZE - 8) // 2
    img = np.pad(img, ((0, 0), (pad, pad), (pad, pad)), constant_values=-1.0)
    return ImageDataset(torch.from_numpy(img[:, None].copy()), torch.from_numpy(bunch.target[idx]).long(), 10, "digits")


# ----------------------------------------------------------------------------- fashion
def parse_idx(data: bytes) -> np.ndarray:
    """Decode an (uncompressed) IDX file: magic 0x0000 0x08 ndim, ndim big-endian uint32 sizes, uint8 data."""
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise MissingAssetError(f"not a uint8 IDX file (magic {data[:4].hex()}). Fix: re-download the file.")
    shape = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise MissingAssetError(f"IDX file truncated: {body.size} values for shape {shape}. Fix: re-download it.")
    return body.reshape(shape)


def fashion_search_dirs(root: str | Path | None) -> list[Path]:
    """Directories searched for the Fashion-MNIST files, in order."""
    dirs = [Path(root).expanduser()] if root is not None else []
    env = os.environ.get("UQBENCH_DATA_DIR")
    if env:
        dirs.append(Path(env).expanduser() / "fashion-mnist")
    dirs.append(FASHION_SYSTEM_DIR)
    return dirs


def find_fashion_dir(split: str, root: str | Path | None) -> Path | None:
    """The first search directory holding both files of `split`, or None."""
    for d in fashion_search_dirs(root):
        for cand in (d, d / "fashion-mnist"):
            if all((cand / f).is_file() for f in FASHION_FILES[split]):
                return cand
    return None


def missing_fashion_message(split: str, root: str | Path | None) -> str:
    looked = ", ".join(str(d) for d in fashion_search_dirs(root))
    files = ", ".join(FASHION_FILES[split])
    return (f"Fashion-MNIST {split} files ({files}) not found in: {looked}. Fix: install them with "
            "`sudo apt-get install dataset-fashion-mnist` (puts them in /usr/share/datasets/fashion-mnist), "
            "or pass --data-dir DIR pointing at a folder with the .gz files, "
            f"or pass --download to fetch them from {FASHION_URL}")


def _download_fashion(split: str, root: str | Path | None) -> Path:
    target = Path(root).expanduser() if root is not None else Path.home() / ".cache" / "uqbench" / "fashion-mnist"
    target.mkdir(parents=True, exist_ok=True)
    for fname in FASHION_FILES[split]:
        if not (target / fname).is_file():
            tmp = target / (fname + ".part")
            urllib.request.urlretrieve(FASHION_URL + fname, tmp)  # noqa: S310 - fixed official https/http URL
            tmp.rename(target / fname)
    return target


def fashion_to_unit_range(pixels: np.ndarray) -> np.ndarray:
    """uint8 0..255 -> [-1, 1]: v / 127.5 - 1, padded with -1 from 28x28 to 32x32."""
    img = pixels.astype(np.float32) / 127.5 - 1.0
    return np.pad(img, ((0, 0), (2, 2), (2, 2)), constant_values=-1.0)


def _load_fashion(split: str, root: str | Path | None, download: bool) -> ImageDataset:
    folder = find_fashion_dir(split, root)
    if folder is None:
        if not download:
            raise MissingAssetError(missing_fashion_message(split, root))
        folder = _download_fashion(split, root)
    img_file, lbl_file = FASHION_FILES[split]
    images = parse_idx(gzip.decompress((folder / img_file).read_bytes()))
    labels = parse_idx(gzip.decompress((folder / lbl_file).read_bytes()))
    if images.shape[0] != labels.shape[0]:
        raise MissingAssetError(f"{folder}: {images.shape[0]} images but {labels.shape[0]} labels. Fix: re-download.")
    img = fashion_to_unit_range(images)
    return ImageDataset(torch.from_numpy(img[:, None].copy()), torch.from_numpy(labels.astype(np.int64)), 10, "fashion")


# ----------------------------------------------------------------------------- your own data ([data] section)
