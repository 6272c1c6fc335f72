"""`realism_oracle` (objective = "realism") against a brute-force realism score, and the runner's post-generation
scoring hook (objective = "fid", the default, is checked in tests/test_realism_oracle_fid_ceiling.py).

Brute force (Kynkäänniemi et al. 2019, Sec. 5), written with Python loops over numpy rows: r_j = distance of
real j to its k-th nearest other real sample; keep the real samples with r_j <= the median radius;
R(g) = max over kept j of r_j / ||g - real_j||.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import estimators
from benchmark.errors import ConfigError
from benchmark.execution.feature_scores import apply_feature_scores
from benchmark.execution.generation import Generation
from benchmark.sampling import initial_noise, sample
from estimators.realism_oracle import realism_scores


def brute_force_realism(real: np.ndarray, fake: np.ndarray, k: int, percentile: float) -> np.ndarray:
    radii = []
    for j in range(len(real)):
        dists = sorted(float(np.sqrt(((real[j] - real[i]) ** 2).sum())) for i in range(len(real)) if i != j)
        radii.append(dists[k - 1])
    radii = np.array(radii)
    threshold = np.percentile(radii, percentile)
    scores = []
    for g in fake:
        scores.append(max(radii[j] / np.sqrt(((g - real[j]) ** 2).sum())
                          for j in range(len(real)) if radii[j] <= threshold))
    return np.array(scores)


@pytest.mark.parametrize("k,percentile", [(3, 50.0), (2, 100.0)])
def test_realism_equals_the_brute_force_loop(k, percentile):
    rng = np.random.default_rng(0)
    real = rng.normal(size=(40, 5))
    fake = np.concatenate([rng.normal(size=(15, 5)), rng.normal(loc=4.0, size=(5, 5))])
    expected = brute_force_realism(real, fake, k, percentile)
    got = realism_scores(torch.as_tensor(real), torch.as_tensor(fake), k, percentile, chunk_size=7).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    oracle = estimators.create("realism_oracle", objective="realism", k=k, prune_percentile=percentile)
    np.testing.assert_allclose(oracle.score_features(fake, real), -expected, rtol=1e-10)
    assert (expected[15:] < 1).all()  # far from the data: outside every real hypersphere


def test_hook_replaces_the_placeholder_scores_only_of_feature_scorers(gmm):
    x_T = initial_noise(0, range(6), gmm.sample_shape)
    made = [estimators.create("realism_oracle", objective="realism"), estimators.create("x0_trajectory")]
    out = sample(gmm, x_T, steps=5, estimators=made)
    assert out.uncertainty["realism_oracle"].nfe == 0
    assert float(out.uncertainty["realism_oracle"].score.abs().sum()) == 0.0  # placeholder until scored
    gen = Generation(indices=torch.arange(6), x0=out.x0, y=None,
                     scores={k: v.score for k, v in out.uncertainty.items()},
                     pixels={k: v.pixel for k, v in out.uncertainty.items()}, nfe={}, seconds={})
    before = gen.scores["x0_trajectory"].clone()
    rng = np.random.default_rng(1)
    real = rng.normal(size=(30, 4))
    fake = rng.normal(size=(6, 4))
    calls = []

    def extract(space, images):  # only called for what the run did not compute: here the real features
        calls.append((space, tuple(images.shape)))
        return real

    names = apply_feature_scores(gen, made, {"classifier": fake}, {}, extract, lambda: torch.zeros(30, 1, 4, 4))
    assert names == ["realism_oracle"] and calls == [("classifier", (30, 1, 4, 4))]
    np.testing.assert_allclose(gen.scores["realism_oracle"].numpy(), -brute_force_realism(real, fake, 3, 50.0),
                               rtol=1e-5)
    torch.testing.assert_close(gen.scores["x0_trajectory"], before)


def test_kind_reference_row_and_bad_input():
    cls = estimators.get_class("realism_oracle")
    assert cls.kind == "oracle" and cls.reference_row is True and cls.has_pixel_map is False
    for field, value in (("features", "pixels"), ("k", 0), ("prune_percentile", 0.0), ("prune_percentile", 101)):
        with pytest.raises(ConfigError, match=field):
            estimators.create("realism_oracle", **{field: value})
    with pytest.raises(ConfigError, match="k"):
        estimators.create("realism_oracle", objective="realism", k=3).score_features(np.zeros((2, 2)), np.zeros((3, 2)))


def test_a_preset_without_classifier_is_refused_before_any_work(tmp_path):
    from benchmark.config import parse_config
    from benchmark.runner.resources import estimator_factory

    class NoClassifier:
        def load_classifier(self):
            return None

    config = parse_config({"run": {"preset": "digits"}, "estimators": {"realism_oracle": {}},
                           "protocols": {"cost": {}}})
    with pytest.raises(ConfigError, match="estimators.realism_oracle.features"):
        estimator_factory(config, model=None, preset=NoClassifier())
