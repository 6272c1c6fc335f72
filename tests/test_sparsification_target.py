"""The sparsification target is the expected error given the image and t (several noise draws per image), checked
against its closed form on a one-component Gaussian model, where DDIM with the exact score is a linear map."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import torch

from benchmark.models.gmm import GaussianMixtureModel
from benchmark.protocols import sparsification
from benchmark.sampling import build_grid
from metrics.structure_control import expected_error

MEAN, STD = 0.3, 0.5


def _gain(model, sampler: str, steps: int, start_index: int) -> float:
    """x0_hat - m = G (x_t - a_t m) for DDIM on N(m, std^2 I) with the exact eps: each step from ab to ab' maps
    x - a m to (a a' std^2 + s s') / (a^2 std^2 + s^2) (x - a m) (x0_hat of the Gaussian is linear in x_t)."""
    gain = 1.0
    for step in build_grid(sampler, model.alphas_cumprod, steps)[start_index:]:
        a, a_prev = math.sqrt(step.ab_t), math.sqrt(step.ab_prev)
        s, s_prev = math.sqrt(1 - step.ab_t), math.sqrt(1 - step.ab_prev)
        gain *= (a * a_prev * STD**2 + s * s_prev) / (step.ab_t * STD**2 + 1 - step.ab_t)
    return gain


def test_the_target_is_the_expected_error_of_the_closed_form(tmp_path):
    model = GaussianMixtureModel(torch.full((1, 1, 4, 4), MEAN, dtype=torch.float64), STD)
    count, draws = 3, 160
    images = MEAN + STD * torch.randn(count, 1, 4, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    preset = SimpleNamespace(load_data=lambda split, n: SimpleNamespace(images=images[:n], labels=None))
    cfg = SimpleNamespace(sampler="ddim", steps=20, seed=0, batch_size=40)
    params = {"num_images": count, "noise_fraction": 0.5, "noise_draws": draws, "fractions": 10}
    inputs = SimpleNamespace(config=cfg, model=model, run_dir=tmp_path, preset=preset, make_estimators=lambda: [])
    x0, x_hat, _, t = sparsification.denoise_real(inputs, params)
    assert x_hat.shape == (count * draws, 1, 4, 4)  # batches of 40 cut across the draws of the 3 images
    target = expected_error(x0.double(), sparsification.per_draw(x_hat.double(), count))

    index, _ = sparsification.start_step(model, "ddim", 20, 0.5)
    ab = float(model.alphas_cumprod[t])
    gain = _gain(model, "ddim", 20, index)
    closed = ((gain * math.sqrt(ab) - 1) * (images - MEAN)) ** 2 + gain**2 * (1 - ab)  # E[(x0_hat - x0)^2]
    squared = (sparsification.per_draw(x_hat.double(), count) - images.unsqueeze(0)) ** 2  # [D, n, ...]
    se = float(squared.std()) / math.sqrt(squared.numel())
    assert abs(float(target.pow(2).mean()) - float(closed.mean())) < 4 * se
    # per image as well (each image's expected error differs through its distance from the mean)
    per_image = target.pow(2).flatten(1).mean(1).numpy()
    per_image_se = squared.flatten(2).std(dim=(0, 2)).numpy() / math.sqrt(draws * 16)
    assert np.all(np.abs(per_image - closed.flatten(1).mean(1).numpy()) < 4 * per_image_se + 1e-12)


def test_one_draw_keeps_the_single_draw_indices(tmp_path):
    """D = 1 is the protocol as it was (draw 0 of image i is draw index i): shards of older runs stay valid."""
    assert sparsification.batches(SimpleNamespace(batch_size=4), {"num_images": 10}) == [(0, 4), (4, 8), (8, 10)]
    assert sparsification.batches(SimpleNamespace(batch_size=4), {"num_images": 3, "noise_draws": 2}) == [(0, 4),
                                                                                                          (4, 6)]
