"""Last-layer Laplace: curvature and predictive variance against references not computed by the code under test.

References: laplace-torch (linear last layer; run in a subprocess, see `run_laplace_torch`), per-output autograd
Jacobians and per-example autograd gradients (GGN / empirical Fisher), Monte Carlo over last-layer weight draws
(predictive variance), and the data-independent bias curvature (images x output positions).
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from benchmark.errors import CapabilityError, ConfigError, MissingAssetError
from benchmark.models import DiffusersUNet, DiffusionModel, linear_beta_alphas_cumprod
from estimators.laplace import (
    LastLayerLaplace,
    conv_ef_diagonal,
    conv_ggn_diagonal,
    default_path,
    linear_ef_diagonal,
    linear_ggn_diagonal,
    predictive_variance,
)
from tests import reference_libs
from tests.helpers import tiny_unet

pytestmark = pytest.mark.usefixtures("single_thread")  # tiny nets: one thread is faster on a shared CPU

SHAPE = (1, 2, 3)  # C, H, W of the MLP model: 6 outputs


class MLPEps(DiffusionModel):
    """eps = Linear(tanh(Linear(flatten(x)))) reshaped to [B,1,2,3]; ignores t (a plain regression net)."""

    def __init__(self, hidden: int = 5, seed: int = 0) -> None:
        super().__init__(alphas_cumprod=linear_beta_alphas_cumprod(), sample_shape=SHAPE)
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(6, hidden), nn.Tanh(), nn.Linear(hidden, 6))

    @property
    def last_layer(self) -> nn.Module:
        return self.net[3]

    def predict_features(self, x, t, y=None):
        return self.net[:3](x)

    def predict_eps(self, x, t, y=None):
        return self.net(x).view(-1, *SHAPE)


class ConvEps(DiffusionModel):
    """eps = first C channels of conv_out(tanh(conv_in(x))); a conv last layer of the given geometry."""

    def __init__(self, conv_out: nn.Conv2d, channels: int = 2, size: int = 6) -> None:
        super().__init__(alphas_cumprod=linear_beta_alphas_cumprod(), sample_shape=(channels, size, size))
        self.conv_in = nn.Conv2d(channels, conv_out.in_channels, 3, padding=1)
        self.conv_out = conv_out

    @property
    def last_layer(self) -> nn.Module:
        return self.conv_out

    def predict_features(self, x, t, y=None):
        return torch.tanh(self.conv_in(x))

    def predict_eps(self, x, t, y=None):
        return self.conv_out(self.predict_features(x, t))[:, : self.sample_shape[0]]


CONV_CASES = {  # (conv_out, eps channels) — learned variance, strided/dilated/grouped/reflect, even "same"
    "3x3-learned-variance": lambda: (nn.Conv2d(4, 2, 3, padding=1), 1),
    "stride-dilation-groups-reflect": lambda: (nn.Conv2d(4, 4, 3, stride=2, padding=2, dilation=2, groups=2,
                                                         padding_mode="reflect"), 4),
    "even-kernel-same": lambda: (nn.Conv2d(4, 2, 4, padding="same"), 2),
}


def jacobian_ggn(layer: nn.Module, features: torch.Tensor, out_slice) -> dict[str, torch.Tensor]:
    """Brute force: sum_n sum_outputs (d out / d theta)^2 with one autograd Jacobian per example."""
    params = dict(layer.named_parameters())
    total = {k: torch.zeros_like(v, dtype=torch.float64) for k, v in params.items()}
    for x in features:
        def out_of(*values):
            return out_slice(torch.func.functional_call(layer, dict(zip(params, values)), (x[None],))).flatten()
        jac = torch.func.jacrev(out_of, argnums=tuple(range(len(params))))(*(p.detach() for p in params.values()))
        for name, j in zip(params, jac):
            total[name] += j.double().pow(2).sum(0)
    return total


def per_example_ef(layer: nn.Module, features: torch.Tensor, targets: torch.Tensor, out_slice
                   ) -> dict[str, torch.Tensor]:
    """Brute force: sum_n (grad of ||out_n - y_n||^2 / 2)^2 by autograd, one example at a time."""
    total = {k: torch.zeros_like(v, dtype=torch.float64) for k, v in layer.named_parameters()}
    for x, y in zip(features, targets):
        layer.zero_grad()
        (0.5 * (out_slice(layer(x[None])) - y[None]).pow(2).sum()).backward()
        for name, p in layer.named_parameters():
            total[name] += p.grad.double().pow(2)
    return total


# ------------------------------------------------------------------------------------ curvature
@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_conv_ggn_and_ef_match_bruteforce(case):
    torch.manual_seed(1)
    layer, eps_channels = CONV_CASES[case]()
    features = torch.randn(3, 4, 7, 7)
    head = lambda out: out[:, :eps_channels]  # noqa: E731 - only eps channels enter the likelihood
    expected = jacobian_ggn(layer, features, head)
    got = conv_ggn_diagonal(layer, features, eps_channels)
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        out = layer(features)
    targets = torch.randn_like(out[:, :eps_channels])
    residual = torch.zeros_like(out)
    residual[:, :eps_channels] = out[:, :eps_channels] - targets
    expected_ef = per_example_ef(layer, features, targets, head)
    got_ef = conv_ef_diagonal(layer, features, residual)
    for name in expected_ef:
        torch.testing.assert_close(got_ef[name], expected_ef[name], rtol=1e-5, atol=1e-6)


def test_linear_ggn_and_ef_with_tokens_match_bruteforce():
    torch.manual_seed(2)
    layer = nn.Linear(5, 3)
    features = torch.randn(4, 6, 5)  # [B, tokens, D] as in a ViT decoder
    ident = lambda out: out  # noqa: E731
    expected = jacobian_ggn(layer, features, ident)
    for name, value in linear_ggn_diagonal(layer, features).items():
        torch.testing.assert_close(value, expected[name], rtol=1e-5, atol=1e-6)
    targets = torch.randn(4, 6, 3)
    with torch.no_grad():
        residual = layer(features) - targets
    expected_ef = per_example_ef(layer, features, targets, ident)
    for name, value in linear_ef_diagonal(layer, features, residual).items():
        torch.testing.assert_close(value, expected_ef[name], rtol=1e-5, atol=1e-6)


def test_update_on_unet_matches_bruteforce(unet_model):
    """GGN and EF through the real adapter (features hook on conv_out) against autograd on conv_out."""
    torch.manual_seed(3)
    x_t, eps, t = torch.randn(3, 1, 8, 8), torch.randn(3, 1, 8, 8), torch.tensor([10, 500, 990])
    features = unet_model.predict_features(x_t, t).detach()
    layer = unet_model.last_layer
    for kind, reference in (("ggn", lambda: jacobian_ggn(layer, features, lambda o: o)),
                            ("ef", lambda: per_example_ef(layer, features, eps, lambda o: o))):
        la = LastLayerLaplace(unet_model, hessian=kind)
        la.update(x_t, t, eps)
        expected = reference()
        for name in expected:
            torch.testing.assert_close(la.data_term[name], expected[name], rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(la.posterior_precision[name], (expected[name] + 1.0).float(), rtol=1e-5,
                                       atol=1e-6)


# ------------------------------------------------------------------------------------ predictive
@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_conv_predictive_matches_weight_sampling(case):
    """Closed form vs Var over 20000 weight draws (all draws in one conv: stacked output channels)."""
    torch.manual_seed(4)
    layer, eps_channels = CONV_CASES[case]()
    features = torch.randn(2, 4, 6, 6)
    inverse = {name: torch.rand_like(p) * 0.5 + 0.05 for name, p in layer.named_parameters()}
    closed = predictive_variance(layer, features, inverse)
    draws = 20000
    w = layer.weight.detach() + inverse["weight"].sqrt() * torch.randn(draws, *layer.weight.shape)
    b = layer.bias.detach() + inverse["bias"].sqrt() * torch.randn(draws, *layer.bias.shape)
    groups, per_in, per_out = layer.groups, layer.in_channels // layer.groups, layer.out_channels // layer.groups
    dense = torch.zeros(draws, layer.out_channels, layer.in_channels, *layer.kernel_size)
    for o in range(layer.out_channels):  # a grouped conv as a dense one with zero blocks
        g = o // per_out
        dense[:, o, g * per_in:(g + 1) * per_in] = w[:, o]
    with torch.no_grad():
        padded = nn.functional.pad(features, layer._reversed_padding_repeated_twice, mode=layer.padding_mode) \
            if layer.padding_mode != "zeros" else features
        out = nn.functional.conv2d(padded, dense.flatten(0, 1), b.flatten(), stride=layer.stride,
                                   padding=0 if layer.padding_mode != "zeros" else layer.padding,
                                   dilation=layer.dilation)
    mc = out.view(2, draws, layer.out_channels, *out.shape[2:]).var(1)
    assert closed.shape == mc.shape
    rel = (closed - mc).abs() / mc  # relative standard error of each MC variance: sqrt(2 / 20000) = 1 %
    assert float(rel.max()) < 0.06, float(rel.max())


def test_linear_predictive_matches_weight_sampling():
    model = MLPEps()
    la = LastLayerLaplace(model, prior_precision=2.0)
    x = torch.randn(30, *SHAPE)
    la.update(x, torch.zeros(30, dtype=torch.long), torch.randn(30, *SHAPE))
    x_test = torch.randn(4, *SHAPE)
    mean, var = la.predictive(x_test, 0)
    prec = la.posterior_precision
    layer, draws = model.last_layer, 50000
    with torch.no_grad():
        features = model.predict_features(x_test, None)
        w = layer.weight + prec["weight"].rsqrt() * torch.randn(draws, *layer.weight.shape)
        b = layer.bias + prec["bias"].rsqrt() * torch.randn(draws, *layer.bias.shape)
        out = torch.einsum("nd,sod->sno", features, w) + b[:, None, :]
    torch.testing.assert_close(mean, model.predict_eps(x_test, None).detach())
    rel = (var.flatten(1) - out.var(0)).abs() / out.var(0)
    assert float(rel.max()) < 0.05, float(rel.max())


LAPLACE_TORCH_SCRIPT = textwrap.dedent("""
    import importlib.machinery, json, sys, types
    # laplace-torch is installed --no-deps: its import chain reaches torchvision (via torchmetrics ->
    # torch_fidelity) and einops/unfoldNd/einconv/linear_operator (backpack/curvlinops), none of which is
    # installed or used for a diagonal GGN of a linear layer. Stub them in this throwaway interpreter only.
    STUBBED = ("torchvision", "einops", "unfoldNd", "einconv", "linear_operator")
    class Stub(types.ModuleType):
        def __getattr__(self, name):
            if name.startswith("__"):
                raise AttributeError(name)
            value = type(name, (), {}) if name[:1].isupper() else Stub(self.__name__ + "." + name)
            setattr(self, name, value)
            return value
    class Finder:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in STUBBED:
                return importlib.machinery.ModuleSpec(name, self, is_package=True)
        def create_module(self, spec):
            return Stub(spec.name)
        def exec_module(self, module):
            module.__path__ = []
    sys.meta_path.insert(0, Finder())
    import torch
    from laplace import Laplace
    from laplace.curvature import BackPackEF  # the public code's backend (CurvlinopsEF returns zeros here)
    data = torch.load(sys.argv[1])
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(6, data["hidden"]), torch.nn.Tanh(),
                              torch.nn.Linear(data["hidden"], 6))
    net.load_state_dict(data["state"])
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data["x"], data["y"]), batch_size=10)
    out, fitted = {}, {}
    for key, kwargs in (("ggn", {}), ("ef", {"backend": BackPackEF})):
        fitted[key] = Laplace(net, "regression", subset_of_weights="last_layer", hessian_structure="diag",
                              prior_precision=1.0, **kwargs)
        fitted[key].fit(loader)
        out[key] = fitted[key].H.tolist()
    _, f_var = fitted["ggn"](data["x_test"], pred_type="glm")
    out["var"] = torch.diagonal(f_var, dim1=-2, dim2=-1).tolist()
    print(json.dumps(out))
""")


def run_laplace_torch(tmp_path: Path, data: dict) -> dict | str:
    """laplace-torch's diag LLLA on the MLP in a fresh interpreter; the error's last line when it cannot run."""
    torch.save(data, tmp_path / "data.pt")
    (tmp_path / "ref.py").write_text(LAPLACE_TORCH_SCRIPT)
    proc = subprocess.run([sys.executable, str(tmp_path / "ref.py"), str(tmp_path / "data.pt")],
                          capture_output=True, text=True, timeout=120,
                          env=reference_libs.subprocess_env())  # laplace-torch: parity-only folder
    if proc.returncode != 0:
        return (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_linear_matches_laplace_torch(tmp_path):
    if not reference_libs.available("laplace"):  # never imported here: its import chain needs torchvision
        pytest.skip("laplace-torch is not installed in the parity-only folder (the MC tests cover the predictive)")
    model = MLPEps()
    torch.manual_seed(5)
    x, y, x_test = torch.randn(40, *SHAPE), torch.randn(40, *SHAPE), torch.randn(5, *SHAPE)
    ref = run_laplace_torch(tmp_path, {"hidden": 5, "state": model.net.state_dict(), "x": x, "y": y.flatten(1),
                                       "x_test": x_test})
    if isinstance(ref, str):
        pytest.skip(f"laplace-torch failed to run in a subprocess ({ref}); the MC tests cover the predictive")
    t = torch.zeros(40, dtype=torch.long)
    flat = lambda la: torch.cat([la.data_term["weight"].flatten(), la.data_term["bias"]])  # noqa: E731
    ggn = LastLayerLaplace(model)
    for i in range(0, 40, 10):
        ggn.update(x[i:i + 10], t[i:i + 10], y[i:i + 10])
    torch.testing.assert_close(flat(ggn), torch.tensor(ref["ggn"], dtype=torch.float64), rtol=1e-4, atol=1e-5)
    ef = LastLayerLaplace(model, hessian="ef")
    ef.update(x, t, y)
    # laplace-torch's EF is 0.5 * sum_n (grad of the summed MSE)^2 = 2 x the empirical Fisher (module docstring)
    torch.testing.assert_close(2 * flat(ef), torch.tensor(ref["ef"], dtype=torch.float64), rtol=1e-4, atol=1e-5)
    _, var = ggn.predictive(x_test, 0)
    torch.testing.assert_close(var.flatten(1), torch.tensor(ref["var"]), rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------------------------ fit, files, errors
def test_fit_counts_images_and_is_batch_size_independent(unet_model):
    images = torch.rand(30, 1, 8, 8) * 2 - 1
    la = LastLayerLaplace(unet_model).fit(images.split(8), num_images=20, progress=False)
    assert la.num_images == 20
    # the bias curvature does not depend on the data: images x output positions (8 x 8)
    torch.testing.assert_close(la.data_term["bias"], torch.tensor([20.0 * 64], dtype=torch.float64))
    assert float(la.posterior_precision["bias"]) == pytest.approx(20 * 64 + 1.0)
    other = LastLayerLaplace(unet_model).fit(images[:20].split(5), progress=False)
    torch.testing.assert_close(other.data_term["weight"], la.data_term["weight"], rtol=1e-6, atol=0)
    reseeded = LastLayerLaplace(unet_model).fit(images.split(8), num_images=20, seed=1, progress=False)
    assert not torch.allclose(reseeded.data_term["weight"], la.data_term["weight"])
    with pytest.warns(UserWarning, match="fewer than num_images"):
        LastLayerLaplace(unet_model).fit([images[:4]], num_images=10, progress=False)


def test_fit_checks_range_and_labels():
    unconditional = DiffusersUNet(tiny_unet())
    with pytest.raises(ConfigError, match=r"\[-1, 1\]"):
        LastLayerLaplace(unconditional).fit([torch.rand(4, 1, 8, 8) * 255], progress=False)
    conditional = DiffusersUNet(tiny_unet(num_classes=3))
    images, labels = torch.rand(6, 1, 8, 8) * 2 - 1, torch.tensor([0, 1, 2, 0, 1, 2])
    with pytest.raises(ConfigError, match="labels"):
        LastLayerLaplace(conditional).fit([images], progress=False)
    la = LastLayerLaplace(conditional).fit([(images, labels)], progress=False)
    assert la.num_images == 6 and bool((la.data_term["weight"] > 0).all())


def test_save_load_roundtrip_and_mismatch(tmp_path, unet_model):
    unet_model.source = str(tmp_path)
    la = LastLayerLaplace(unet_model, prior_precision=3.0, hessian="ef", sigma_noise=0.5)
    la.fit([torch.rand(6, 1, 8, 8) * 2 - 1], progress=False)
    path = la.save(default_path(unet_model))
    assert path == tmp_path / "laplace_last_layer.pt"
    loaded = LastLayerLaplace(unet_model).load(path)
    assert (loaded.hessian, loaded.prior_precision, loaded.sigma_noise, loaded.num_images) == ("ef", 3.0, 0.5, 6)
    for name, value in la.posterior_precision.items():
        torch.testing.assert_close(loaded.posterior_precision[name], value)
    other = ConvEps(nn.Conv2d(4, 2, 3, padding=1), channels=2, size=8)
    with pytest.raises(ConfigError, match="fitted for a last layer"):
        LastLayerLaplace(other).load(path)
    torch.save({"something": "else"}, tmp_path / "bad.pt")
    with pytest.raises(ConfigError, match="version"):
        LastLayerLaplace(unet_model).load(tmp_path / "bad.pt")
    with pytest.raises(MissingAssetError, match="fit"):
        LastLayerLaplace(unet_model).load(tmp_path / "absent.pt")
    unet_model.source = None
    with pytest.raises(MissingAssetError, match="local folder"):
        default_path(unet_model)


def test_refuses_models_without_last_layer_and_unfitted_use(gmm, unet_model):
    with pytest.raises(CapabilityError, match="GaussianMixtureModel.*last_layer|last_layer.*GaussianMixtureModel"):
        LastLayerLaplace(gmm)
    la = LastLayerLaplace(unet_model)
    with pytest.raises(MissingAssetError, match="not fitted"):
        la.posterior_precision
    with pytest.raises(ConfigError, match="hessian"):
        LastLayerLaplace(unet_model, hessian="kfac")
    with pytest.raises(ConfigError, match="prior_precision"):
        LastLayerLaplace(unet_model, prior_precision=0)
