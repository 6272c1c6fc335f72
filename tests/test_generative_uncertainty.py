"""`generative_uncertainty` against M + 1 separate `sample` calls with the last-layer weights held fixed.

Brute force: for each of the estimator's M weight draws, a copy of the model whose last layer carries that
draw generates the batch from the same x_T in its own full `sample` run; the MAP model's run gives the
sampler's image. The pixel map is the per-pixel population variance of the M + 1 images and the score the
entropy 1/2 sum_d log(mean(f^2) - mean(f)^2 + sigma^2) + D/2 (log 2 pi + 1), written out here in numpy in the
public code's form (metodj/DIFF-UQ semantic_likelihood.py) on pixel features.
"""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

import estimators
from benchmark.errors import CapabilityError, ConfigError
from benchmark.models import DiffusersUNet
from benchmark.sampling import initial_labels, initial_noise, sample
from estimators.generative_uncertainty import draw_last_layers
from estimators.laplace import LastLayerLaplace
from tests.helpers import tiny_unet


def fitted(model) -> LastLayerLaplace:
    """A posterior fitted on 16 random images in [-1, 1] (the prior dominates: visible weight spread)."""
    images = torch.rand((16, *model.sample_shape), generator=torch.Generator().manual_seed(0)) * 2 - 1
    labels = None if model.num_classes is None else torch.arange(16) % model.num_classes
    batches = images.split(8) if labels is None else list(zip(images.split(8), labels.split(8)))
    return LastLayerLaplace(model).fit(batches, progress=False)


def entropy_written_out(images: np.ndarray, sigma2: float) -> np.ndarray:
    """images [M+1, B, C, H, W] -> entropy [B] of the pixel features, as the public code writes it."""
    feats = images.reshape(images.shape[0], images.shape[1], -1).transpose(1, 0, 2)  # [B, M+1, D]
    var = np.clip((feats**2).mean(1) - feats.mean(1) ** 2, 0.0, None)
    d = feats.shape[-1]
    return 0.5 * np.log(var + sigma2).sum(-1) + 0.5 * d * (np.log(2 * np.pi) + 1)


@pytest.mark.parametrize("sampler,steps,conditional", [("ddim", 6, False), ("ddpm", 5, True),
                                                       ("dpm2", 4, False)])
def test_matches_separate_runs_with_fixed_weights(sampler, steps, conditional):
    model = DiffusersUNet(tiny_unet(num_classes=3 if conditional else None, dropout=0.0)).to(torch.float64)
    la = fitted(model)
    m, seed = 3, 7
    idx = torch.arange(3)
    x_T = initial_noise(seed, idx, model.sample_shape).to(torch.float64)
    y = initial_labels(seed, idx, 3) if conditional else None
    est = estimators.create("generative_uncertainty", laplace=la, m=m, features="pixels")
    out = sample(model, x_T, sampler=sampler, steps=steps, estimators=[est], y=y, seed=seed, indices=idx)
    res = out.uncertainty["generative_uncertainty"]

    images = [sample(model, x_T, sampler=sampler, steps=steps, y=y, seed=seed, indices=idx).x0]
    for draw in draw_last_layers(la, m, seed):  # one full run per fixed weight draw
        member = copy.deepcopy(model)
        with torch.no_grad():
            for name, value in draw.items():
                getattr(member.unet.conv_out, name).copy_(value)
        images.append(sample(member, x_T, sampler=sampler, steps=steps, y=y, seed=seed, indices=idx).x0)
    stack = torch.stack(images)
    torch.testing.assert_close(out.x0, stack[0])  # the sampler's own sample is untouched
    assert float(stack[1:].sub(stack[0]).abs().max()) > 1e-4  # the draws do change the images
    torch.testing.assert_close(res.pixel, stack.var(0, unbiased=False), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(res.score.numpy(), entropy_written_out(stack.numpy(), 1e-3), rtol=1e-6)
    per_sample_nfe = steps * (2 if sampler == "dpm2" else 1)
    assert out.nfe == per_sample_nfe and res.nfe == m * per_sample_nfe


def test_draws_are_shared_by_all_samples_and_batches():
    model = DiffusersUNet(tiny_unet(dropout=0.0))
    la = fitted(model)
    x_T = initial_noise(0, range(4), model.sample_shape)
    whole = sample(model, x_T, steps=4, estimators=[estimators.create("generative_uncertainty", laplace=la,
                                                                       features="pixels")])
    halves = [sample(model, x_T[i:i + 2], steps=4, indices=torch.arange(i, i + 2),
                     estimators=[estimators.create("generative_uncertainty", laplace=la, features="pixels")])
              for i in (0, 2)]
    torch.testing.assert_close(whole.uncertainty["generative_uncertainty"].score,
                               torch.cat([h.uncertainty["generative_uncertainty"].score for h in halves]))


def test_entropy_grows_with_the_posterior_spread():
    model = DiffusersUNet(tiny_unet(dropout=0.0))
    narrow, wide = fitted(model), fitted(model)
    narrow.prior_precision, wide.prior_precision = 1e4, 1.0
    x_T = initial_noise(0, range(3), model.sample_shape)
    scores = [sample(model, x_T, steps=4, estimators=[estimators.create(
        "generative_uncertainty", laplace=la, features="pixels")]).uncertainty["generative_uncertainty"].score
        for la in (narrow, wide)]
    assert bool((scores[1] > scores[0]).all())
    floor = 0.5 * 64 * (math.log(1e-3) + math.log(2 * math.pi) + 1)  # all members equal: the sigma^2 floor
    assert bool((scores[0] >= floor - 1e-6).all())


def test_bad_input_and_capabilities(gmm):
    for field, value in (("m", 0), ("features", "clip"), ("sigma2", 0.0), ("extractor", 3)):
        with pytest.raises(ConfigError, match=field):
            estimators.create("generative_uncertainty", **{field: value})
    with pytest.raises(CapabilityError, match="last layer"):
        sample(gmm, initial_noise(0, range(1), gmm.sample_shape), steps=2,
               estimators=[estimators.create("generative_uncertainty", features="pixels")])
    model = DiffusersUNet(tiny_unet(dropout=0.0))
    with pytest.raises(ConfigError, match="classifier"):  # the domain classifier must be handed over
        sample(model, initial_noise(0, range(1), model.sample_shape), steps=2,
               estimators=[estimators.create("generative_uncertainty", laplace=fitted(model))])
    cls = estimators.get_class("generative_uncertainty")
    assert cls.kind == "epistemic" and cls.reference_row is False


def test_a_latent_model_is_embedded_in_decoded_image_space():
    """A model with `decode` (latent models): the extractor sees decoded images, the pixel map stays latent."""

    class Decoding(DiffusersUNet):
        def decode(self, z):
            return torch.cat([z, -z], dim=1)  # a stand-in decoder: [N,1,8,8] -> [N,2,8,8]

    model = Decoding(tiny_unet(dropout=0.0))
    seen = []

    def extractor(images):
        seen.append(tuple(images.shape))
        return images.flatten(1).numpy()

    x_T = initial_noise(0, range(2), model.sample_shape)
    est = estimators.create("generative_uncertainty", laplace=fitted(model), m=2, extractor=extractor)
    res = sample(model, x_T, steps=3, estimators=[est]).uncertainty["generative_uncertainty"]
    assert seen == [(6, 2, 8, 8)] and tuple(res.pixel.shape) == (2, 1, 8, 8)
