"""A domain classifier for the user's own data (issue 25 item 3): `python -m benchmark train --what classifier --data
PATH` on a labelled image folder or .npz of any size >= 8 px (28 px here: padded to 32 inside the classifier), saved
where a run on that data finds it, with a record of the data it was trained on; a run with `[data] path` and
`features = ["classifier"]` then uses it (filtered FID and the realism oracle in classifier space). Unlabelled
data, too-small images and a stale classifier are refused with exit 2."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from benchmark import presets
from benchmark.cli import main
from benchmark.config import parse_config
from benchmark.data.user_data import CLASSIFIER_FILE, DataSpec, data_fingerprint, default_classifier_path
from benchmark.errors import ConfigError
from metrics.classifier import DomainClassifier, padding_for
from metrics.features import build_feature_extractor

FAST = ["--epochs", "1", "--width", "4", "--threads", "1", "--no-progress"]
SHAPES = ("bar_v", "bar_h", "square")


def toy_image(kind: int, rng: np.random.Generator, size: int = 28) -> np.ndarray:
    """A noisy bright vertical bar, horizontal bar or square on black, shifted by up to 2 px."""
    a = np.zeros((size, size), np.uint8)
    lo, hi, mid = size // 4, size - size // 4, size // 2
    if kind == 0:
        a[lo:hi, mid - 2:mid + 2] = 255
    elif kind == 1:
        a[mid - 2:mid + 2, lo:hi] = 255
    else:
        a[lo:hi, lo:hi] = 255
    a = np.roll(a, tuple(rng.integers(-2, 3, 2)), (0, 1))
    return np.clip(a.astype(int) + rng.integers(0, 40, a.shape), 0, 255).astype(np.uint8)


def labelled_folder(root, per_class: int = 12, size: int = 28):
    rng = np.random.default_rng(0)
    for kind, name in enumerate(SHAPES):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(toy_image(kind, rng, size), "L").save(root / name / f"{i:02d}.png")
    return root


def labelled_npz(path, n: int = 36, classes: int = 3):
    rng = np.random.default_rng(1)
    labels = np.arange(n) % classes
    images = np.stack([toy_image(int(k) % 3, rng) for k in labels])[:, None]  # [N, 1, 28, 28] uint8
    np.savez(path, images=images, labels=labels.astype(np.int64))
    return path


def tiny_model_folder(folder) -> None:
    """An unconditional diffusers UNet for 1x28x28 images (about 42k parameters)."""
    from diffusers import DDPMScheduler, UNet2DModel

    torch.manual_seed(0)
    UNet2DModel(sample_size=28, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
                norm_num_groups=4, down_block_types=("DownBlock2D",) * 2,
                up_block_types=("UpBlock2D",) * 2).save_pretrained(folder / "unet")
    DDPMScheduler().save_pretrained(folder / "scheduler")
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "DDPMPipeline"}))


def run_config(data_path, extra: str = "") -> str:
    return f"""
[run]
steps = 10
num_samples = 24
keep = 20
batch_size = 24
bootstrap = 10
features = ["classifier"]
threads = 1

[model]
path = "model"

[data]
path = "{data_path}"
{extra}
[estimators.realism_oracle]
features = "classifier"

[protocols.filtered_fid]
curve_fractions = [0.5, 1.0]
"""


def train(data, *more) -> int:
    return main(["train", "--what", "classifier", "--data", str(data), *FAST, *more])


def test_padding_to_multiples_of_eight_inside_the_classifier():
    assert padding_for(28) == (2, 2, 2, 2) and padding_for(32) == (0, 0, 0, 0) and padding_for(9) == (3, 4, 3, 4)
    assert padding_for((12, 20)) == (2, 2, 2, 2) and padding_for(8) == (0, 0, 0, 0)
    with pytest.raises(ConfigError, match="at least 8 px"):
        DomainClassifier(image_size=7)
    torch.manual_seed(0)
    clf = DomainClassifier(in_channels=1, num_classes=3, image_size=(12, 20), width=4, feature_dim=8).eval()
    x = torch.rand(3, 1, 12, 20) * 2 - 1
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), value=-1.0)
    with torch.no_grad():
        assert torch.equal(clf.features(x), clf.embed(clf.body(padded)))
        extractor = build_feature_extractor("classifier", classifier=clf, progress=False)
        np.testing.assert_allclose(extractor(x), clf.features(x).numpy(), rtol=1e-6, atol=1e-6)  # no resize


def test_folder_classifier_lands_next_to_the_data_and_serves_a_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("UQBENCH_CACHE", str(tmp_path / "cache"))
    from benchmark.execution.inputs_digest import data_files, path_sha256

    data = labelled_folder(tmp_path / "shapes")
    digest = path_sha256(data)
    assert train(data) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    path = data / CLASSIFIER_FILE
    assert summary["classifier"] == str(path) and path.is_file() and default_classifier_path(data) == path
    assert summary["num_classes"] == 3 and summary["padding_lrtb"] == [2, 2, 2, 2] and summary["steps"] == 1
    clf = DomainClassifier.load(path)
    record = clf.trained_on
    assert clf.image_size == 28 and clf.num_classes == 3 and clf.padding == (2, 2, 2, 2)
    assert record["fingerprint"] == data_fingerprint(data) and record["image_size"] == [28, 28]
    assert record["padded_size"] == [32, 32] and record["num_classes"] == 3 and record["channels"] == 1

    tiny_model_folder(tmp_path / "model")
    (tmp_path / "run.toml").write_text(run_config("shapes"))
    config = parse_config({"run": {}, "model": {"path": "model"}, "data": {"path": "shapes"}},
                          source=str(tmp_path / "run.toml"))
    preset = presets.for_run(None, config.model, config.data)
    assert preset.classifier == path and preset.load_classifier().trained_on == record
    assert path_sha256(data) == digest and data_files(config) == [str(data), str(path)]  # hashed apart (resume)
    assert main(["run", "--config", str(tmp_path / "run.toml"), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    fid = metrics[metrics.metric == "fid_all[classifier]"].value
    assert len(fid) == 1 and np.isfinite(fid).all()
    assert "realism_oracle" in set(metrics[metrics.metric.str.endswith("[classifier]")].estimator)


def test_npz_classifier_beside_the_array_and_stale_ones_refused(tmp_path, capsys):
    data = labelled_npz(tmp_path / "toy.npz")
    assert train(data) == 0
    path = tmp_path / f"toy.{CLASSIFIER_FILE}"
    assert path.is_file() and default_classifier_path(data) == path
    assert "held-out" in json.loads(capsys.readouterr().out.strip().splitlines()[-1])["accuracy_on"]
    tiny_model_folder(tmp_path / "model")
    config = parse_config({"run": {}, "model": {"path": "model"}, "data": {"path": "toy.npz"}},
                          source=str(tmp_path / "run.toml"))
    assert presets.for_run(None, config.model, config.data).load_classifier().num_classes == 3

    rng = np.random.default_rng(5)  # the same classes, other images: the recorded fingerprint no longer matches
    with np.load(data) as blob:
        images, labels = blob["images"], blob["labels"]
    np.savez(data, images=rng.permutation(images), labels=labels)
    with pytest.raises(ConfigError, match="data changed since") as err:
        presets.for_run(None, config.model, config.data).load_classifier()
    assert "train --what classifier --data" in str(err.value)
    np.savez(data, images=images, labels=labels % 2)  # 2 classes now
    with pytest.raises(ConfigError, match="it has 3 classes, the data 2"):
        presets.for_run(None, config.model, config.data).load_classifier()
    (tmp_path / "run.toml").write_text(run_config("toy.npz"))  # the CLI refuses it before writing anything
    assert main(["run", "--config", str(tmp_path / "run.toml"), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert "data.classifier" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_out_elsewhere_with_the_data_classifier_key(tmp_path, capsys):
    data = labelled_npz(tmp_path / "toy.npz")
    elsewhere = tmp_path / "clf" / "mine.pt"
    assert train(data, "--out", str(elsewhere)) == 0
    assert elsewhere.is_file() and not default_classifier_path(data).exists()
    assert "[data] classifier" in json.loads(capsys.readouterr().out.strip().splitlines()[-1])["runs_find_it"]
    tiny_model_folder(tmp_path / "model")
    section = {"path": "toy.npz", "classifier": "clf/mine.pt"}
    config = parse_config({"run": {}, "model": {"path": "model"}, "data": section}, source=str(tmp_path / "c.toml"))
    assert config.data == DataSpec(path=str(data), classifier=str(elsewhere))
    assert presets.for_run(None, config.model, config.data).load_classifier().trained_on["data"] == str(data)
    assert presets.for_run(presets.get("digits"), None, config.data).classifier == elsewhere  # replaces the base's
    other = labelled_folder(tmp_path / "other", per_class=4, size=16)  # a classifier of 28 px images: refused
    with pytest.raises(ConfigError, match="takes 1x28x28 images"):
        presets.for_run(None, config.model, DataSpec(path=str(other), classifier=str(elsewhere))).load_classifier()
    with pytest.raises(ConfigError, match="data.classifier"):
        parse_config({"run": {}, "model": {"path": "model"}, "data": {"path": "toy.npz", "classifier": "no.pt"}},
                     source=str(tmp_path / "c.toml"))


@pytest.mark.parametrize("argv, field", [
    (["--what", "diffusion", "--data", "x", "--out", "o"], "--data"),
    (["--what", "classifier", "--data", "x", "--dataset", "digits"], "--dataset / --data"),
    (["--what", "classifier", "--dataset", "digits", "--range", "0,1", "--out", "o"], "--range"),
    (["--what", "classifier", "--data", "missing_folder"], "--data"),
])
def test_train_arguments_are_checked(tmp_path, monkeypatch, capsys, argv, field):
    monkeypatch.chdir(tmp_path)
    assert main(["train", *argv]) == 2
    assert capsys.readouterr().err.startswith(f"error: {field} = ") and not any(tmp_path.iterdir())


@pytest.mark.parametrize("case", ["unlabelled folder", "unlabelled npz", "one class", "7 px"])
def test_unusable_data_is_refused_with_exit_2_and_nothing_written(tmp_path, capsys, case):
    rng = np.random.default_rng(2)
    if case == "unlabelled folder":
        data = tmp_path / "flat"
        data.mkdir()
        for i in range(6):
            Image.fromarray(toy_image(i % 3, rng), "L").save(data / f"{i}.png")
    elif case == "unlabelled npz":
        data = tmp_path / "flat.npz"
        np.savez(data, images=rng.integers(0, 256, (6, 1, 28, 28), dtype=np.uint8))
    elif case == "one class":
        data = tmp_path / "one.npz"
        np.savez(data, images=rng.integers(0, 256, (6, 1, 28, 28), dtype=np.uint8), labels=np.zeros(6, np.int64))
    else:
        data = tmp_path / "tiny"
        for name in SHAPES:
            (data / name).mkdir(parents=True)
            for i in range(2):
                Image.fromarray(rng.integers(0, 256, (7, 7), dtype=np.uint8), "L").save(data / name / f"{i}.png")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert train(data) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: --data = ") and "Fix:" in err
    assert {"unlabelled folder": "no class subfolders", "unlabelled npz": "no labels", "one class": "at least 2",
            "7 px": "at least 8x8 px"}[case] in err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
