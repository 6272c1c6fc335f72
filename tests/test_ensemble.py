"""`ensemble`: the variance of x0_hat over members at the base model's states, checked against the members' own
predictions recomputed here, DECU's pairwise score against its closed form for two members, member loading (weight
files and folders), NFE accounting, bad input, and the shipped digits members."""
from __future__ import annotations

import math

import pytest
import torch

from benchmark.errors import CapabilityError, ConfigError
from benchmark.models.diffusers_unet import DiffusersUNet
from benchmark.sampling import sample
from estimators import create
from estimators.ensemble import default_member_paths, load_member, pairwise_mutual_information
from tests.helpers import tiny_unet


@pytest.fixture()
def members(tmp_path):
    """A base model (seed 0) and three member weight files of the same architecture (seeds 1..3)."""
    base = DiffusersUNet(tiny_unet(dropout=0.0, seed=0))
    paths, nets = [], []
    for seed in (1, 2, 3):
        net = tiny_unet(dropout=0.0, seed=seed)
        path = tmp_path / f"member_{seed}.pt"
        torch.save(net.state_dict(), path)
        paths.append(str(path))
        nets.append(DiffusersUNet(net))
    return base, paths, nets


def test_map_is_the_variance_of_the_members_predictions_at_the_base_states(members):
    base, paths, nets = members
    x_T = torch.randn((2, 1, 8, 8), generator=torch.Generator().manual_seed(0))
    est = create("ensemble", members=paths, window=(40, 50), keep_steps=True)
    out = sample(base, x_T, steps=10, estimators=[est], keep_states=range(8, 10))
    res = out.uncertainty["ensemble"]
    assert res.nfe == pytest.approx(3 * 2)  # 3 members x 2 window steps (steps 8, 9 of 10)
    ab = base.alphas_cumprod
    for index, t in zip(range(8, 10), sorted(res.per_step, reverse=True)):
        x_t, a = out.states[index].double(), float(ab[t])
        with torch.no_grad():
            preds = torch.stack([(x_t - math.sqrt(1 - a) * n.predict_eps(x_t.float(), torch.full((2,), t)).double())
                                 / math.sqrt(a) for n in nets])
        want = ((preds - preds.mean(0)) ** 2).sum(0) / 2  # unbiased over 3 members, written out
        torch.testing.assert_close(res.per_step[t].double(), want, rtol=1e-3, atol=1e-5)  # float32 network
    torch.testing.assert_close(res.score, res.pixel.flatten(1).sum(1))


def test_weight_file_loads_into_the_base_architecture(members):
    base, paths, nets = members
    member = load_member(__import__("pathlib").Path(paths[0]), base, "members")
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(member.predict_eps(x, torch.tensor([5, 9])), nets[0].predict_eps(x, torch.tensor([5, 9])))
        assert not torch.allclose(base.predict_eps(x, torch.tensor([5, 9])), nets[0].predict_eps(x, torch.tensor([5, 9])))


def test_pairwise_mutual_information_closed_form():
    """Two members at distance d per pixel: I = log 2 - log(1 + exp(-d^2)); identical members: 0; far apart: log 2."""
    d = torch.tensor([0.0, 0.5, 1.0, 10.0], dtype=torch.float64)
    got = pairwise_mutual_information(torch.stack([torch.zeros_like(d), d]))
    torch.testing.assert_close(got, math.log(2) - torch.log1p(torch.exp(-d ** 2)))
    assert float(got[0]) == 0.0 and float(got[-1]) == pytest.approx(math.log(2))


def test_pairwise_score_option(members):
    base, paths, _ = members
    x_T = torch.randn((2, 1, 8, 8), generator=torch.Generator().manual_seed(1))
    plain = create("ensemble", members=paths, window=(40, 50))
    decu = create("ensemble", members=paths, window=(40, 50), score="pairwise_mi")
    decu.name = "ensemble_mi"
    out = sample(base, x_T, steps=10, estimators=[plain, decu])
    a, b = out.uncertainty["ensemble"], out.uncertainty["ensemble_mi"]
    torch.testing.assert_close(a.pixel, b.pixel)  # the map stays the variance
    assert bool((b.score > 0).all()) and bool((b.score <= 2 * 64 * math.log(3) + 1e-6).all())
    assert not torch.allclose(a.score, b.score)


def test_bad_members_are_refused(members, tmp_path):
    base, paths, _ = members
    with pytest.raises(ConfigError, match="members"):
        create("ensemble", members=paths[:1])
    with pytest.raises(ConfigError, match="score"):
        create("ensemble", score="entropy")
    est = create("ensemble", members=[paths[0], str(tmp_path / "missing.pt")])
    with pytest.raises(ConfigError, match="missing.pt"):
        sample(base, torch.randn(1, 1, 8, 8), steps=2, estimators=[est])
    wrong = tmp_path / "wrong.pt"
    torch.save({"weight": torch.zeros(2)}, wrong)
    with pytest.raises(ConfigError, match="keys do not match"):
        load_member(wrong, base, "members")
    unfinished = tmp_path / "member_9"
    unfinished.mkdir()
    (unfinished / "checkpoint.pt").write_bytes(b"")  # what an interrupted training leaves
    with pytest.raises(ConfigError, match="rerun the same command"):
        load_member(unfinished, base, "members")
    with pytest.raises(CapabilityError, match="train --what ensemble"):
        sample(base, torch.randn(1, 1, 8, 8), steps=2, estimators=[create("ensemble")])


def test_shipped_digits_members_load_and_disagree():
    from benchmark.presets import get

    model = get("digits").load_model()
    paths = default_member_paths(model)
    assert [p.name for p in paths] == [f"member_{k}" for k in range(5)]
    est = create("ensemble", window=(48, 50))
    y = torch.tensor([3, 7])
    out = sample(model, torch.randn((2, *model.sample_shape), generator=torch.Generator().manual_seed(0)), steps=10,
                 estimators=[est], y=y)
    res = out.uncertainty["ensemble"]
    assert res.nfe == pytest.approx(5 * 1) and bool((res.score > 0).all())


def test_train_command_writes_loadable_members(tmp_path):
    """`train --what ensemble` (2 steps per member here): member folders the estimator's default finds, each with
    its own seed, and ensemble.json with their training times; --members 1 is refused with its fix."""
    import json

    from benchmark.training.command import train_main

    out = tmp_path / "ensemble"
    with pytest.raises(ConfigError, match="--members"):
        train_main(["--what", "ensemble", "--dataset", "digits", "--members", "1", "--out", str(out)])
    assert not out.exists()
    assert train_main(["--what", "ensemble", "--dataset", "digits", "--members", "2", "--steps", "2", "--threads", "1",
                       "--out", str(out), "--no-progress"]) == 0
    record = json.loads((out / "ensemble.json").read_text())
    assert record["members"] == 2 and len(record["per_member"]) == 2 and record["wall_clock_s"] > 0
    model = SimpleModel(source=tmp_path)
    paths = default_member_paths(model)
    assert [p.name for p in paths] == ["member_0", "member_1"] and not (paths[0] / "checkpoint.pt").exists()
    a, b = (load_member(p, None, "members") for p in paths)
    x = torch.randn(1, *a.sample_shape)
    with torch.no_grad():
        assert not torch.allclose(a.eps(x, 500, torch.tensor([1])), b.eps(x, 500, torch.tensor([1])))


class SimpleModel:
    def __init__(self, source):
        self.source = str(source)
