"""Issue 24, item 4: plain sampling at matched NFE beside the guided pass (protocols.guided, shard tag plainmatched).

The guidance protocol samples the same x_T and labels with the plain sampler at S_matched = round(G / (P / S))
steps (G the guided pass's NFEs per sample, P / S the plain sampler's NFEs per step). Checked against numbers the
code under test does not produce:
- the rule on hand-computed cases (halves round up);
- G and P counted by the model's own NFE counter in direct `sample` calls, and the hand count of the tiny runs
  (DDIM, 10 steps, window (30, 50) -> 4 guided steps of M = 3 calls: G = 10 + 12 = 22 -> 22 steps; DPM-Solver-2,
  7 steps of 2 NFEs, window (30, 50) -> 3 guided steps: G = 14 + 9 = 23 -> 11.5 -> 12 steps, 24 NFEs, within half
  a step of G);
- the matched shards equal direct `benchmark.sampling.sample` calls with S_matched steps from the same x_T and
  labels, bit for bit, whichever rank makes them and after a damaged shard is regenerated;
- the protocol's rows: the matched pass's FID, guided - matched paired by index with a p-value, the step count and
  the NFEs (G = 20 + 2 x 7 = 34 on the mixture at 20 steps, window (30, 49)), all with n = the guided samples.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from benchmark.execution import checksums
from benchmark.execution.generation import generate, load_generation, shard_path
from benchmark.models import DiffusersUNet, GaussianMixtureModel
from benchmark.protocols import guided
from benchmark.sampling import condition_labels, initial_noise, sample
from estimators.guidance import UncertaintyGuidance
from metrics.frechet import feature_statistics
from tests.helpers import tiny_gmm_means, tiny_unet

SEED = 3


def test_the_step_count_is_the_guided_nfe_over_the_plain_nfe_per_step_rounded_half_up():
    assert guided.matched_steps(41.0, 20.0, 20) == 41  # DDIM: one NFE per step
    assert guided.matched_steps(25.0, 20.0, 10) == 13  # 12.5 steps of 2 NFEs: the half rounds up
    assert guided.matched_steps(24.9, 20.0, 10) == 12
    assert guided.matched_steps(20.0, 20.0, 20) == 20  # no guided step: the run's own step count
    assert guided.matched_steps(0.2, 20.0, 20) == 1  # never below one step


@pytest.fixture
def conditional() -> DiffusersUNet:
    """The tiny 1x8x8 UNet with 3 classes (labels drawn per sample index)."""
    return DiffusersUNet(tiny_unet(num_classes=3))


def run_config(sampler: str, steps: int) -> SimpleNamespace:
    return SimpleNamespace(num_samples=10, seed=SEED, sampler=sampler, steps=steps, batch_size=4, bootstrap=100)


def direct(model, rows: range, sampler: str, steps: int, guidance=None):
    """`sample` from the run's x_T and labels of sample indices `rows`, outside the runner."""
    idx = torch.arange(rows.start, rows.stop)
    return sample(model, initial_noise(SEED, idx, model.sample_shape), sampler=sampler, steps=steps, seed=SEED,
                  indices=idx, y=condition_labels(model, SEED, idx), guidance=guidance)


@pytest.mark.parametrize("sampler, steps, expected_steps", [("ddim", 10, 22), ("dpm2", 7, 12)])
def test_the_matched_pass_costs_the_guided_nfes_and_is_plain_sampling_from_the_same_x_T(
        conditional, tmp_path, sampler, steps, expected_steps):
    guidance = UncertaintyGuidance(m=3, strength=2.0, window=(30, 50), center="prediction")
    config = run_config(sampler, steps)
    generate(conditional, run_dir=tmp_path, num_samples=10, batch_size=4, seed=SEED, sampler=sampler, steps=steps,
             make_estimators=list, progress=False, keep_state_at=guided.window_start(guidance.window, steps))
    guided.guided_pass(conditional, tmp_path, config, 6, guidance)  # shards [0, 4) (continued) and [4, 6)

    counted = direct(conditional, range(0, 4), sampler, steps, guidance)
    guided_nfe = counted.nfe + counted.guidance_nfe  # G, by the model's NFE counter
    nfe_per_step = direct(conditional, range(0, 4), sampler, steps).nfe / steps
    assert guided_nfe == {"ddim": 22.0, "dpm2": 23.0}[sampler] and nfe_per_step == {"ddim": 1.0, "dpm2": 2.0}[sampler]

    made = load_generation(tmp_path, 6, 4, tag=guided.MATCHED_TAG)
    assert guided.merged_matched_steps(made) == expected_steps
    assert abs(made.nfe["sampler"] - guided_nfe) <= nfe_per_step / 2  # within half a step's NFE of G
    assert made.nfe.get("guidance", 0.0) == 0.0
    for rows in (range(0, 4), range(4, 6)):
        reference = direct(conditional, rows, sampler, expected_steps)
        assert torch.equal(made.x0[rows.start:rows.stop], reference.x0)
        assert reference.nfe == made.nfe["sampler"]
        assert checksums.problem(shard_path(tmp_path, rows.start, rows.stop, tag=guided.MATCHED_TAG)) is None
    assert torch.equal(made.y, condition_labels(conditional, SEED, torch.arange(6)))
    assert len(set(made.y.tolist())) > 1  # labels do condition this model
    plain = load_generation(tmp_path, 10, 4)
    assert not torch.equal(made.x0, plain.x0[:6])  # more steps is another sample


def test_any_rank_makes_the_same_matched_shards_and_a_damaged_one_is_regenerated(conditional, tmp_path):
    guidance = UncertaintyGuidance(m=2, strength=2.0, window=(30, 50), center="prediction")
    config = run_config("ddim", 8)
    guided.guided_pass(conditional, tmp_path / "one", config, 6, guidance)
    guided.guided_pass(conditional, tmp_path / "two", config, 6, guidance, rank=1, world_size=2)
    assert sorted(p.name for p in (tmp_path / "two" / "shards").glob("*.pt")) == [
        "guided_0000004_0000006.pt", "placebo_0000004_0000006.pt", "plainmatched_0000004_0000006.pt"]
    guided.guided_pass(conditional, tmp_path / "two", config, 6, guidance, rank=0, world_size=2)
    one, two = (load_generation(tmp_path / f, 6, 4, tag=guided.MATCHED_TAG) for f in ("one", "two"))
    assert torch.equal(one.x0, two.x0) and one.nfe == two.nfe
    assert torch.equal(one.extras[guided.MATCHED_STEPS_KEY], two.extras[guided.MATCHED_STEPS_KEY])

    path = shard_path(tmp_path / "one", 0, 4, tag=guided.MATCHED_TAG)
    untouched = shard_path(tmp_path / "one", 4, 6, tag=guided.MATCHED_TAG)
    stamp = untouched.stat().st_mtime_ns
    path.write_bytes(path.read_bytes()[:100])  # truncated: its checksum no longer matches
    guided.guided_pass(conditional, tmp_path / "one", config, 6, guidance)
    assert untouched.stat().st_mtime_ns == stamp  # a finished shard is not made again
    again = load_generation(tmp_path / "one", 6, 4, tag=guided.MATCHED_TAG)
    assert torch.equal(again.x0, one.x0)


def test_the_protocol_reports_the_matched_pass_and_guided_minus_it(tmp_path):
    mixture = GaussianMixtureModel(tiny_gmm_means(3, (1, 4, 4)), std=0.2)
    params = {"m": 2, "percentile": 90.0, "strength": 1.0, "window": [30, 49], "center": "prediction",
              "thresholds": "per_image", "num_samples": 8}
    config = run_config("ddim", 20)
    generate(mixture, run_dir=tmp_path, num_samples=10, batch_size=4, seed=SEED, sampler="ddim", steps=20,
             make_estimators=list, progress=False, keep_state_at=guided.window_start(params["window"], 20))
    gen = load_generation(tmp_path, 10, 4)
    features = lambda images: images.flatten(1).double().numpy()  # noqa: E731 - pixels as features (16-d)
    reference = feature_statistics(np.random.default_rng(0).normal(0, 0.5, size=(200, 16)))
    inputs = SimpleNamespace(config=config, model=mixture, run_dir=tmp_path, generation=gen, progress=False,
                             fake_features={"pixels": features(gen.x0)}, artifacts={},
                             reference_stats={"pixels": reference}, extract=lambda space, images: features(images))
    rows = {(r.estimator, r.metric): r for r in guided.run(inputs, params)}

    matched = guided.PLAIN_MATCHED
    assert rows[(matched, "matched_steps")].value == 34.0  # 20 steps + 2 calls x 7 guided steps
    assert rows[("guided", "nfe_per_sample")].value == rows[(matched, "nfe_per_sample")].value == 34.0
    assert rows[(matched, "extra_nfe_per_sample")].value == rows[("guided", "extra_nfe_per_sample")].value == 14.0
    assert rows[(matched, "nfe_ratio")].value == pytest.approx(1.7)
    verdict = rows[("guided", "delta_vs_plain_matched_nfe[pixels]")]
    assert 0.0 <= verdict.p_value <= 1.0 and verdict.ci_low <= verdict.value <= verdict.ci_high
    for key in ((matched, "fid[pixels]"), (matched, "delta_vs_plain[pixels]"), (matched, "matched_steps"),
                ("guided", "delta_vs_plain_matched_nfe[pixels]"), ("guided", "delta_vs_placebo[pixels]")):
        assert rows[key].n == 8

    made = load_generation(tmp_path, 8, 4, tag=guided.GUIDED_TAG)
    plain_34 = torch.cat([direct(mixture, rows_, "ddim", 34).x0 for rows_ in (range(0, 4), range(4, 8))])
    fid = guided.fid_ci
    expected = (fid(features(made.x0), reference, 100, SEED).value
                - fid(features(plain_34), reference, 100, SEED).value)
    assert verdict.value == pytest.approx(expected, rel=1e-9, abs=1e-12)  # FID(guided) - FID(34 plain steps)
    assert rows[(matched, "fid[pixels]")].value == pytest.approx(fid(features(plain_34), reference, 100, SEED).value)
