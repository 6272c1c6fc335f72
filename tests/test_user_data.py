"""Your own model and data: [model] / [data] sections, image folders and arrays, reference statistics, the
Preset bundle, and the Laplace posterior of a user's model fitted into the run folder (never the model folder)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from benchmark import presets
from benchmark.config import parse_config
from benchmark.data.user_data import DataSpec, load_image_array, load_image_folder
from benchmark.errors import ConfigError
from benchmark.models.loading import ModelSpec
from tests.helpers import tiny_unet


def save_pngs(folder, arrays, mode: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, array in enumerate(arrays):
        Image.fromarray(array, mode=mode).save(folder / f"{i:03d}.png")


def save_model(folder, prediction_type: str = "epsilon") -> None:
    from diffusers import DDPMScheduler

    tiny_unet().save_pretrained(folder / "unet")
    DDPMScheduler(prediction_type=prediction_type).save_pretrained(folder / "scheduler")
    (folder / "model_index.json").write_text(json.dumps({"_class_name": "DDPMPipeline"}))


def test_png_folders_and_arrays_map_bytes_to_minus_one_one(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5, 6, 4, 3), dtype=np.uint8)  # N, H, W, C
    grey = rng.integers(0, 256, (3, 6, 4), dtype=np.uint8)
    save_pngs(tmp_path / "rgb", rgb, "RGB")
    save_pngs(tmp_path / "grey", grey, "L")
    data = load_image_folder(tmp_path / "rgb")
    np.testing.assert_array_equal(data.images.numpy(), rgb.transpose(0, 3, 1, 2) / np.float32(127.5) - 1)
    assert data.labels is None and data.num_classes is None and data.sample_shape == (3, 6, 4)
    np.testing.assert_array_equal(load_image_folder(tmp_path / "grey").images[:, 0].numpy(),
                                  grey / np.float32(127.5) - 1)

    np.save(tmp_path / "nhwc.npy", rgb)
    np.savez(tmp_path / "split.npz", train=rgb.transpose(0, 3, 1, 2), test=rgb[:2].transpose(0, 3, 1, 2))
    torch.testing.assert_close(load_image_array(tmp_path / "nhwc.npy", "test").images, data.images)
    assert len(load_image_array(tmp_path / "split.npz", "test")) == 2
    assert len(load_image_array(tmp_path / "split.npz", "train")) == 5

    save_pngs(tmp_path / "both" / "train", rgb, "RGB")
    save_pngs(tmp_path / "both" / "test", rgb[:2], "RGB")
    spec = DataSpec(path=str(tmp_path / "both"))
    assert (len(spec.load("train")), len(spec.load("test")), len(spec.load("train", n=3))) == (5, 2, 3)


@pytest.mark.parametrize("case, message", [
    ("mixed", "images of one shape"), ("empty", "holding .png/.jpg/.jpeg images"),
    ("float_range", "values within [0, 255]"), ("layout", "1 or 3 channels"),
])
def test_bad_data_is_refused_with_the_field(tmp_path, case, message):
    if case == "mixed":
        save_pngs(tmp_path / "d", [np.zeros((4, 4), np.uint8)], "L")
        Image.fromarray(np.zeros((5, 4), np.uint8)).save(tmp_path / "d" / "z.png")
        call = lambda: load_image_folder(tmp_path / "d")  # noqa: E731
    elif case == "empty":
        (tmp_path / "d").mkdir()
        call = lambda: load_image_folder(tmp_path / "d")  # noqa: E731
    else:
        np.save(tmp_path / "a.npy", np.full((2, 1, 4, 4), 300.0) if case == "float_range" else np.zeros((2, 5, 4, 4)))
        call = lambda: load_image_array(tmp_path / "a.npy", "test")  # noqa: E731
    with pytest.raises(ConfigError, match="data.path|data.range") as err:
        call()
    assert message in str(err.value)


def test_model_and_data_sections(tmp_path):
    save_model(tmp_path / "my_model", "v_prediction")
    save_pngs(tmp_path / "my_images", np.zeros((4, 8, 8), np.uint8), "L")
    mu, sigma = np.arange(3.0), np.eye(3) * 2
    np.savez(tmp_path / "stats.npz", mu=mu, sigma=sigma)  # clean-fid's layout: mu and sigma, no n
    config = parse_config({"run": {"steps": 20}, "model": {"path": "my_model", "last_layer": "conv_out"},
                           "data": {"path": "my_images", "reference_stats": "stats.npz"}},
                          source=str(tmp_path / "config.toml"))
    assert config.preset == "" and config.features == ("inception",)  # no domain classifier: Inception serves
    assert config.model == ModelSpec(str(tmp_path / "my_model"), last_layer="conv_out")
    assert config.to_dict()["data"] == {"path": str(tmp_path / "my_images"), "reference_stats": str(tmp_path / "stats.npz")}
    preset = presets.for_run(None, config.model, config.data)
    assert preset.name == "my_model" and preset.load_classifier() is None and preset.oracle() is None
    stats = preset.reference_stats("inception")
    np.testing.assert_array_equal(stats.mu, mu), np.testing.assert_array_equal(stats.sigma, sigma)
    assert preset.reference_stats("classifier") is None and preset.load_data("test").sample_shape == (1, 8, 8)
    model = preset.load_model()
    assert model.prediction_type == "v_prediction" and model.source == str(tmp_path / "my_model")

    as_folder = parse_config({"run": {"preset": "my_model"}}, source=str(tmp_path / "config.toml"))
    assert as_folder.model.path == str(tmp_path / "my_model")  # run.preset naming a model folder

    digits_new_data = presets.for_run(presets.get("digits"), None, config.data)
    assert digits_new_data.reference_stats("classifier") is None  # committed stats describe the digits test set
    assert digits_new_data.load_classifier() is not None and digits_new_data.num_classes == 10


@pytest.mark.parametrize("sections, field", [
    ({"model": {"path": "nowhere", "num_class": 3}}, "model.num_class"),
    ({"model": {"path": 5}}, "model.path"),
    ({"model": {"path": "m", "num_classes": 0}}, "model.num_classes"),
    ({"model": {"path": "m"}, "data": {"path": "missing_folder"}}, "data.path"),
    ({"model": {"path": "m"}, "data": {"name": "digits", "path": "x"}}, "data"),
    ({"model": {"path": "m"}, "data": {"name": "mnist"}}, "data.name"),
    ({"model": {"path": "m"}, "data": {"name": "digits", "reference_stats": "bad.npz"}}, "data.reference_stats"),
    ({"data": {"name": "digits"}}, "data"),
])
def test_bad_model_and_data_sections(tmp_path, sections, field):
    np.savez(tmp_path / "bad.npz", mean=np.zeros(3))
    with pytest.raises(ConfigError) as err:
        parse_config({"run": {}, **sections}, source=str(tmp_path / "config.toml"))
    assert str(err.value).startswith(f"{field} = ")


def test_builtin_presets_are_model_data_bundles():
    digits = presets.get("digits")
    assert isinstance(digits, presets.Preset)
    assert digits.model.path.endswith("digits") and digits.data == DataSpec(name="digits")
    assert presets.origin("digits") == "built-in" and digits.folder == "digits"
    assert presets.get("cifar10-ddpm").data is None
    with pytest.raises(ConfigError, match="is an estimator class"):
        from estimators.sensitivity import SensitivityEstimator

        presets.as_preset(SensitivityEstimator, "test", "x")


def test_bayesdiff_posterior_of_a_user_model_goes_to_the_run_folder(tmp_path):
    """A [model] folder with bayesdiff: the posterior is fitted on the [data] images and saved in the run
    folder; the model folder is left byte for byte as it was."""
    from benchmark.runner.resources import estimator_factory

    save_model(tmp_path / "my_model")
    rng = np.random.default_rng(1)
    save_pngs(tmp_path / "my_images", rng.integers(0, 256, (6, 8, 8), dtype=np.uint8), "L")
    before = {p.name: p.read_bytes() for p in (tmp_path / "my_model").rglob("*") if p.is_file()}
    config = parse_config({"run": {"steps": 20}, "model": {"path": "my_model"}, "data": {"path": "my_images"},
                           "estimators": {"bayesdiff": {"fit_images": 6}}}, source=str(tmp_path / "config.toml"))
    preset = presets.for_run(None, config.model, config.data)
    model = preset.load_model()
    factory = estimator_factory(config, model, preset, progress=False)
    run_dir = tmp_path / "run"
    factory.persist(run_dir / "laplace_last_layer.pt")
    assert (run_dir / "laplace_last_layer.pt").is_file() and factory.posterior_path == run_dir / "laplace_last_layer.pt"
    assert {p.name: p.read_bytes() for p in (tmp_path / "my_model").rglob("*") if p.is_file()} == before


def test_float_arrays_declare_their_range_and_every_encoding_gives_the_same_images(tmp_path):
    """uint8, float [0, 1] and float [-1, 1] versions of the same images load to the same values; floats all in
    [0, 1] without a declared range are refused (read as [-1, 1] they would shift every metric)."""
    from benchmark.data.user_data import data_spec_from_section

    pixels = np.random.default_rng(0).integers(0, 256, size=(3, 1, 4, 4)).astype(np.uint8)
    np.save(tmp_path / "u8.npy", pixels)
    np.save(tmp_path / "unit.npy", pixels.astype(np.float32) / 255.0)
    np.save(tmp_path / "sym.npy", pixels.astype(np.float32) / 127.5 - 1.0)
    reference = load_image_array(tmp_path / "u8.npy", "test").images
    for name, declared in (("unit.npy", "0,1"), ("sym.npy", "-1,1"), ("sym.npy", None)):
        images = load_image_array(tmp_path / name, "test", declared).images
        np.testing.assert_allclose(images.numpy(), reference.numpy(), rtol=0, atol=1e-6)
    with pytest.raises(ConfigError, match="data.range") as err:
        load_image_array(tmp_path / "unit.npy", "test")
    assert 'range = "0,1"' in str(err.value)
    spec = data_spec_from_section({"path": "unit.npy", "range": "0,1"}, base_dir=tmp_path)
    assert spec.value_range == "0,1" and np.allclose(spec.load("test").images.numpy(), reference.numpy(), atol=1e-6)
    with pytest.raises(ConfigError, match="data.range"):
        data_spec_from_section({"path": "unit.npy", "range": "0-1"}, base_dir=tmp_path)
    np.save(tmp_path / "nan.npy", np.full((2, 1, 4, 4), np.nan, dtype=np.float32))
    with pytest.raises(ConfigError, match="NaN or infinite"):
        load_image_array(tmp_path / "nan.npy", "test")
