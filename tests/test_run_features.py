"""A run's features in shard-sized chunks (benchmark.execution.features): the same bits as one batch, one cache
file per chunk, read back by any process.

Chunking is only sound because both extractors give an image the same features whatever else is in its batch;
that is checked here against one call on the whole set (the Inception network and the fashion preset's
domain classifier, both offline).
"""
from __future__ import annotations

import numpy as np
import torch

from benchmark.config import parse_config
from benchmark.execution.features import feature_function
from metrics import build_feature_extractor


def _images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# Bit equality is promised only between computations of identical shapes (the same chunks, whatever the process
# count); across batch splits the CPU's conv kernels may round differently (AMD EPYC: the 7th digit), so those
# comparisons carry a tolerance of float32 rounding through the network.
SPLIT_RTOL, SPLIT_ATOL = 1e-4, 1e-5


def test_inception_features_agree_across_batch_splits_and_repeat_bit_for_bit():
    torch.set_num_threads(1)
    extractor = build_feature_extractor("inception")
    images = _images(10)
    whole = extractor(images)
    chunked = np.concatenate([extractor(images[:3]), extractor(images[3:7]), extractor(images[7:])])
    np.testing.assert_allclose(chunked, whole, rtol=SPLIT_RTOL, atol=SPLIT_ATOL)
    assert np.array_equal(extractor(images), whole)  # the same shapes: the same bits


def test_classifier_features_agree_across_batch_splits_and_repeat_bit_for_bit():
    from benchmark.runner.setup import load_preset

    extractor = build_feature_extractor("classifier", classifier=load_preset("fashion").load_classifier())
    images = _images(300, seed=1)
    whole = extractor(images)
    chunked = np.concatenate([extractor(images[i:i + 70]) for i in range(0, 300, 70)])
    np.testing.assert_allclose(chunked, whole, rtol=SPLIT_RTOL, atol=SPLIT_ATOL)
    assert np.array_equal(extractor(images), whole)  # the same shapes: the same bits


class _CountingPreset:
    """A preset whose classifier is the fashion one, counting the images it featurises."""

    def __init__(self):
        from benchmark.runner.setup import load_preset

        self.classifier = load_preset("fashion").load_classifier()
        self.rows = 0
        features = self.classifier.features

        def counting(x):
            self.rows += x.shape[0]
            return features(x)

        self.classifier.features = counting

    def load_classifier(self):
        return self.classifier


def test_a_run_caches_one_file_per_chunk_and_reads_them_back(tmp_path):
    config = parse_config({"run": {"preset": "fashion", "num_samples": 10, "keep": 8, "batch_size": 4},
                           "protocols": {"cost": {}}})
    preset = _CountingPreset()
    images = _images(10, seed=2)
    direct = build_feature_extractor("classifier", classifier=preset.classifier)(images).astype(np.float64)
    preset.rows = 0

    # bit equality is promised only between computations of identical shapes: the chunks of the run's shards
    # (4, 4, 2) against the same chunks computed directly; against one batch of 10 the CPU's conv kernels may
    # differ in the last bits (seen on AMD EPYC at the 7th digit), so that comparison has a tolerance
    extractor = build_feature_extractor("classifier", classifier=preset.classifier)
    chunked = np.concatenate([extractor(images[a:b]) for a, b in ((0, 4), (4, 8), (8, 10))]).astype(np.float64)
    preset.rows = 0
    extract = feature_function(config, preset, tmp_path)
    first = extract("classifier", images)
    assert np.array_equal(first, chunked) and first.dtype == np.float64
    np.testing.assert_allclose(first, direct, rtol=SPLIT_RTOL, atol=SPLIT_ATOL)
    assert len(list((tmp_path / "features").glob("classifier-*.npy"))) == 3  # rows 0-3, 4-7, 8-9
    assert preset.rows == 10

    again = feature_function(config, preset, tmp_path)  # e.g. another rank: everything from the cache
    assert np.array_equal(again("classifier", images), chunked)
    assert np.array_equal(again("classifier", images[4:8]), chunked[4:8])  # one shard's chunk alone
    assert preset.rows == 10
    assert np.array_equal(again("classifier", images, whole=True), direct)  # a real set: one file of its own
    assert len(list((tmp_path / "features").glob("classifier-*.npy"))) == 4 and preset.rows == 20
