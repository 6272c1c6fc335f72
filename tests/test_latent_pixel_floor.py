"""Issue 24: on a latent model the `random` floor is a floor in pixel space (benchmark.models.pixel_maps).

Under decoder-MC a random *latent* map pushed through the decoder becomes Var_k[D(z0 + sqrt(U) n_k)], which is
large where the decoder is steep (outlines): the decoder's map, not a random one. The floor's pixel map must be
random in pixel space: |z|, z ~ N(0, I) [C,H,W] per (run seed, stream, sample index), drawn here by hand with
torch.Generator seeded as benchmark.seeding documents, and the same whatever the decoder.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from benchmark.models import load_model
from benchmark.models.pixel_maps import FLOOR_STREAM, pixel_space_record, pixel_view
from benchmark.seeding import derive_seed
from metrics.sparsification import sparsification
from tests.latent_builders import save_dit_pipeline, tiny_vae

SEED, DRAWS = 4, 3


@pytest.fixture(scope="module")
def two_decoders(tmp_path_factory):
    """The same tiny DiT latent model with two different (random-init) decoders, decoder-MC pixel maps."""
    model = load_model(str(save_dit_pipeline(tmp_path_factory.mktemp("dit") / "pipe")))
    model.pixel_map_strategy, model.decoder_mc_samples = "decoder_mc", DRAWS
    other = copy.deepcopy(model)
    other.vae = tiny_vae(seed=11)
    return model, other


def by_hand(indices: list[int], shape: tuple[int, ...]) -> torch.Tensor:
    """|N(0, I)| per sample, each from its own generator seeded by (seed, stream, index)."""
    return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(
        derive_seed(SEED, FLOOR_STREAM, i))).abs() for i in indices])


def shard(latent_maps: dict[str, torch.Tensor], z0: torch.Tensor, indices: torch.Tensor) -> dict:
    return {"x0": z0.clone(), "pixels": {k: v.clone() for k, v in latent_maps.items()}, "indices": indices,
            "extras": {}, "seconds": {}}


def test_the_floor_map_is_iid_in_pixel_space_and_the_same_for_two_decoders(two_decoders):
    model, other = two_decoders
    gen = torch.Generator().manual_seed(0)
    z0 = torch.randn(3, *model.sample_shape, generator=gen)
    maps = {"random": torch.rand(3, *model.sample_shape, generator=gen),
            "sensitivity": torch.rand(3, *model.sample_shape, generator=gen)}
    indices = torch.tensor([5, 9, 2])
    records = []
    for m in (model, other):
        record = shard(maps, z0, indices)
        with torch.no_grad():
            pixel_space_record(m, record, seed=SEED)
        records.append(record)
    expected = by_hand([5, 9, 2], model.pixel_shape)
    for record in records:
        assert record["pixels"]["random"].shape == (3, *model.pixel_shape)
        torch.testing.assert_close(record["pixels"]["random"], expected, rtol=0, atol=0)
        torch.testing.assert_close(record["extras"]["latent_map.random"], maps["random"])  # the latent map is kept
        assert float(record["extras"]["decoder_calls"][0]) == 1 + DRAWS  # the image + K for sensitivity only
    # the decoders differ: the images and every decoded map do, the floor does not
    assert (records[0]["x0"] - records[1]["x0"]).abs().max() > 1e-3
    assert (records[0]["pixels"]["sensitivity"] - records[1]["pixels"]["sensitivity"]).abs().max() > 1e-6
    # a sample gets the same floor map in any batch (pixel_view, as the sparsification protocol calls it)
    _, alone = pixel_view(model, z0[1:2], {"random": maps["random"][1:2]}, seed=SEED, indices=indices[1:2])
    torch.testing.assert_close(alone["random"], expected[1:2], rtol=0, atol=0)


def test_the_floor_has_no_aurg_where_the_decoded_random_map_has_some(two_decoders):
    """A planted error that is the decoder's own steepness (the decoder-MC variance of the floor's random latent
    map, plus noise): the decoded random map ranks it (AURG > 0), the pixel-space floor does not (AURG within
    3 standard errors of 0 over 24 images)."""
    model, _ = two_decoders
    n = 24
    gen = torch.Generator().manual_seed(1)
    z0 = torch.randn(n, *model.sample_shape, generator=gen)
    latent_random = torch.randn(n, *model.sample_shape, generator=gen).abs()
    indices = torch.arange(100, 100 + n)
    with torch.no_grad():
        _, decoded = pixel_view(model, z0, {"decoded": latent_random}, seed=SEED, indices=indices, floors=())
        _, floor = pixel_view(model, z0, {"random": latent_random}, seed=SEED, indices=indices)
    steep = decoded["decoded"] / decoded["decoded"].flatten(1).mean(1).view(-1, 1, 1, 1)
    error = steep + 0.1 * torch.rand(steep.shape, generator=gen)
    aurg = {name: np.asarray(sparsification(error, m, fractions=20, metric="rmse").aurg_per_image)
            for name, m in (("decoded", decoded["decoded"]), ("floor", floor["random"]))}
    assert aurg["decoded"].mean() > 0.1
    floor_se = aurg["floor"].std(ddof=1) / np.sqrt(n)
    assert abs(aurg["floor"].mean()) < 3 * floor_se + 1e-3
