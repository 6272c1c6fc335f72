"""`[model] factory` (issue 25, item 1): diffusers' schedules bit for bit, v- and x0-prediction mapped to eps by the
closed form, the last layer's input captured by a hook (Laplace on a Conv2d and a Linear last layer), labels of a
class-conditional network, weights in .pth and .safetensors, the shape taken from the data, the table written back."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from benchmark import presets
from benchmark.config import parse_config
from benchmark.data.user_data import DataSpec
from benchmark.execution.run_dir import differences
from benchmark.models.factory import FactorySpec, factory_spec_from_section
from benchmark.models.loading import model_spec_from_section
from benchmark.models.schedules import schedule_alphas_cumprod

SHAPE = (1, 8, 8)


# ------------------------------------------------------------------------------------------ networks by factory
class ConvNet(nn.Module):
    """A time- (and optionally label-) embedded conv net whose output is conv_out's."""

    def __init__(self, channels: int = 1, width: int = 8, num_classes: int | None = None, dropout: float = 0.0):
        super().__init__()
        self.time = nn.Embedding(1000, width)
        self.label = nn.Embedding(num_classes, width) if num_classes else None
        self.conv_in = nn.Conv2d(channels, width, 3, padding=1)
        self.body = nn.Sequential(nn.SiLU(), nn.Dropout(dropout), nn.Conv2d(width, width, 3, padding=1), nn.SiLU())
        self.conv_out = nn.Conv2d(width, channels, 3, padding=1)
        self.seen_labels: list[torch.Tensor] = []

    def forward(self, x, t, y=None):
        h = self.conv_in(x) + self.time(t)[:, :, None, None]
        if self.label is not None:
            self.seen_labels.append(y)
            h = h + self.label(y)[:, :, None, None]
        return self.conv_out(self.body(h))


class MLPNet(nn.Module):
    """A flattening MLP whose last layer is an nn.Linear of C*H*W outputs (row-major reshape to [B,C,H,W])."""

    def __init__(self, shape=SHAPE, hidden: int = 16):
        super().__init__()
        self.shape, size = shape, int(np.prod(shape))
        self.hidden = nn.Sequential(nn.Linear(size + 1, hidden), nn.Tanh())
        self.head = nn.Linear(hidden, size)

    def forward(self, x, t):
        features = self.hidden(torch.cat([x.flatten(1), t.float()[:, None] / 1000], dim=1))
        return self.head(features).view(-1, *self.shape)


class PointMass(nn.Module):
    """The exact denoiser of data that is one point c: eps = (x_t - a_t c) / s_t, output as `prediction_type` says."""

    def __init__(self, center: torch.Tensor, alphas_cumprod: torch.Tensor, prediction_type: str):
        super().__init__()
        self.register_buffer("center", center)
        self.register_buffer("ab", alphas_cumprod.to(torch.float32))
        self.prediction_type = prediction_type

    def forward(self, x, t):
        ab = self.ab[t].view(-1, 1, 1, 1)
        a, s = ab.sqrt(), (1 - ab).sqrt()
        eps = (x - a * self.center) / s
        return {"epsilon": eps, "v_prediction": a * eps - s * self.center,
                "sample": self.center.expand_as(x)}[self.prediction_type]


def make_conv() -> nn.Module:
    torch.manual_seed(0)
    return ConvNet()


def make_conditional() -> nn.Module:
    torch.manual_seed(0)
    return ConvNet(num_classes=3)


def make_dropout() -> nn.Module:
    torch.manual_seed(0)
    return ConvNet(dropout=0.2)


def make_mlp() -> nn.Module:
    torch.manual_seed(0)
    return MLPNet()


CENTER = torch.linspace(-0.8, 0.8, 64).view(*SHAPE)
SCHEDULE = schedule_alphas_cumprod("scaled_linear", 1000, 0.00085, 0.012)


def make_point_epsilon() -> nn.Module:
    return PointMass(CENTER, SCHEDULE, "epsilon")


def make_point_v() -> nn.Module:
    return PointMass(CENTER, SCHEDULE, "v_prediction")


def make_point_sample() -> nn.Module:
    return PointMass(CENTER, SCHEDULE, "sample")


def spec(function: str, **fields) -> FactorySpec:
    """A FactorySpec of one of this module's factories ("package.module:function" form)."""
    return factory_spec_from_section({"factory": f"tests.test_factory_models:{function}",
                                      "sample_shape": list(SHAPE), **fields})


# ------------------------------------------------------------------------------------------ schedules
@pytest.mark.parametrize("config", [
    {},  # diffusers' defaults: linear 1e-4 .. 0.02, 1000 steps
    {"beta_schedule": "linear", "beta_start": 0.0002, "beta_end": 0.03, "num_train_timesteps": 500},
    {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "num_train_timesteps": 1000},
    {"beta_schedule": "squaredcos_cap_v2", "num_train_timesteps": 1000},
    {"beta_schedule": "squaredcos_cap_v2", "num_train_timesteps": 50},
], ids=["default", "linear", "scaled_linear", "cosine", "cosine50"])
def test_schedules_equal_diffusers_ddpm_scheduler_bit_for_bit(config):
    from diffusers import DDPMScheduler

    expected = DDPMScheduler(**config).alphas_cumprod.to(torch.float64)
    model = spec("make_conv", **config).load()
    assert model.alphas_cumprod.dtype == torch.float64 and model.num_train_timesteps == expected.numel()
    assert torch.equal(model.alphas_cumprod, expected)


def test_alphas_cumprod_file_is_the_schedule(tmp_path):
    ab = schedule_alphas_cumprod("squaredcos_cap_v2", 200).numpy()
    np.save(tmp_path / "ab.npy", ab)
    model = spec("make_conv", alphas_cumprod=str(tmp_path / "ab.npy")).load()
    assert torch.equal(model.alphas_cumprod, torch.from_numpy(ab))
    written = spec("make_conv", alphas_cumprod=str(tmp_path / "ab.npy"))
    assert (written.beta_schedule, written.beta_start, written.num_train_timesteps) == (None, None, None)


# ------------------------------------------------------------------------------------------ prediction types
def test_v_and_x0_prediction_map_to_the_exact_eps_at_every_timestep():
    """Data that is one point c: every parameterisation of its exact denoiser gives eps = (x_t - a_t c) / s_t."""
    torch.manual_seed(1)
    x0 = CENTER.expand(6, *SHAPE)
    noise = torch.randn(6, *SHAPE)
    t = torch.tensor([0, 10, 250, 500, 900, 999])
    ab = SCHEDULE[t].view(-1, 1, 1, 1)
    x_t = (ab.sqrt() * x0 + (1 - ab).sqrt() * noise).float()
    truth = ((x_t.double() - ab.sqrt() * CENTER.double()) / (1 - ab).sqrt()).float()  # = noise, in float64
    table = dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    for function, kind in (("make_point_epsilon", "epsilon"), ("make_point_v", "v_prediction"),
                           ("make_point_sample", "sample")):
        model = spec(function, prediction_type=kind, **table).load()
        eps = model.eps(x_t, t)
        torch.testing.assert_close(eps, truth, rtol=1e-4, atol=1e-4 if kind != "sample" else 2e-3)
        output = model.network(x_t, t)  # and the closed form itself, row by row
        a, s = ab.sqrt().float(), (1 - ab).sqrt().float()
        closed = {"epsilon": output, "v_prediction": a * output + s * x_t, "sample": (x_t - a * output) / s}[kind]
        torch.testing.assert_close(eps, closed, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", ["v_prediction", "sample"])
def test_v_and_x0_prediction_models_feed_laplace_through_the_exact_map_to_eps(kind):
    """eps = c_x x_t + c_t layer(features): the posterior's mean is the model's eps and Var[eps] = c_t^2 Var[output]
    (brute-force Monte Carlo checks: tests/test_laplace_prediction_types.py); bayesdiff is no longer refused."""
    import estimators
    from benchmark.models.prediction import output_to_eps_scale
    from benchmark.sampling import initial_noise, sample
    from estimators.laplace import LastLayerLaplace, predictive_variance

    model = spec("make_conv", last_layer="conv_out", prediction_type=kind).load()
    assert model.last_layer is model.network.conv_out
    la = LastLayerLaplace(model).fit([torch.rand(4, *SHAPE) * 2 - 1], progress=False)
    x, t = torch.randn(3, *SHAPE), torch.tensor([5, 500, 990])
    mean, var = la.predictive(x, t)
    torch.testing.assert_close(mean, model.eps(x, t), rtol=1e-4, atol=1e-4)
    inverse = {k: v.reciprocal() for k, v in la.posterior_precision.items()}
    var_output = predictive_variance(la.layer, model.features(x, t), inverse)
    scale = output_to_eps_scale(model.alphas_cumprod[t], kind).float().view(-1, 1, 1, 1)
    torch.testing.assert_close(var, scale.square() * var_output)
    x_T = initial_noise(0, torch.arange(2), model.sample_shape)
    result = sample(model, x_T, steps=3, estimators=[estimators.create("bayesdiff", laplace=la, skip=1)], seed=0,
                    indices=torch.arange(2))
    assert bool(torch.isfinite(result.uncertainty["bayesdiff"].pixel).all())


# ------------------------------------------------------------------------------------------ last layer, Laplace
@pytest.mark.parametrize("function, layer", [("make_conv", "conv_out"), ("make_mlp", "head")])
def test_last_layer_features_reproduce_eps_and_feed_laplace(function, layer):
    from estimators.laplace import LastLayerLaplace

    model = spec(function, last_layer=layer).load()
    assert isinstance(model.last_layer, (nn.Conv2d, nn.Linear))
    x, t = torch.randn(3, *SHAPE), torch.tensor([5, 500, 990])
    eps, features = model.eps_and_features(x, t)
    torch.testing.assert_close(model.last_layer(features).reshape(eps.shape), eps)
    assert model.nfe_counter["sampler"] == 3  # one evaluation for both

    la = LastLayerLaplace(model).fit([torch.rand(4, *SHAPE) * 2 - 1], progress=False)
    mean, var = la.predictive(x, t)
    torch.testing.assert_close(mean, eps)
    assert var.shape == eps.shape and bool((var > 0).all())


def test_class_conditional_network_gets_the_labels():
    model = spec("make_conditional", num_classes=3).load()
    y = torch.tensor([2, 0])
    model.eps(torch.randn(2, *SHAPE), 100, y)
    assert torch.equal(model.network.seen_labels[-1], y)
    with pytest.raises(Exception, match="y"):
        model.eps(torch.randn(2, *SHAPE), 100)  # a class-conditional network needs labels


def test_dropout_layers_serve_mc_dropout():
    assert not spec("make_conv").load().has_dropout
    model = spec("make_dropout").load()
    assert model.has_dropout and not model.network.training
    x = torch.randn(2, *SHAPE)
    with model.dropout_active():
        assert not torch.equal(model.eps(x, 100), model.eps(x, 100))  # dropout masks differ between calls
    torch.testing.assert_close(model.eps(x, 100), model.eps(x, 100))


# ------------------------------------------------------------------------------------------ weights, files
@pytest.mark.parametrize("suffix", [".pth", ".pt", ".safetensors"])
def test_weights_are_loaded_into_the_network(tmp_path, suffix):
    torch.manual_seed(7)
    trained = ConvNet()
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(trained.state_dict(), str(path))
    else:
        torch.save(trained.state_dict(), path)
    model = spec("make_conv", weights=str(path)).load()
    for name, tensor in trained.state_dict().items():
        assert torch.equal(model.network.state_dict()[name], tensor), name


def test_relative_files_resolve_against_the_config_folder_and_the_table_round_trips(tmp_path, monkeypatch):
    folder = tmp_path / "cfg"
    folder.mkdir()
    (folder / "glue.py").write_text("from tests.test_factory_models import make_conv\n")
    torch.save(make_conv().state_dict(), folder / "w.pth")
    monkeypatch.chdir(tmp_path)  # not the config's folder
    (folder / "run.toml").write_text('[run]\nsteps = 5\nnum_samples = 4\nkeep = 3\n\n[model]\n'
                                     'factory = "glue.py:make_conv"\nweights = "w.pth"\n'
                                     'beta_schedule = "squaredcos_cap_v2"\nsample_shape = [1, 8, 8]\n'
                                     '\n[protocols.cost]\n')
    from benchmark.config import load_config

    config = load_config(folder / "run.toml")
    assert config.model.factory == f"{folder / 'glue.py'}:make_conv" and config.model.weights == str(folder / "w.pth")
    saved = json.loads(json.dumps(config.to_dict()))  # config.json: a resume compares it with the config
    assert differences(saved, config.to_dict()) == []
    again = model_spec_from_section(saved["model"])  # the table a manifest stores, read back
    assert again == config.model
    model = again.load()
    assert model.source == config.model.factory and not hasattr(model, "local_dir")


def test_sample_shape_comes_from_the_data_when_absent(tmp_path):
    np.savez(tmp_path / "d.npz", train=np.zeros((3, 8, 8, 1), np.uint8), test=np.zeros((2, 8, 8, 1), np.uint8))
    table = factory_spec_from_section({"factory": "tests.test_factory_models:make_conv"})
    assert table.sample_shape is None
    bundle = presets.for_run(None, table, DataSpec(path=str(tmp_path / "d.npz")))
    assert bundle.model.sample_shape == list(SHAPE) and bundle.load_model().sample_shape == SHAPE
    config = parse_config({"run": {"steps": 5, "num_samples": 4, "keep": 3},
                           "model": {"factory": "tests.test_factory_models:make_conv"}, "protocols": {"cost": {}}})
    assert config.model.sample_shape is None  # as written: the shape is the data's, not the config's


def make_conditional_dropout() -> nn.Module:
    torch.manual_seed(0)
    return ConvNet(num_classes=3, dropout=0.1)


def test_class_conditional_network_with_dropout_runs_every_estimator_through_the_cli(tmp_path, capsys):
    from benchmark.cli import main
    from tests.test_bad_inputs import to_toml

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", train=rng.integers(0, 256, (12, 1, 8, 8), dtype=np.uint8),
             train_labels=rng.integers(0, 3, 12), test=rng.integers(0, 256, (6, 1, 8, 8), dtype=np.uint8),
             test_labels=rng.integers(0, 3, 6))
    config = {
        "run": {"steps": 4, "num_samples": 6, "keep": 4, "batch_size": 3, "bootstrap": 10, "features": []},
        "model": {"factory": "tests.test_factory_models:make_conditional_dropout", "num_classes": 3,
                  "last_layer": "conv_out", "beta_schedule": "squaredcos_cap_v2"},
        "data": {"path": "d.npz"},
        "estimators": {"sensitivity": {"m": 2, "window": [25, 50]}, "mc_dropout": {"m": 2, "window": [25, 50]},
                       "bayesdiff": {"fit_images": 8, "mc_samples": 3}},
        "protocols": {"sparsification": {"num_images": 3, "fractions": 5}, "cost": {}},
    }
    (tmp_path / "run.toml").write_text(to_toml(config))
    code = main(["run", "--config", str(tmp_path / "run.toml"), "--out", str(tmp_path / "out"), "--quiet"])
    assert code == 0, capsys.readouterr().err
    import pandas as pd

    metrics = pd.read_csv(tmp_path / "out" / "metrics.csv")
    ause = metrics[(metrics.protocol == "sparsification") & (metrics.metric == "ause")].set_index("estimator").value
    assert set(ause.index) == {"random", "sensitivity", "mc_dropout", "bayesdiff"} and np.isfinite(ause).all()
