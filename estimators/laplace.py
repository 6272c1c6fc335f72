"""Diagonal last-layer Laplace approximation (LLLA) of a diffusion model's noise predictor (BayesDiff, Sec. 3).

Likelihood: regression on the true noise. An image x0 gets one timestep t ~ U{0..T-1} and eps ~ N(0, I),
x_t = a_t x0 + s_t eps, and  -log p(eps | x_t) = ||f(x_t, t) - eps||^2 / (2 sigma^2) + const,  where
f is the model's eps as a function of the last layer's parameters theta: with o = last_layer(phi(x_t, t)) (its
prediction channels) and phi the (frozen) last-layer input features, every prediction type maps o to eps by the
exact per-timestep affine map (benchmark.models.prediction.epsilon_coefficients)
    f = c_x(t) x_t + c_t o,     c_t = 1 (epsilon),  a_t (v_prediction),  -a_t / s_t (sample).
Posterior over theta = (weight, bias): N(theta_MAP, diag(1 / P)) with
    P = H / sigma^2 + prior_precision                      (GGN:  H = sum_n diag(J_n^T J_n))
    P = H_ef / sigma^4 + prior_precision                   (EF:   H_ef = sum_n (J_n^T r_n)^2, r_n = f_n - eps_n)
J_n = d f_n / d theta = c_{t_n} d o_n / d theta. The layer is linear in theta, so the GGN diagonal is exact and
needs no backprop (estimators.laplace_math), each image weighted by c_{t_n}^2:
    linear:  H[o, j] = sum_n c_n^2 sum_rows x_j^2          H_bias[o] = sum_n c_n^2 rows
    conv:    H[o, i, u, v] = sum_n c_n^2 sum_p xpad_n[i, p + (u, v) dilation]^2,  H_bias[o] = sum_n c_n^2 positions.
(For v-prediction this equals regressing the output on its own target v = a_t eps - s_t x0 with noise
sigma / a_t, since f - eps = c_t (o - v); for x0-prediction the same with x0 and sigma s_t / a_t.)
Predictive of eps at features x of timestep t (closed form, no weight sampling):
    mean = c_x(t) x_t + c_t last_layer(x);   var = c_t^2 (sum_j x_j^2 / P_j + 1 / P_bias)        (linear)
    var = c_t^2 (conv2d(xpad^2, 1 / P_weight) + 1 / P_bias)                   (conv, its stride/dilation/groups)
and of a weighted sum of such evaluations sum_k g_k eps(x_k, t_k) under one draw of theta (DPM-Solver-2's
effective eps): the predictive variance at features sum_k g_k c_k x_k with bias coefficient sum_k g_k c_k.

Deviations from the public BayesDiff code (notes/anchors.md Sec. 1):
- it fits a diagonal *empirical Fisher* through a modified laplace-torch copy; laplace-torch scales it as
  0.5 * sum_n (grad of the summed MSE)^2 = 2 sum_n (J_n^T r_n)^2, twice the empirical Fisher of the Gaussian
  likelihood. Here the default is the exact GGN; `hessian="ef"` gives the EF without the factor 2.
- its predictive draws 100 last-layer weight samples; here the predictive variance is exact.
- its fit-set size is a divisor of the data set length; here `num_images` is a count, and images outside
  [-1, 1] are refused (the public ImageNet-128 loader scaled them to [-1, ~3]).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

import torch
from torch import nn

from benchmark.errors import CapabilityError, ConfigError, MissingAssetError
from benchmark.models.digest import weights_digest  # noqa: F401 (re-exported)
from benchmark.models.prediction import check_prediction_type, output_to_eps_scale, to_epsilon
from estimators.fit_batches import noisy_batches, split_fit_batch
from estimators.laplace_math import (  # noqa: F401 (re-exported: the pure maths of this module)
    conv_ef_diagonal,
    conv_ggn_diagonal,
    conv_padding,
    linear_ef_diagonal,
    linear_ggn_diagonal,
    pad_like_conv,
    predictive_variance,
)

FILE_FORMAT = "diffusion-uq-bench/last-layer-laplace"
FILE_VERSION = 1
DEFAULT_FILENAME = "laplace_last_layer.pt"
HESSIANS = ("ggn", "ef")


def describe_layer(layer: nn.Module) -> dict:
    """The facts a fitted posterior depends on: type, parameter shapes and (conv) geometry."""
    desc = {"type": type(layer).__name__, "weight": list(layer.weight.shape),
            "bias": None if layer.bias is None else list(layer.bias.shape)}
    if isinstance(layer, nn.Conv2d):
        desc.update(stride=list(layer.stride), dilation=list(layer.dilation), groups=layer.groups,
                    padding=layer.padding if isinstance(layer.padding, str) else list(layer.padding),
                    padding_mode=layer.padding_mode)
    return desc


def default_path(model: nn.Module) -> Path:
    """Where the fitted posterior of `model` lives: <model.source folder>/laplace_last_layer.pt."""
    source = getattr(model, "source", None)
    if source is None or not Path(source).is_dir():
        raise MissingAssetError(
            f"{type(model).__name__} was not loaded from a local folder (source = {source!r}), so there is no "
            "default place for its last-layer Laplace posterior. Fix: fit one and pass it explicitly: "
            "la = LastLayerLaplace(model).fit(loader, num_images=1000); create('bayesdiff', laplace=la).")
    return Path(source) / DEFAULT_FILENAME


# ---------------------------------------------------------------------------------------------- the posterior
class LastLayerLaplace:
    """Diagonal Laplace posterior over `model.last_layer` (nn.Conv2d or nn.Linear) for eps regression.

    For a linear last layer the model's prediction must be `last_layer(features)` reshaped row-major to [B,C,H,W];
    for a conv last layer only its first C output channels are the prediction (learned-variance models output 2C).
    The prediction is what `model.prediction_type` says (epsilon when the model has none), mapped to eps exactly.
    The fitted data term is stored without prior and noise, so `prior_precision` and `sigma_noise` may be
    changed after fitting.
    """

    def __init__(self, model: nn.Module, prior_precision: float = 1.0, hessian: str = "ggn",
                 sigma_noise: float = 1.0) -> None:
        layer = getattr(model, "last_layer", None)
        if layer is None or not isinstance(layer, (nn.Conv2d, nn.Linear)):
            found = None if layer is None else type(layer).__name__
            raise CapabilityError(
                f"last-layer Laplace needs a model whose `last_layer` is an nn.Conv2d or nn.Linear and which "
                f"implements `predict_features`; {type(model).__name__} has last_layer = {found}. "
                "Fix: use a DiffusersUNet (last layer conv_out) or expose last_layer/predict_features in your adapter.")
        if hessian not in HESSIANS:
            raise ConfigError("hessian", hessian, f"one of {', '.join(HESSIANS)}")
        for name, value in (("prior_precision", prior_precision), ("sigma_noise", sigma_noise)):
            if not float(value) > 0:
                raise ConfigError(name, value, "a positive number")
        self.model, self.layer = model, layer
        self.prediction_type = check_prediction_type(str(getattr(model, "prediction_type", "epsilon") or "epsilon"),
                                                     "model.prediction_type")
        self.eps_channels = int(model.sample_shape[0])
        if isinstance(layer, nn.Linear):
            self._check_linear_output(layer)
        self.prior_precision, self.sigma_noise, self.hessian = float(prior_precision), float(sigma_noise), hessian
        self.data_term: dict[str, torch.Tensor] | None = None  # H (GGN) or H_ef, float64
        self.num_images = 0
        self.weights_digest: str | None = None  # set by load(): the digest of the weights the file was fitted on

    # ------------------------------------------------------------------ fitting
    def fit(self, loader: Iterable, num_images: int | None = None, seed: int = 0, progress: bool = True,
            value_range: tuple[float, float] | None = (-1.0, 1.0)) -> "LastLayerLaplace":
        """Fit on `num_images` images (all of the loader when None) of batches [B,C,H,W] in `value_range` or
        (images, labels) pairs. Image n (0-based, in loader order) gets t and eps seeded by (seed, n).
        `value_range` = None skips the range check: data that legitimately leave [-1, 1] (the gmm preset's
        exact mixture draws); the default refuses wrongly scaled images (uint8, [0, 1])."""
        self.data_term, self.num_images = None, 0
        device, dtype = self.layer.weight.device, self.layer.weight.dtype
        with torch.no_grad():
            for batch in noisy_batches(self.model, loader, num_images, seed=seed, value_range=value_range,
                                       device=device, dtype=dtype, progress=progress, desc="last-layer Laplace fit"):
                self.update(batch.x_t, batch.t, batch.eps, batch.labels)
        return self

    def update(self, x_t: torch.Tensor, t: torch.Tensor, target_eps: torch.Tensor, y: torch.Tensor | None = None
               ) -> None:
        """Add the curvature of one batch of noisy inputs x_t [B,C,H,W] at timesteps t [B] with true noise
        target_eps [B,C,H,W] (one features() call). Image n is weighted by c_{t_n}^2 (module docstring)."""
        with torch.no_grad():
            features = self.model.features(x_t, t, y)
            weights = None if self.prediction_type == "epsilon" else self.output_scale(t, x_t.shape[0]).pow(2)
            if self.hessian == "ggn":
                term = (conv_ggn_diagonal(self.layer, features, self.eps_channels, weights)
                        if isinstance(self.layer, nn.Conv2d) else linear_ggn_diagonal(self.layer, features, weights))
            else:
                residual = self._residual(features, x_t, t, target_eps)
                term = (conv_ef_diagonal(self.layer, features, residual) if isinstance(self.layer, nn.Conv2d)
                        else linear_ef_diagonal(self.layer, features, residual))
        self.data_term = term if self.data_term is None else {k: self.data_term[k] + term[k] for k in term}
        self.num_images += int(x_t.shape[0])

    # ------------------------------------------------------------------ posterior and predictive
    @property
    def fitted(self) -> bool:
        return self.data_term is not None

    @property
    def posterior_precision(self) -> dict[str, torch.Tensor]:
        """{parameter name: precision shaped like the parameter} = data term / sigma^2 (EF: sigma^4) + prior."""
        self._require_fitted()
        scale = self.sigma_noise ** (2 if self.hessian == "ggn" else 4)
        params = dict(self.layer.named_parameters())
        return {name: (term / scale + self.prior_precision).to(params[name].device, params[name].dtype)
                for name, term in self.data_term.items()}

    def output_scale(self, t: int | torch.Tensor, batch: int) -> torch.Tensor:
        """c_t = d eps / d output per sample [batch] (float64): 1, a_t or -a_t / s_t (prediction.output_to_eps_scale)."""
        ab = self.model.alphas_cumprod.to(torch.float64)[self._timesteps(t, batch)]
        return output_to_eps_scale(ab, self.prediction_type).to(self.layer.weight.device)

    def variance_from_features(self, features: torch.Tensor, t: int | torch.Tensor | None = None) -> torch.Tensor:
        """Predictive Var[eps] [B,C,H,W] at last-layer input features of timesteps t (closed form):
        c_t^2 Var[output]. `t` may be omitted only for an epsilon-prediction model (c_t = 1)."""
        if t is None or self.prediction_type == "epsilon":
            if t is None and self.prediction_type != "epsilon":
                raise ConfigError("t", None, f"the timesteps of the features: a {self.prediction_type} model's "
                                  "Var[eps] = c_t^2 Var[output] depends on t", "pass variance_from_features(features, t)")
            return self._as_eps(predictive_variance(self.layer, features, self._inverse_precision()), variance=True)
        return self.mixture_variance([(1.0, features, t)])

    def mixture_variance(self, parts: Sequence[tuple[float, torch.Tensor, int | torch.Tensor]]) -> torch.Tensor:
        """Var[sum_k g_k eps(phi_k, t_k)] [B,C,H,W] under one draw of the last layer, for parts (g_k, phi_k, t_k):
        eps_k = c_x x_k + c_k o(phi_k), so the sum is const + W (sum_k g_k c_k phi_k) + (sum_k g_k c_k) b, whose
        variance is predictive_variance at those effective features with bias coefficient sum_k g_k c_k
        (rows of a guided call, 2 per sample, share their sample's c_k)."""
        features, bias = None, None
        for weight, phi, t in parts:
            rows = phi.shape[0]
            samples = rows if torch.as_tensor(t).ndim == 0 else torch.as_tensor(t).numel()
            coef = (float(weight) * self.output_scale(t, samples)).repeat_interleave(rows // samples).to(phi.dtype)
            term = coef.reshape(-1, *([1] * (phi.ndim - 1))) * phi
            features, bias = (term, coef) if features is None else (features + term, bias + coef)
        var = predictive_variance(self.layer, features, self._inverse_precision(), bias_scale=bias)
        return self._as_eps(var, variance=True)

    def eps_from_output(self, output: torch.Tensor, x_t: torch.Tensor, t: int | torch.Tensor) -> torch.Tensor:
        """eps [B,C,H,W] of a last-layer output (a weight draw's, or the MAP's) at x_t [B,C,H,W], timesteps t:
        the layout map (`_as_eps`) then eps = c_x x_t + c_t output (benchmark.models.prediction.to_epsilon)."""
        pred = self._as_eps(output)
        if self.prediction_type == "epsilon":
            return pred
        ab = self.model.alphas_cumprod.to(torch.float64)[self._timesteps(t, x_t.shape[0])]
        return to_epsilon(pred, x_t, ab.to(pred.device), self.prediction_type, self.eps_channels)

    def _timesteps(self, t: int | torch.Tensor, batch: int) -> torch.Tensor:
        """Integer timesteps [batch] (on the schedule's device) of a scalar or per-sample t."""
        t_tensor = torch.as_tensor(t).to(torch.long).reshape(-1)
        return (t_tensor.expand(batch) if t_tensor.numel() == 1 else t_tensor).to(self.model.alphas_cumprod.device)

    def predictive(self, x: torch.Tensor, t: int | torch.Tensor, y: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, var) of eps at x [B,C,H,W], t: the MAP prediction and the closed-form variance (one NFE)."""
        with torch.no_grad():
            features = self.model.features(x, t, y)
            return self.eps_from_output(self.layer(features), x, t), self.variance_from_features(features, t)

    def _inverse_precision(self) -> dict[str, torch.Tensor]:
        return {k: v.reciprocal() for k, v in self.posterior_precision.items()}

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> Path:
        """Write the fitted posterior (atomically) to `path`; returns the path."""
        self._require_fitted()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {"format": FILE_FORMAT, "version": FILE_VERSION, "layer": describe_layer(self.layer),
                 "eps_channels": self.eps_channels, "prediction_type": self.prediction_type,
                 "hessian": self.hessian, "prior_precision": self.prior_precision,
                 "sigma_noise": self.sigma_noise, "num_images": self.num_images,
                 "weights_digest": weights_digest(self.model),
                 "data_term": {k: v.detach().cpu() for k, v in self.data_term.items()}}
        tmp = path.with_name(path.name + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)
        return path

    def load(self, path: str | Path) -> "LastLayerLaplace":
        """Restore a posterior written by `save` (data term, hessian kind, prior, noise); returns self."""
        path = Path(path)
        if not path.is_file():
            raise MissingAssetError(
                f"no last-layer Laplace posterior at {path}. Fix: fit and save it once: "
                "LastLayerLaplace(model).fit(loader, num_images=1000).save(default_path(model))")
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or state.get("format") != FILE_FORMAT or state.get("version") != FILE_VERSION:
            raise ConfigError("laplace file", str(path), f"a {FILE_FORMAT} file of version {FILE_VERSION}",
                              "refit it with LastLayerLaplace(model).fit(...).save(path)")
        expected = describe_layer(self.layer)
        if state["layer"] != expected or state["eps_channels"] != self.eps_channels:
            raise ConfigError("laplace file", str(path),
                              f"it was fitted for a last layer {state['layer']} but {type(self.model).__name__}'s "
                              f"last layer is {expected}", "refit the posterior for this model")
        fitted_type = state.get("prediction_type", "epsilon")  # files before v/x0 support: epsilon models only
        if fitted_type != self.prediction_type:
            raise ConfigError("laplace file", str(path), f"it was fitted for a {fitted_type} model but "
                              f"{type(self.model).__name__} predicts {self.prediction_type}", "refit the posterior")
        device = self.layer.weight.device
        self.data_term = {k: v.to(device, torch.float64) for k, v in state["data_term"].items()}
        self.hessian, self.num_images = state["hessian"], int(state["num_images"])
        self.weights_digest = state.get("weights_digest")  # of the model it was fitted on (None: older file)
        self.prior_precision, self.sigma_noise = float(state["prior_precision"]), float(state["sigma_noise"])
        return self

    def check_compatible(self, model: nn.Module) -> None:
        """Refuse an unfitted posterior or one whose last layer differs in shape from `model`'s."""
        self._require_fitted()
        layer = getattr(model, "last_layer", None)
        if layer is None or describe_layer(layer) != describe_layer(self.layer):
            raise ConfigError("laplace", describe_layer(self.layer),
                              f"the posterior must be fitted on this model's last layer "
                              f"({None if layer is None else describe_layer(layer)})",
                              "fit LastLayerLaplace(model) on the model you sample with")

    # ------------------------------------------------------------------ helpers
    def _require_fitted(self) -> None:
        if self.data_term is None:
            raise MissingAssetError("the last-layer Laplace posterior is not fitted. Fix: call "
                                    "la.fit(loader, num_images=1000) or la.load(path) first.")

    def _check_linear_output(self, layer: nn.Linear) -> None:
        shape = self.model.sample_shape
        if (shape[0] * shape[1] * shape[2]) % layer.out_features != 0:
            raise CapabilityError(
                f"{type(self.model).__name__}'s linear last layer has {layer.out_features} outputs, which do not tile "
                f"one sample {tuple(shape)}; last-layer Laplace needs eps = last_layer(features) reshaped to [B,C,H,W]")

    def _as_eps(self, output: torch.Tensor, variance: bool = False) -> torch.Tensor:
        """Layer output (`variance`: its variance) -> eps layout [B,C,H,W] (conv: first C channels; linear:
        row-major reshape), or the model's own map when it has one (`last_layer_output_to_eps`: a transformer's
        unpatchify; under classifier-free guidance (1-w) u + w c of the two branches' rows, (1-w)^2 u + w^2 c for
        a variance: benchmark.models.guided)."""
        to_eps = getattr(self.model, "last_layer_output_to_eps", None)
        if callable(to_eps):
            return to_eps(output, variance=variance)
        if isinstance(self.layer, nn.Conv2d):
            return output[:, : self.eps_channels]
        return output.reshape(output.shape[0], *self.model.sample_shape)

    def _residual(self, features: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, target_eps: torch.Tensor
                  ) -> torch.Tensor:
        """d/d output of ||f - eps||^2 / 2 = c_t (f - eps), in the layer's output layout (zero on a conv's non-eps
        channels); f = eps_from_output(last_layer(features))."""
        output = self.layer(features)
        residual_eps = self.eps_from_output(output, x_t, t) - target_eps
        if self.prediction_type != "epsilon":
            scale = self.output_scale(t, x_t.shape[0]).to(residual_eps.dtype)
            residual_eps = scale.view(-1, 1, 1, 1) * residual_eps
        to_layer = getattr(self.model, "eps_to_layer_output", None)  # a model with its own output layout
        if callable(to_layer):
            return to_layer(residual_eps, output)
        if isinstance(self.layer, nn.Linear):
            return residual_eps.reshape(output.shape)
        residual = torch.zeros_like(output)
        residual[:, : self.eps_channels] = residual_eps
        return residual
