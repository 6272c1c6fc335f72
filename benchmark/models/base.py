"""The model interface every estimator and sampler builds on: a noise predictor with its schedule.

A model written outside the package subclasses `DiffusionModel`, calls
``super().__init__(alphas_cumprod=..., sample_shape=...)`` and implements ``predict_eps``; the public
``eps()`` wraps it with NFE accounting and a finiteness check.
"""
from __future__ import annotations

import contextlib
from collections import Counter
from typing import Iterator, Sequence

import torch
from torch import nn

from benchmark.errors import CapabilityError, ConfigError, NonFiniteError
from benchmark.models.precision import cast_back, network_autocast

DROPOUT_TYPES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)


def linear_beta_alphas_cumprod(
    num_train_timesteps: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02
) -> torch.Tensor:
    """DDPM linear schedule: beta_t = linspace(beta_start, beta_end, T); ab_t = prod_{s<=t} (1 - beta_s).

    Computed in float32 exactly as diffusers does (`torch.linspace(..., dtype=float32)`), returned float64.
    """
    betas = torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=torch.float32)
    return torch.cumprod(1.0 - betas, dim=0).to(torch.float64)


class DiffusionModel(nn.Module):
    """An epsilon-prediction diffusion model with its training schedule.

    Args:
        alphas_cumprod: the training schedule ab_t, length T (t = 0..T-1).
        sample_shape: (C, H, W) of one sample; data range is [-1, 1].
        num_classes: number of class labels for a class-conditional model, else None.
    """

    def __init__(
        self,
        *,
        alphas_cumprod: torch.Tensor | Sequence[float],
        sample_shape: Sequence[int],
        num_classes: int | None = None,
    ) -> None:
        super().__init__()
        ab = torch.as_tensor(alphas_cumprod, dtype=torch.float64).flatten()
        if ab.numel() < 2 or not bool(((ab > 0) & (ab <= 1)).all()) or not bool((ab[1:] <= ab[:-1]).all()):
            raise ConfigError(
                "alphas_cumprod", f"tensor of length {ab.numel()}",
                "a non-increasing sequence in (0, 1] of length >= 2", "pass the training schedule ab_t")
        if len(tuple(sample_shape)) != 3:
            raise ConfigError("sample_shape", tuple(sample_shape), "must be (C, H, W)")
        self.register_buffer("alphas_cumprod", ab, persistent=False)
        self.sample_shape: tuple[int, int, int] = tuple(int(s) for s in sample_shape)  # type: ignore[assignment]
        self.num_classes = num_classes
        self.nfe_counter: Counter[str] = Counter()
        self._caller = "sampler"
        self.autocast = "off"  # run.autocast around the forward call: off | bf16 | fp16 (benchmark.models.precision)
        self.train(False)  # models are used for inference; layers a subclass adds later keep their own mode

    # ----------------------------------------------------------------- to implement
    def predict_eps(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """eps_theta(x_t, t[, y]) for x [B,C,H,W] and integer timesteps t [B]. Subclasses implement it."""
        raise NotImplementedError

    # ----------------------------------------------------------------- optional capabilities
    @property
    def last_layer(self) -> nn.Module | None:
        """The final layer (conv or linear) for last-layer Laplace, or None when the model has none."""
        return None

    def predict_features(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Activations that enter `last_layer` (so that ``last_layer(features) == eps``)."""
        raise CapabilityError(f"{type(self).__name__} exposes no features for a last layer")

    # ----------------------------------------------------------------- public, counted API
    @property
    def rows_per_sample(self) -> int:
        """Network rows one call evaluates per input row: 1, or 2 under classifier-free guidance (an unconditional
        and a conditional row); NFEs count rows."""
        return 1

    @property
    def num_train_timesteps(self) -> int:
        return int(self.alphas_cumprod.numel())

    @property
    def device(self) -> torch.device:
        for tensor in list(self.parameters()) + list(self.buffers()):
            return tensor.device
        return torch.device("cpu")

    def eps(self, x: torch.Tensor, t: int | torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Predicted noise [B,C,H,W]; each row counts as one network evaluation of the current caller."""
        return self._counted(self.predict_eps, "eps", x, t, y)

    def features(self, x: torch.Tensor, t: int | torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Last-layer input features; counted as one network evaluation per row like `eps`."""
        self._require_last_layer()
        return self._counted(self.predict_features, "features", x, t, y)

    @property
    def shares_features(self) -> bool:
        """True when `eps_and_features` gets both from ONE network evaluation (override `predict_eps_and_features`)."""
        return type(self).predict_eps_and_features is not DiffusionModel.predict_eps_and_features

    def predict_eps_and_features(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None
                                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """(eps, last-layer features) of one forward pass; adapters that can capture both override this."""
        raise CapabilityError(f"{type(self).__name__} cannot return eps and features from one evaluation")

    def eps_and_features(self, x: torch.Tensor, t: int | torch.Tensor, y: torch.Tensor | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """eps [B,C,H,W] and the last layer's input from one evaluation (counted once per row)."""
        self._require_last_layer()
        return self._counted(self.predict_eps_and_features, "eps_and_features", x, t, y)

    def _counted(self, forward, what: str, x: torch.Tensor, t: int | torch.Tensor, y: torch.Tensor | None):
        t_batch = self._timesteps(t, x.shape[0], x.device)
        self._check_labels(y, x.shape[0])
        with network_autocast(self.autocast, x.device):
            out = forward(x, t_batch, y)
        if self.autocast != "off":  # back to the input's dtype (float32) before any sampler or uncertainty maths
            out = cast_back(out, x.dtype)
        self.nfe_counter[self._caller] += int(x.shape[0]) * self.rows_per_sample
        for tensor in out if isinstance(out, tuple) else (out,):
            _check_finite(tensor, f"{type(self).__name__}.{what} at timestep {int(t_batch[0])}")
        return out

    def count_rows(self, rows: int) -> None:
        """Charge `rows` network evaluations made outside `eps` to the current caller, as `eps` counts its own: the
        tangent pass of a Jacobian-vector product, the calls of another network on this model's trajectory (an
        ensemble member's)."""
        self.nfe_counter[self._caller] += int(rows)

    def _require_last_layer(self) -> None:
        if self.last_layer is None:
            raise CapabilityError(
                f"{type(self).__name__} has no last_layer, so last-layer features are unavailable; "
                "use a model that exposes `last_layer` and `predict_features` (e.g. a DiffusersUNet whose output "
                "is conv_out's output)")

    @contextlib.contextmanager
    def attribute_to(self, caller: str) -> Iterator[None]:
        """Count every network call inside the block as `caller`'s (the sampler or an estimator)."""
        previous, self._caller = self._caller, caller
        try:
            yield
        finally:
            self._caller = previous

    def reset_nfe(self) -> None:
        self.nfe_counter.clear()

    # ----------------------------------------------------------------- dropout
    def dropout_modules(self) -> list[nn.Module]:
        return [m for m in self.modules() if isinstance(m, DROPOUT_TYPES) and m.p > 0]

    @property
    def has_dropout(self) -> bool:
        return bool(self.dropout_modules())

    @contextlib.contextmanager
    def dropout_active(self) -> Iterator[None]:
        """Switch only the dropout layers to training mode (MC-Dropout); other layers stay in eval mode."""
        layers = self.dropout_modules()
        if not layers:
            raise CapabilityError(
                f"{type(self).__name__} has no dropout layers with p > 0, so MC-Dropout cannot run on it; "
                "use a model trained with dropout (the built-in presets use dropout 0.1)")
        modes = [m.training for m in layers]
        for m in layers:
            m.train(True)
        try:
            yield
        finally:
            for m, mode in zip(layers, modes):
                m.train(mode)

    # ----------------------------------------------------------------- helpers
    def _timesteps(self, t: int | torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
        t_tensor = torch.as_tensor(t, device=device)
        if t_tensor.ndim == 0:
            t_tensor = t_tensor.expand(batch)
        t_tensor = t_tensor.to(torch.long)
        if t_tensor.shape != (batch,):
            raise ConfigError("t", tuple(t_tensor.shape), f"a scalar or a tensor of shape ({batch},)")
        return t_tensor

    def _check_labels(self, y: torch.Tensor | None, batch: int) -> None:
        if self.num_classes is not None and y is None:
            raise ConfigError("y", None, f"{type(self).__name__} is class-conditional "
                              f"({self.num_classes} classes) and needs labels", "pass y=[B] class indices")
        if y is not None and y.shape[0] != batch:
            raise ConfigError("y", tuple(y.shape), f"one label per sample ({batch})")
        if y is not None and self.num_classes is not None and y.numel() > 0 and (
                int(y.min()) < 0 or int(y.max()) >= self.num_classes):
            raise ConfigError("y", (int(y.min()), int(y.max())), f"class indices in [0, {self.num_classes - 1}]")


def _check_finite(out: torch.Tensor, where: str) -> None:
    if not bool(torch.isfinite(out).all()):
        raise NonFiniteError(
            f"{where} returned NaN or Inf. Fix: check the weights (a corrupt or wrongly converted checkpoint) "
            "and that inputs are in [-1, 1] at the model's dtype.")
