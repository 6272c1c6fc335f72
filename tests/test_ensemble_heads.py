"""DECU class-embedding heads as `ensemble` members: training moves the head alone (every network parameter
bit-identical afterwards), the estimator on head members equals a brute-force loop over full copies of the network
with the table swapped in, the NFE count (one row per member and window step), the default folder, refusals."""
from __future__ import annotations

import copy
import json
import math

import pytest
import torch

from benchmark.data.datasets import ImageDataset
from benchmark.errors import CapabilityError, ConfigError
from benchmark.models.class_heads import HEAD_FOLDER, head_digest, save_head, swapped_class_embedding
from benchmark.models.diffusers_unet import DiffusersUNet
from benchmark.sampling import sample
from benchmark.training.ensemble_heads import HeadTrainConfig, fresh_head, head_seed, heldout_loss, train_head
from estimators import create
from tests.helpers import tiny_unet

CLASSES = 3


@pytest.fixture()
def base() -> DiffusersUNet:
    """A tiny class-conditional model (1x8x8, 3 classes, dropout 0.1 as the presets)."""
    return DiffusersUNet(tiny_unet(num_classes=CLASSES, dropout=0.1, seed=0))


@pytest.fixture()
def data() -> ImageDataset:
    gen = torch.Generator().manual_seed(0)
    images = torch.rand((48, 1, 8, 8), generator=gen) * 2 - 1
    return ImageDataset(images, torch.randint(0, CLASSES, (48,), generator=gen), CLASSES, "tiny")


def write_heads(base: DiffusersUNet, folder, count: int = 3) -> list[torch.Tensor]:
    """`count` random head files in `folder` (head_<k>.safetensors, recording the base's digest); their tables."""
    table = base.unet.class_embedding
    weights = [fresh_head(table, head_seed(7, k)) for k in range(count)]
    for k, weight in enumerate(weights):
        save_head(folder / f"head_{k}.safetensors", weight, {"base_digest": head_digest(base)})
    return weights


def test_training_moves_only_the_head(base, data):
    before = {name: tensor.clone() for name, tensor in base.state_dict().items()}
    flags = {name: p.requires_grad for name, p in base.named_parameters()}
    cfg = HeadTrainConfig(dataset="tiny", out="unused", steps=4, batch_size=8, lr=0.05, warmup=1)
    result = train_head(base, data, cfg, seed=head_seed(0, 1))
    after = base.state_dict()
    assert set(after) == set(before)
    for name, tensor in before.items():  # the network's own table included: the head was swapped in, not written
        assert torch.equal(after[name], tensor), name
    assert all(p.grad is None for p in base.parameters())  # no gradient ever reached the network
    assert {name: p.requires_grad for name, p in base.named_parameters()} == flags  # flags restored
    start = fresh_head(base.unet.class_embedding, head_seed(0, 1))
    assert result.steps == 4 and not torch.equal(result.weight, start) and math.isfinite(result.final_loss)
    assert torch.equal(train_head(base, data, cfg, seed=head_seed(0, 1)).weight, result.weight)  # seeded
    assert not torch.equal(train_head(base, data, cfg, seed=head_seed(0, 2)).weight, result.weight)


def test_heldout_loss_of_the_own_table_equals_the_swapped_own_table(base, data):
    own = base.unet.class_embedding.weight.detach().clone()
    assert heldout_loss(base, data, None) == pytest.approx(heldout_loss(base, data, own), rel=1e-6)


def test_head_members_equal_brute_force_full_copies(base, tmp_path):
    """(b) the estimator's variance over head members at the base's states == the variance over K deep copies of
    the network with the table overwritten; (c) K NFEs per sample and window step; the sample itself unchanged."""
    weights = write_heads(base, tmp_path)
    paths = [str(tmp_path / f"head_{k}.safetensors") for k in range(3)]
    x_T = torch.randn((2, 1, 8, 8), generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 2])
    est = create("ensemble", members=paths, window=(40, 50), keep_steps=True)
    out = sample(base, x_T, steps=10, estimators=[est], keep_states=range(8, 10), y=y)
    res = out.uncertainty["ensemble"]
    assert est.member_type_used == "class-embedding"
    assert res.nfe == pytest.approx(3 * 2) and out.nfe == pytest.approx(10)  # 3 heads x 2 window steps; sampler 10
    torch.testing.assert_close(out.x0, sample(base, x_T, steps=10, y=y).x0, rtol=0, atol=0)
    copies = []
    for weight in weights:
        net = copy.deepcopy(base.unet)
        net.class_embedding.weight.data.copy_(weight)
        copies.append(DiffusersUNet(net))
    ab = base.alphas_cumprod
    for index, t in zip(range(8, 10), sorted(res.per_step, reverse=True)):
        x_t, a = out.states[index], float(ab[t])
        with torch.no_grad():
            preds = torch.stack([(x_t - math.sqrt(1 - a) * c.predict_eps(x_t, torch.full((2,), t), y)) / math.sqrt(a)
                                 for c in copies])
        torch.testing.assert_close(res.per_step[t], preds.var(0, unbiased=True), rtol=1e-5, atol=1e-7)


def test_default_heads_folder_and_member_type(base, tmp_path):
    write_heads(base, tmp_path / HEAD_FOLDER)
    base.source = str(tmp_path)
    x_T, y = torch.randn((1, 1, 8, 8)), torch.tensor([1])
    for member_type in ("auto", "class-embedding"):
        est = create("ensemble", window=(45, 50), member_type=member_type)
        assert sample(base, x_T, steps=5, estimators=[est], y=y).uncertainty["ensemble"].nfe == pytest.approx(3)
        assert est.member_type_used == "class-embedding"
    with pytest.raises(CapabilityError, match="ensemble_heads"):  # "full" never falls back to the heads
        sample(base, x_T, steps=5, estimators=[create("ensemble", member_type="full")], y=y)


def test_bad_heads_are_refused(base, tmp_path):
    write_heads(base, tmp_path)
    heads = [str(tmp_path / f"head_{k}.safetensors") for k in range(2)]
    x_T, y = torch.randn((1, 1, 8, 8)), torch.tensor([1])

    def run(**params) -> None:
        sample(base, x_T, steps=2, estimators=[create("ensemble", window=(0, 50), **params)], y=y)

    with pytest.raises(ConfigError, match="member_type"):
        create("ensemble", member_type="heads")
    with pytest.raises(ConfigError, match="these are class-embedding"):
        run(members=heads, member_type="full")
    full = tmp_path / "full.pt"
    torch.save(base.unet.state_dict(), full)
    with pytest.raises(ConfigError, match="these are mixed"):
        run(members=[heads[0], str(full)])
    other = DiffusersUNet(tiny_unet(num_classes=CLASSES, dropout=0.1, seed=5))  # another network, same shapes
    with pytest.raises(ConfigError, match="base_digest differs"):
        sample(other, x_T, steps=2, estimators=[create("ensemble", members=heads, window=(0, 50))], y=y)
    wider = DiffusersUNet(tiny_unet(num_classes=CLASSES + 1, dropout=0.1, seed=0))
    with pytest.raises(ConfigError, match="a head for the run's model"):
        sample(wider, x_T, steps=2, estimators=[create("ensemble", members=heads, window=(0, 50))], y=y)


def test_swap_restores_the_table_after_an_error(base):
    own = base.unet.class_embedding.weight
    with pytest.raises(RuntimeError, match="inside"):
        with swapped_class_embedding(base, torch.zeros_like(own)):
            raise RuntimeError("inside")
    assert base.unet.class_embedding.weight is own and "weight" in base.unet.class_embedding._parameters
    with pytest.raises(CapabilityError, match="class-embedding table"):
        with swapped_class_embedding(DiffusersUNet(tiny_unet(dropout=0.0)), own):
            pass


def test_train_command_writes_heads_the_estimator_finds(tmp_path, monkeypatch, base, data):
    """`train --what ensemble --heads class-embedding` on a stand-in base and data (2 steps per head): head files
    with their seeds, heads.json with per-head times and losses; the estimator finds them by default."""
    import benchmark.data.datasets as datasets
    import benchmark.presets.loading as loading
    from benchmark.training.command import train_main

    monkeypatch.setattr(loading, "load_model", lambda name: base)
    monkeypatch.setattr(datasets, "load_dataset", lambda name, split="train", root=None: data)
    out = tmp_path / HEAD_FOLDER
    assert train_main(["--what", "ensemble", "--heads", "class-embedding", "--dataset", "digits", "--members", "2",
                       "--steps", "2", "--threads", "1", "--out", str(out), "--no-progress"]) == 0
    record = json.loads((out / "heads.json").read_text())
    assert record["members"] == 2 and [h["seed"] for h in record["per_head"]] == [head_seed(0, 0), head_seed(0, 1)]
    assert all(h["steps"] == 2 and math.isfinite(h["heldout_loss"]) for h in record["per_head"])
    assert (out / "model_card.md").is_file() and sorted(p.name for p in out.glob("head_*")) == [
        "head_0.safetensors", "head_1.safetensors"]
    base.source = str(tmp_path)
    est = create("ensemble", window=(45, 50))
    sample(base, torch.randn((1, 1, 8, 8)), steps=5, estimators=[est], y=torch.tensor([0]))
    assert est.member_type_used == "class-embedding" and est.m == 2


@pytest.mark.parametrize("argv, field, fix", [
    (["--what", "diffusion", "--heads", "class-embedding"], "--heads", "add --what ensemble"),
    (["--what", "ensemble", "--heads", "class-embedding", "--unconditional"], "--unconditional",
     "drop --unconditional"),
    (["--what", "ensemble", "--heads", "class-embedding", "--members", "1"], "--members", "pass --members 5"),
    (["--what", "ensemble", "--heads", "everything"], "argument --heads", "see `python -m benchmark train --help`"),
], ids=["heads without ensemble", "heads unconditional", "one head", "unknown head type"])
def test_bad_heads_flags_get_one_line(argv, field, fix, tmp_path, capsys):
    from benchmark.cli import main

    out = tmp_path / "heads"
    code = main(["train", "--dataset", "digits", "--out", str(out), *argv])
    line = capsys.readouterr().err.strip()
    assert code == 2 and line.startswith("error: ") and "\n" not in line, line
    assert field in line and f"Fix: {fix}" in line, line
    assert not out.exists()
