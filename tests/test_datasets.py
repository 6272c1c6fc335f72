"""Dataset loaders: shapes, value mapping against the raw sources, splits, and the missing-dataset error."""
from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from benchmark.data import datasets
from benchmark.data.datasets import load_dataset
from benchmark.errors import ConfigError, MissingAssetError


def _write_idx(path, array: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


@pytest.fixture()
def fake_fashion(tmp_path):
    """A 5-image Fashion-MNIST lookalike in IDX .gz format, with known pixels and labels."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(5, 28, 28))
    pixels[0, 0, 0], pixels[0, 0, 1] = 0, 255
    labels = np.array([3, 1, 4, 1, 5])
    for split, (img, lbl) in datasets.FASHION_FILES.items():
        _write_idx(tmp_path / img, pixels)
        _write_idx(tmp_path / lbl, labels)
    return tmp_path, pixels, labels


def test_digits_shapes_range_and_mapping():
    from sklearn.datasets import load_digits

    raw = load_digits()
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert train.images.shape[1:] == (1, 16, 16) and train.images.dtype == torch.float32
    assert len(train) + len(test) == 1797 and len(test) == round(0.2 * 1797)
    assert train.labels.dtype == torch.long and train.num_classes == 10
    # the split is a partition, reproducible, and each image is the raw 8x8 digit v/8 - 1 padded with -1
    idx_train = datasets.digits_split_indices(1797, "train")
    idx_test = datasets.digits_split_indices(1797, "test")
    assert set(idx_train).isdisjoint(idx_test) and len(set(idx_train) | set(idx_test)) == 1797
    k = 7
    expected = raw.images[idx_test[k]] / 8.0 - 1.0
    assert torch.allclose(test.images[k, 0, 4:12, 4:12].double(), torch.from_numpy(expected), atol=1e-6)
    assert (test.images[k, 0, :4] == -1).all() and (test.images[k, 0, :, 12:] == -1).all()
    assert int(test.labels[k]) == int(raw.target[idx_test[k]])
    assert float(train.images.min()) == -1.0 and float(train.images.max()) == 1.0


def test_fashion_from_root_pads_and_scales(fake_fashion):
    root, pixels, labels = fake_fashion
    data = load_dataset("fashion", "test", root=root)
    assert data.images.shape == (5, 1, 32, 32) and data.num_classes == 10
    assert data.labels.tolist() == labels.tolist()
    inner = data.images[:, 0, 2:30, 2:30].double()
    assert torch.allclose(inner, torch.from_numpy(pixels / 127.5 - 1.0), atol=1e-6)
    assert float(data.images[0, 0, 2, 2]) == -1.0 and float(data.images[0, 0, 2, 3]) == 1.0
    border = torch.cat([data.images[:, 0, :2].flatten(), data.images[:, 0, -2:].flatten(),
                        data.images[:, 0, :, :2].flatten(), data.images[:, 0, :, -2:].flatten()])
    assert (border == -1).all()


def test_missing_fashion_error_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "FASHION_SYSTEM_DIR", tmp_path / "nowhere")
    monkeypatch.delenv("UQBENCH_DATA_DIR", raising=False)
    with pytest.raises(MissingAssetError) as err:
        load_dataset("fashion", "train", root=tmp_path / "empty")
    text = str(err.value)
    assert "apt-get install dataset-fashion-mnist" in text and "--data-dir" in text and "--download" in text
    assert "train-images-idx3-ubyte.gz" in text and str(tmp_path / "empty") in text


def test_bad_names_raise_config_error():
    with pytest.raises(ConfigError, match="digits, fashion"):
        load_dataset("cifar", "train")
    with pytest.raises(ConfigError, match="split"):
        load_dataset("digits", "val")


def test_idx_parser_rejects_truncated_files():
    header = struct.pack(">HBB", 0, 0x08, 2) + struct.pack(">II", 3, 3)
    assert datasets.parse_idx(header + bytes(range(9))).tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    with pytest.raises(MissingAssetError, match="truncated"):
        datasets.parse_idx(header + bytes(5))


@pytest.mark.skipif(datasets.find_fashion_dir("test", None) is None, reason="Fashion-MNIST not installed")
def test_installed_fashion_test_split():
    data = load_dataset("fashion", "test")
    assert data.images.shape == (10000, 1, 32, 32)
    assert torch.bincount(data.labels).tolist() == [1000] * 10  # the official test split is balanced
    assert float(data.images.min()) == -1.0 and float(data.images.max()) == 1.0
