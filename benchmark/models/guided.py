"""Conditioned denoisers with classifier-free guidance (Ho & Salimans 2022).

A conditioned denoiser evaluates its network on integer condition indices: class labels 0..K-1 for a
class-conditional model, prompt indices for a text-conditioned one; the index `null_condition` (K) selects the
unconditional branch (DiT's extra label embedding kept for label dropout; the empty prompt).

With guidance scale w (1 = off) one call evaluates both branches in one batch of 2B rows and returns
    eps = (1 - w) eps_u + w eps_c                                   (Ho & Salimans 2022, eq. 6 with w = 1 + w')
counted as 2 network rows per sample. The last-layer features of a guided call are both branches' features,
interleaved per input row ([2B, ...], rows 2i and 2i + 1 = unconditional and conditional of row i, so that
copies stacked along the batch stay contiguous). `last_layer_output_to_eps` maps the last layer's output on
such features to eps, and its variance to the variance of the guided eps, assuming the two branches independent
(Kou et al. 2024, the public SD code's get_scaled_*; last-layer Laplace calls it):
    E[eps] = (1 - w) E[eps_u] + w E[eps_c],      Var[eps] = (1 - w)^2 Var[eps_u] + w^2 Var[eps_c].
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

from benchmark.errors import ConfigError
from benchmark.models.base import DiffusionModel
from benchmark.models.prediction import check_prediction_type, to_epsilon


def guided_epsilon(eps_uncond: torch.Tensor, eps_cond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance: (1 - w) eps_u + w eps_c, for eps [B,C,H,W]."""
    return (1.0 - scale) * eps_uncond + scale * eps_cond


def guided_variance(var_uncond: torch.Tensor, var_cond: torch.Tensor, scale: float) -> torch.Tensor:
    """Variance of the guided eps with independent branches: (1 - w)^2 Var_u + w^2 Var_c."""
    return (1.0 - scale) ** 2 * var_uncond + scale**2 * var_cond


def check_guidance_scale(scale: object, field: str = "run.guidance_scale") -> float:
    """A finite float guidance scale (1 = off), else a ConfigError naming `field`."""
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not float("-inf") < float(scale) < float("inf"):
        raise ConfigError(field, scale, "a finite number (1 = no guidance; e.g. 3 or 7.5)")
    return float(scale)


class ConditionedDenoiser(DiffusionModel):
    """A network on condition indices with classifier-free guidance; subclasses implement `network_output`.

    Args:
        network: the diffusers model (its submodules are this module's).
        alphas_cumprod, sample_shape: as for DiffusionModel.
        num_conditions: K, the number of real conditions (classes or prompts); index K is the null condition.
        prediction_type: "epsilon", "v_prediction" or "sample" (converted with to_epsilon).
        last_layer_name: dotted path of the last layer inside `network`.
    """

    def __init__(self, network: nn.Module, *, alphas_cumprod: torch.Tensor, sample_shape: tuple[int, int, int],
                 num_conditions: int | None, prediction_type: str = "epsilon", last_layer_name: str) -> None:
        super().__init__(alphas_cumprod=alphas_cumprod, sample_shape=sample_shape, num_classes=num_conditions)
        self.network = network.eval()
        self.prediction_type = check_prediction_type(prediction_type)
        self.last_layer_name = last_layer_name
        self._named_layer(last_layer_name)  # fail now on a wrong path
        self.guidance_scale = 1.0
        self.source: str | None = None

    # ----------------------------------------------------------------- to implement
    def network_output(self, x: torch.Tensor, t: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        """The raw network output [N, C or 2C, H, W] at x [N,C,H,W], timesteps t [N], condition indices [N]."""
        raise NotImplementedError

    def layer_output_layout(self, output: torch.Tensor) -> torch.Tensor:
        """The last layer's output [N, ...] in eps layout [N,C,H,W]; conv layers: the first C channels."""
        return output[:, : self.sample_shape[0]]

    def eps_to_layer_output(self, eps: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Inverse of `layer_output_layout` for an unguided call: eps-layout values [N,C,H,W] in the layout of the
        layer output `like`, zero on the outputs that are not eps (learned variance)."""
        out = torch.zeros_like(like)
        out[:, : self.sample_shape[0]] = eps
        return out

    def last_layer_output_to_eps(self, output: torch.Tensor, variance: bool = False) -> torch.Tensor:
        """eps [B,C,H,W] of the last layer's output on features of a call (2B interleaved rows when guided), or
        with `variance` the variance of eps from the per-row variances: (1-w)^2 V_u + w^2 V_c when guided."""
        eps = self.layer_output_layout(output)
        if not self.guided:
            return eps
        combine = guided_variance if variance else guided_epsilon
        return combine(eps[0::2], eps[1::2], self.guidance_scale)

    # ----------------------------------------------------------------- guidance
    @property
    def null_condition(self) -> int:
        return int(self.num_classes or 0)

    @property
    def guided(self) -> bool:
        return self.guidance_scale != 1.0

    @property
    def rows_per_sample(self) -> int:
        return 2 if self.guided else 1

    def set_guidance_scale(self, scale: float) -> None:
        self.guidance_scale = check_guidance_scale(scale)

    @contextlib.contextmanager
    def unguided(self) -> Iterator[None]:
        """Plain conditional calls inside the block (e.g. while fitting a last-layer posterior)."""
        previous, self.guidance_scale = self.guidance_scale, 1.0
        try:
            yield
        finally:
            self.guidance_scale = previous

    # ----------------------------------------------------------------- DiffusionModel
    @property
    def last_layer(self) -> nn.Module | None:
        """The named last layer, for every prediction type (last-layer Laplace maps v / x0 to eps exactly)."""
        return self._named_layer(self.last_layer_name)

    def predict_eps(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self._guided_eps(x, t, y)

    def predict_features(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.predict_eps_and_features(x, t, y)[1]

    def predict_eps_and_features(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None
                                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """One (guided) evaluation: eps and the activations entering the last layer (both branches, interleaved,
        when guided)."""
        captured: list[torch.Tensor] = []
        handle = self._named_layer(self.last_layer_name).register_forward_pre_hook(
            lambda _m, args: captured.append(args[0]))
        try:
            eps = self._guided_eps(x, t, y)
        finally:
            handle.remove()
        features = captured[0]
        if self.guided:  # [u_0..u_{B-1}, c_0..c_{B-1}] -> [u_0, c_0, u_1, c_1, ...]
            features = features.view(2, x.shape[0], *features.shape[1:]).transpose(0, 1).reshape(features.shape)
        return eps, features

    def _guided_eps(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        conditions = self._conditions(y, x.shape[0], x.device)
        if not self.guided:
            return self._to_eps(self.network_output(x, t, conditions), x, t)
        null = torch.full_like(conditions, self.null_condition)
        x2, t2 = torch.cat([x, x]), torch.cat([t, t])
        eps = self._to_eps(self.network_output(x2, t2, torch.cat([null, conditions])), x2, t2)
        return guided_epsilon(eps[: x.shape[0]], eps[x.shape[0]:], self.guidance_scale)

    def _conditions(self, y: torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor:
        if y is None:  # an unconditional call of a conditioned network: the null condition
            if self.guided:
                raise ConfigError("y", None, "condition indices for classifier-free guidance",
                                  "pass labels (or prompts), or set run.guidance_scale = 1")
            return torch.full((batch,), self.null_condition, dtype=torch.long, device=device)
        return y.to(device=device, dtype=torch.long)

    def _check_labels(self, y: torch.Tensor | None, batch: int) -> None:
        if y is not None and y.shape[0] != batch:
            raise ConfigError("y", tuple(y.shape), f"one label per sample ({batch})")
        if y is not None and y.numel() > 0 and (int(y.min()) < 0 or int(y.max()) > self.null_condition):
            raise ConfigError("y", (int(y.min()), int(y.max())), f"condition indices in [0, {self.null_condition}] "
                              f"({self.null_condition} = the null condition, the unconditional branch)")

    def _to_eps(self, output: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ab = self.alphas_cumprod[t.to(self.alphas_cumprod.device)].to(x.device)
        return to_epsilon(output, x, ab, self.prediction_type, self.sample_shape[0])

    def _named_layer(self, name: str) -> nn.Module:
        try:
            return self.network.get_submodule(name)
        except AttributeError:
            raise ConfigError("model.last_layer", name, f"the dotted path of a submodule of the "
                              f"{type(self.network).__name__}", "see print(model.network) for the names") from None
