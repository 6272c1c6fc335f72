"""Protocol `rectification` (issue 15): rejection and RePaint-style region resampling of flagged samples.

Acceptance (ii)-(iv) on the gmm preset's exact mixture (benchmark/models/gmm.py) as the sampling model.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import estimators
from benchmark.protocols.rectification import (
    percentile_mask,
    random_mask_like,
    random_trigger,
    region_tries,
    rejection_tries,
    replay,
    triggered,
    try_indices,
)
from benchmark.protocols.resampling import TrajectoryRecorder, region_resample, renoise
from benchmark.sampling import build_grid, initial_noise, sample


@pytest.fixture(scope="module")
def oracle():
    from benchmark.data.gmm import build_oracle

    return build_oracle()  # ten components on the digit prototypes, 1x16x16


def test_triggers_and_masks():
    scores = np.arange(100, dtype=float)[::-1]
    assert triggered(scores, 90).tolist() == list(range(10))  # the ten highest scores
    assert triggered(np.ones(20), 90).size == 0  # constant scores flag nothing
    small, large = random_trigger(50, 5, seed=3), random_trigger(50, 12, seed=3)
    assert len(set(small.tolist())) == 5 and set(small.tolist()) <= set(large.tolist())
    maps = torch.rand(4, 2, 8, 8, generator=torch.Generator().manual_seed(0))
    mask = percentile_mask(maps, 75.0)
    for img, m in zip(maps, mask):  # exactly the values above the image's own 75th percentile
        assert m.sum().item() == 32
        assert img[m].min() > img[~m].max()
    rand = random_mask_like(mask, seed=0, indices=torch.arange(4))
    assert rand.flatten(1).sum(1).tolist() == mask.flatten(1).sum(1).tolist()
    assert not torch.equal(rand, mask)
    assert try_indices(torch.tensor([0, 7]), 1, 40).tolist() == [80, 87]


def test_acceptance_ii_rejection_with_the_oracle_density_lowers_the_mean_neg_log_density(oracle):
    steps, n, tries = 8, 60, 3
    idx = torch.arange(n)
    x0 = sample(oracle, initial_noise(0, idx, oracle.sample_shape), steps=steps, seed=0, indices=idx).x0
    neg_log_p = -oracle.log_density(x0)
    flagged = torch.as_tensor(triggered(neg_log_p.numpy(), 90), dtype=torch.long)
    assert flagged.numel() == 6
    result = rejection_tries(oracle, flagged, None, tries=tries, num_samples=n,
                             scorers={"oracle": lambda res: -oracle.log_density(res.x0)}, sampler="ddim",
                             steps=steps, seed=0, batch_size=16)
    kept, kept_score = result.lowest("oracle")
    after = -oracle.log_density(kept)  # recomputed from the kept images
    torch.testing.assert_close(after, kept_score.to(after.dtype))
    assert after.mean() < neg_log_p[flagged].mean()
    # each kept image is the best of its own tries, and the tries are fresh samples (new x_T)
    for i, j in enumerate(flagged.tolist()):
        fresh = initial_noise(0, try_indices(torch.tensor([j]), 0, n), oracle.sample_shape)
        first = sample(oracle, fresh, steps=steps, seed=0, indices=try_indices(torch.tensor([j]), 0, n)).x0
        torch.testing.assert_close(result.x0[i, 0], first[0])
        assert after[i] <= -oracle.log_density(result.x0[i]).min() + 1e-9
    assert result.sampler_nfe == steps  # per try and sample (acceptance iv)


@pytest.mark.parametrize("sampler", ["ddim", "ddpm", "dpm2"])
def test_acceptance_iii_region_resampling_keeps_the_unmasked_pixels_on_the_original_trajectory(oracle, sampler):
    steps, start, n = 8, 3, 4
    idx = torch.arange(n)
    original = TrajectoryRecorder(start, name="_original")
    base = sample(oracle, initial_noise(0, idx, oracle.sample_shape), sampler=sampler, steps=steps, seed=0,
                  indices=idx, estimators=[original])
    mask = torch.rand(n, *oracle.sample_shape, generator=torch.Generator().manual_seed(1)) > 0.7
    noise = torch.randn(n, *oracle.sample_shape, generator=torch.Generator().manual_seed(2))
    resampled = TrajectoryRecorder(start, name="_resampled")
    out = region_resample(oracle, original.states, original.eps, mask, base.x0, noise, start_index=start,
                          sampler=sampler, steps=steps, seed=0, indices=idx, estimators=[resampled])
    ab_k = build_grid(sampler, oracle.alphas_cumprod, steps)[start].ab_t
    start_state = torch.where(mask, ab_k ** 0.5 * base.x0 + (1 - ab_k) ** 0.5 * noise, original.states[start])
    torch.testing.assert_close(resampled.states[start], start_state)
    torch.testing.assert_close(renoise(base.x0, ab_k, noise), ab_k ** 0.5 * base.x0 + (1 - ab_k) ** 0.5 * noise)
    pairs = [(resampled.states[i], original.states[i]) for i in range(start, steps)] + [(out.x0, base.x0)]
    for new, old in pairs:  # every step, and the final sample
        assert (new - old)[~mask].abs().max() <= 1e-6
    assert (out.x0 - base.x0)[mask].abs().max() > 1e-2  # the masked pixels were resampled
    assert out.nfe == (steps - start) * (2 if sampler == "dpm2" else 1)  # acceptance iv


def test_acceptance_iv_nfe_of_tries_and_replay_with_an_estimator(oracle):
    """rejection: R (S + e); region: R ((S - k) + e_k); replay: S. Sensitivity costs M per window step."""
    steps, start, tries, m = 10, 6, 2, 3
    make = (lambda: [estimators.create("sensitivity", m=m, window=(40, 50))])  # steps 8, 9 of 10
    flagged = torch.tensor([1, 4])
    scorers = {"sensitivity": lambda res: res.uncertainty["sensitivity"].score}
    common = dict(sampler="ddim", steps=steps, seed=0, batch_size=8)
    rejection = rejection_tries(oracle, flagged, None, tries=tries, num_samples=10, scorers=scorers,
                                make_estimators=make, **common)
    assert rejection.cost_per_try("sensitivity") == steps + 2 * m
    original = replay(oracle, flagged, None, start_index=start, **common)
    assert original.nfe == steps
    masks = percentile_mask(torch.rand(2, *oracle.sample_shape, generator=torch.Generator().manual_seed(0)), 80.0)
    region = region_tries(oracle, original, flagged, None, masks, tries=tries, start_index=start, scorers=scorers,
                          make_estimators=make, **common)
    assert region.cost_per_try("sensitivity") == (steps - start) + 2 * m
    assert region.x0.shape == (2, tries, *oracle.sample_shape)
    assert (region.x0[:, 0] - region.x0[:, 1]).abs().max() > 1e-3  # tries differ (fresh re-noising draws)
