"""The guided pass continues the generation pass's trajectory from the window start (issue 18's demo time).

Before its window the guided pass is the plain sampler, so the generation pass keeps x_t at the window start
(`sample(keep_states=...)`, `generate(keep_state_at=...)`) and the guided shard continues from it. That must give
the same bits as sampling the guided pass from x_T, whichever way a run takes (the shard may be made before its
generation shard exists), and count the plain steps' NFEs as its own.
"""
from __future__ import annotations

import pytest
import torch

from benchmark.config import parse_config
from benchmark.execution.generation import generate, kept_state, load_generation
from benchmark.protocols.guided import guided_pass, window_start
from benchmark.sampling import initial_noise, sample
from estimators.guidance import UncertaintyGuidance


@pytest.mark.parametrize("sampler", ["ddim", "ddpm", "dpm2"])
def test_continuing_from_the_kept_state_is_the_same_trajectory(unet_model, sampler):
    guidance = UncertaintyGuidance(m=2, strength=2.0, window=(40, 50), center="prediction")
    start = window_start(guidance.window, 10)
    assert start == 8
    x_T = initial_noise(3, torch.arange(5), unet_model.sample_shape)
    plain = sample(unet_model, x_T, sampler=sampler, steps=10, seed=3, estimators=["sensitivity"],
                   keep_states=(start,))
    assert set(plain.states) == {start}
    full = sample(unet_model, x_T, sampler=sampler, steps=10, seed=3, guidance=guidance)
    continued = sample(unet_model, plain.states[start], sampler=sampler, steps=10, seed=3, guidance=guidance,
                       start_index=start)
    assert torch.equal(continued.x0, full.x0)
    assert continued.guidance_nfe == full.guidance_nfe > 0
    assert not torch.equal(full.x0, plain.x0)  # the window did guide


def test_a_guided_shard_made_from_the_kept_state_equals_one_made_from_x_T(unet_model, tmp_path):
    config = parse_config({"run": {"preset": "digits", "num_samples": 6, "keep": 4, "batch_size": 3, "steps": 10},
                           "protocols": {"guidance": {"num_samples": 5, "m": 2, "window": [40, 50]}}})
    params = config.protocols["guidance"]
    guidance = UncertaintyGuidance(m=2, strength=2.0, window=(40, 50), center="prediction")
    start = window_start(params["window"], config.steps)
    common = dict(num_samples=6, batch_size=3, seed=0, sampler="ddim", steps=10, progress=False)
    for folder, keep in (("kept", start), ("plain", None)):
        generate(unet_model, run_dir=tmp_path / folder, make_estimators=list, keep_state_at=keep, **common)
    plain = load_generation(tmp_path / "kept", 6, 3)
    assert torch.equal(plain.x0, load_generation(tmp_path / "plain", 6, 3).x0)  # keeping a state changes nothing

    # guided shards [0, 3) (a generation shard: continued) and [3, 5) (not one: sampled from x_T)
    assert kept_state(tmp_path / "kept", 6, 3, start)(0, 3)[0] == start
    assert kept_state(tmp_path / "kept", 6, 3, start)(3, 5) is None
    assert kept_state(tmp_path / "plain", 6, 3, start)(0, 3) is None  # no state kept: from x_T
    guided_pass(unet_model, tmp_path / "kept", config, 5, guidance)
    generate(unet_model, run_dir=tmp_path / "reference", num_samples=5, batch_size=3, seed=0, sampler="ddim",
             steps=10, make_estimators=list, tag="guided", progress=False, guidance=guidance)
    made, reference = (load_generation(tmp_path / f, 5, 3, tag="guided") for f in ("kept", "reference"))
    assert torch.equal(made.x0, reference.x0)
    assert made.nfe == reference.nfe  # the plain steps' NFEs counted as the guided pass's own
