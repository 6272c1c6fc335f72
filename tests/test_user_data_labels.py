"""Class labels of a [data] section: class subfolders of an image folder, or an .npz's label arrays.

A class-conditional user model needs them (its BayesDiff posterior is fitted on labelled images, sparsification
denoises real images under their labels); without them, or with more classes than the model has, the run is
refused with exit 2 before anything is written.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from benchmark import presets
from benchmark.config import parse_config
from benchmark.data.user_data import DataSpec, class_names, load_image_array, load_image_folder
from benchmark.errors import ConfigError
from tests.helpers import tiny_unet
from tests.test_user_data import save_pngs

RNG = np.random.default_rng(7)


def _grey(n: int) -> np.ndarray:
    return RNG.integers(0, 256, (n, 8, 8), dtype=np.uint8)


def test_class_subfolders_label_images_with_one_index_per_class_over_both_splits(tmp_path):
    data = tmp_path / "data"
    shirts, boots, coats = _grey(3), _grey(2), _grey(2)
    save_pngs(data / "train" / "shirt", shirts, "L")
    save_pngs(data / "train" / "boot", boots, "L")
    save_pngs(data / "test" / "coat", coats, "L")  # a class only the test split has
    save_pngs(data / "test" / "shirt", shirts[:1], "L")
    spec = DataSpec(path=str(data))
    train, test = spec.load("train"), spec.load("test")
    assert train.num_classes == test.num_classes == 3  # boot 0, coat 1, shirt 2
    assert train.labels.tolist() == [0, 0, 2, 2, 2] and test.labels.tolist() == [1, 1, 2]
    np.testing.assert_array_equal(train.images[:2, 0].numpy(), boots / np.float32(127.5) - 1)
    assert spec.load("train", n=3).labels.tolist() == [0, 0, 2]


def test_other_layouts_carry_no_labels(tmp_path):
    save_pngs(tmp_path / "flat", _grey(3), "L")
    save_pngs(tmp_path / "one" / "only", _grey(3), "L")  # one class: no labels to speak of
    save_pngs(tmp_path / "deep" / "a" / "x", _grey(2), "L")
    save_pngs(tmp_path / "deep" / "b", _grey(2), "L")
    save_pngs(tmp_path / "mixed" / "a", _grey(2), "L")
    save_pngs(tmp_path / "mixed", _grey(1), "L")  # an image beside the class folders
    for name in ("flat", "one", "deep", "mixed"):
        assert class_names([tmp_path / name]) is None, name
        assert DataSpec(path=str(tmp_path / name)).load("test").labels is None, name
    assert load_image_folder(tmp_path / "flat").num_classes is None


def test_npz_label_arrays(tmp_path):
    images = RNG.integers(0, 256, (5, 1, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "one.npz", images=images, labels=np.array([0, 3, 1, 1, 0]))
    one = load_image_array(tmp_path / "one.npz", "train")
    assert one.labels.tolist() == [0, 3, 1, 1, 0] and one.num_classes == 4 and len(one) == 5
    np.savez(tmp_path / "split.npz", train=images, test=images[:2], train_labels=np.array([0, 1, 0, 1, 0]),
             test_labels=np.array([2, 0]))
    assert load_image_array(tmp_path / "split.npz", "test").labels.tolist() == [2, 0]
    assert load_image_array(tmp_path / "split.npz", "train").num_classes == 3  # over both splits
    np.savez(tmp_path / "bad.npz", images=images, labels=np.array([0.5, 1, 0, 1, 0]))
    with pytest.raises(ConfigError, match="integer class labels"):
        load_image_array(tmp_path / "bad.npz", "train")
    np.savez(tmp_path / "short.npz", images=images, labels=np.array([0, 1]))
    with pytest.raises(ConfigError, match="5 integer class labels"):
        load_image_array(tmp_path / "short.npz", "train")


def _conditional_model(folder, classes: int) -> None:
    from diffusers import DDPMScheduler

    tiny_unet(num_classes=classes).save_pretrained(folder / "unet")
    DDPMScheduler().save_pretrained(folder / "scheduler")
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "DDPMPipeline"}))


def _factory(tmp_path, data: str):
    from benchmark.runner.resources import estimator_factory

    config = parse_config({"run": {"steps": 20}, "model": {"path": "model"}, "data": {"path": data},
                           "estimators": {"bayesdiff": {"fit_images": 6}}}, source=str(tmp_path / "config.toml"))
    preset = presets.for_run(None, config.model, config.data)
    model = preset.load_model()
    return model, estimator_factory(config, model, preset, progress=False)


def test_a_class_conditional_user_model_fits_its_posterior_on_labelled_folders(tmp_path):
    _conditional_model(tmp_path / "model", 3)
    for name in ("a", "b", "c"):
        save_pngs(tmp_path / "labelled" / name, _grey(2), "L")
    model, factory = _factory(tmp_path, "labelled")
    assert model.num_classes == 3
    [bayesdiff] = [est for est in factory() if est.name == "bayesdiff"]
    x_T = torch.randn(2, *model.sample_shape)
    from benchmark.sampling import sample

    out = sample(model, x_T, steps=5, estimators=[bayesdiff], y=torch.tensor([0, 2]))
    assert torch.isfinite(out.uncertainty["bayesdiff"].pixel).all()


def test_unlabelled_data_fits_with_uniform_labels_and_foreign_classes_are_refused(tmp_path):
    """Issue 25 item 7: a class-conditional model without a null class, on an unlabelled folder, fits its posterior
    on labels drawn uniformly from its classes (seeded) and says so; sparsification still needs labels and says
    so; more classes than the model knows are refused."""
    _conditional_model(tmp_path / "model", 3)
    save_pngs(tmp_path / "flat", _grey(6), "L")
    model, factory = _factory(tmp_path, "flat")
    assert factory.posterior_choice.fit_labels.startswith("uniform random labels over the model's 3 classes")
    assert factory.posterior_choice.record()["fit_labels"] == factory.posterior_choice.fit_labels
    from benchmark.data.user_data import load_image_data
    from benchmark.runner.resources import fit_labels

    data = load_image_data(tmp_path / "flat", "train")
    first, _ = fit_labels(model, data, seed=0)
    again, _ = fit_labels(model, data, seed=0)
    assert torch.equal(first, again) and int(first.min()) >= 0 and int(first.max()) < 3
    from benchmark.runner.resources import check_labels

    with pytest.raises(ConfigError, match="without class labels.*class-conditional.*sparsification.*subfolder"):
        check_labels(model, data, "test", why="the sparsification protocol re-noises labelled test images")
    for name in ("a", "b", "c", "d"):
        save_pngs(tmp_path / "four" / name, _grey(2), "L")
    with pytest.raises(ConfigError, match="4 classes.*at most the model's 3"):
        _factory(tmp_path, "four")


def test_a_model_with_a_null_class_fits_the_unconditional_branch_on_unlabelled_data():
    """A classifier-free-guidance model (null condition K) on unlabelled images: every fit image gets class K."""
    from types import SimpleNamespace

    from benchmark.runner.resources import fit_labels

    model = SimpleNamespace(num_classes=4, null_condition=4, cycled_conditions=False)
    data = SimpleNamespace(images=torch.zeros(5, 1, 8, 8), labels=None, num_classes=None, name="flat")
    labels, how = fit_labels(model, data, seed=0)
    assert labels.tolist() == [4] * 5 and how.startswith("the null class (4)")
