"""The issue-15 protocols on a latent model (tiny random DiT + VAE, 4x8x8 latents <-> 1x16x16 images): variants,
masks and the replacement live in latent space; images for features and plots are decoded."""
from __future__ import annotations

import pytest
import torch

from benchmark.models import load_model
from benchmark.protocols.application_plots import augmentation_grid
from benchmark.protocols.application_utils import to_pixels
from benchmark.protocols.augmentation import REDRAW, augment
from benchmark.protocols.rectification import map_to_state_shape, percentile_mask
from benchmark.protocols.resampling import TrajectoryRecorder, region_resample
from benchmark.sampling import initial_labels, initial_noise, sample
from tests.latent_builders import save_dit_pipeline

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def dit_model(tmp_path_factory):
    return load_model(str(save_dit_pipeline(tmp_path_factory.mktemp("dit") / "pipe")))


def test_augmentation_variants_are_latents_and_the_grid_is_decoded(dit_model, tmp_path):
    steps, cut, variants, n = 4, 2, 2, 2
    result = augment(dit_model, torch.arange(n), sources=lambda: [], cut_index=cut, variants=variants,
                     sampler="ddim", steps=steps, seed=0, batch_size=4)
    assert result.variants[REDRAW].shape == (n, variants, *dit_model.sample_shape)  # 4x8x8 latents
    assert result.nfe[REDRAW] == variants * (steps - cut)
    images = to_pixels(dit_model, result.variants[REDRAW].flatten(0, 1))
    assert images.shape == (n * variants, *dit_model.pixel_shape)
    torch.testing.assert_close(images, dit_model.decode(result.variants[REDRAW].flatten(0, 1)))
    path = augmentation_grid(to_pixels(dit_model, result.base_x0), torch.rand(n, *dit_model.sample_shape),
                             {REDRAW: images.view(n, variants, *dit_model.pixel_shape)}, tmp_path / "grid.png")
    assert path.stat().st_size > 0


def test_region_resampling_in_latent_space_keeps_the_unmasked_latents(dit_model):
    steps, start, n = 4, 2, 2
    idx = torch.arange(n)
    y = initial_labels(0, idx, dit_model.num_classes)
    original = TrajectoryRecorder(start, name="_original")
    base = sample(dit_model, initial_noise(0, idx, dit_model.sample_shape), steps=steps, y=y, seed=0, indices=idx,
                  estimators=[original])
    pixel_map = torch.rand(n, *dit_model.pixel_shape, generator=torch.Generator().manual_seed(0))
    latent_map = map_to_state_shape(pixel_map, tuple(dit_model.sample_shape))
    expected = torch.nn.functional.avg_pool2d(pixel_map, 2).expand(-1, dit_model.sample_shape[0], -1, -1)
    torch.testing.assert_close(latent_map, expected)  # a 2x2 block mean on every latent channel
    mask = percentile_mask(latent_map, 75.0)
    resampled = TrajectoryRecorder(start, name="_resampled")
    out = region_resample(dit_model, original.states, original.eps, mask, base.x0, torch.randn_like(base.x0),
                          start_index=start, sampler="ddim", steps=steps, seed=0, indices=idx, y=y,
                          estimators=[resampled])
    for i in range(start, steps):
        assert (resampled.states[i] - original.states[i])[~mask].abs().max() <= 1e-6
    assert (out.x0 - base.x0)[~mask].abs().max() <= 1e-6
    assert (out.x0 - base.x0)[mask].abs().max() > 1e-3
