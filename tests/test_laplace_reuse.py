"""A saved last-layer Laplace posterior is reused only when it matches (issue 11 item 8), and the gmm preset's
unbounded mixture draws can be fitted on (item 2).

A file is reused when its fit images, prior precision, Hessian kind and model-weights sha256 all equal the
run's; any difference is reported with the field that differs and leads to a refit. The committed posteriors
of the digits and fashion presets must match the settings the smoke and demo configs ask for (else every run
would silently refit them).
"""
from __future__ import annotations

import pytest
import torch

from benchmark import presets
from benchmark.errors import ConfigError
from benchmark.models import DiffusersUNet
from benchmark.runner.resources import shared_posterior as ensure_laplace
from estimators.laplace import LastLayerLaplace, weights_digest
from estimators.laplace_reuse import LaplaceSettings, choose_posterior, mismatch
from tests.helpers import tiny_unet
from tests.toy_preset import ToyPreset

pytestmark = pytest.mark.usefixtures("single_thread")


def fitted(model, n: int = 8, **kwargs) -> LastLayerLaplace:
    images = ToyPreset().load_data("train", n=n).images
    return LastLayerLaplace(model, **kwargs).fit([images], num_images=n, progress=False)


def test_a_saved_posterior_is_reused_only_when_every_setting_matches(tmp_path):
    model = DiffusersUNet(tiny_unet())
    path = fitted(model).save(tmp_path / "la.pt")
    digest = weights_digest(model)
    assert mismatch(path, LaplaceSettings(8), digest) is None
    assert "fit_images" in mismatch(path, LaplaceSettings(16), digest)
    assert "prior_precision" in mismatch(path, LaplaceSettings(8, prior_precision=2.0), digest)
    assert "hessian" in mismatch(path, LaplaceSettings(8, hessian="ef"), digest)
    other = DiffusersUNet(tiny_unet(seed=1))  # same architecture, other weights
    assert "weights" in mismatch(path, LaplaceSettings(8), weights_digest(other))
    la, choice = choose_posterior(model, LaplaceSettings(8), [None, path])
    assert la is not None and choice.source == "loaded" and choice.path == path
    la, choice = choose_posterior(other, LaplaceSettings(8), [path])
    assert la is None and choice.source == "fitted" and "weights" in choice.rejected[str(path)]
    assert "prediction_type: saved 'epsilon', run asks 'v_prediction'" in mismatch(path, LaplaceSettings(8), digest,
                                                                                   "v_prediction")


def test_the_runner_refits_a_mismatching_cache_and_records_it(tmp_path):
    model = DiffusersUNet(tiny_unet())
    stale = fitted(model, n=4).save(tmp_path / "cache.pt")
    la, choice = ensure_laplace(model, ToyPreset(), LaplaceSettings(8), seed=0, progress=False, cache=stale)
    assert choice.source == "fitted" and choice.path is None and "fit_images" in choice.rejected[str(stale)]
    assert la.num_images == 8
    fresh = fitted(model, n=8)  # the same fit, done here: the runner's refit is that fit, not the stale file
    torch.testing.assert_close(la.data_term["weight"], fresh.data_term["weight"])
    la.save(tmp_path / "cache.pt")
    _, again = ensure_laplace(model, ToyPreset(), LaplaceSettings(8), seed=0, progress=False, cache=stale)
    assert again.source == "loaded" and again.record()["path"] == str(stale)
    assert again.record()["weights_sha256"] == weights_digest(model)


def test_fit_accepts_unbounded_data_only_when_asked():
    model = DiffusersUNet(tiny_unet())
    images = 1.8 * ToyPreset().load_data("train", n=4).images  # mixture draws leave [-1, 1]
    with pytest.raises(ConfigError, match="loader images"):
        LastLayerLaplace(model).fit([images], num_images=4, progress=False)
    la = LastLayerLaplace(model).fit([images], num_images=4, progress=False, value_range=None)
    assert la.num_images == 4


def test_bad_fit_settings_name_the_field():
    with pytest.raises(ConfigError, match="hessian"):
        LaplaceSettings(8, hessian="full")
    with pytest.raises(ConfigError, match="fit_images"):
        LaplaceSettings(0)


@pytest.mark.parametrize("preset, fit_images", [("digits", 256), ("fashion", 1000)])
def test_committed_posteriors_match_their_configs(preset, fit_images):
    model = presets.get(preset).load_model()
    path = presets.get(preset).model_dir / "laplace_last_layer.pt"
    assert mismatch(path, LaplaceSettings(fit_images), weights_digest(model)) is None
