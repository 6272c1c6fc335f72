"""Adapter for a plain PyTorch noise predictor: any `nn.Module` called as f(x, t) or f(x, t, y).

x [B,C,H,W] in the model's data range, t the integer training timesteps [B] (long), y class indices [B] (long)
of a class-conditional model. The output [B,C,H,W] (or [B,2C,H,W] with a learned variance) is what
`prediction_type` says, converted to eps exactly per timestep (benchmark.models.prediction.to_epsilon).
`last_layer` names a Conv2d or Linear submodule whose *input* is captured by a forward pre-hook (the features
of last-layer Laplace); its output must be the network's output.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn

from benchmark.errors import ConfigError
from benchmark.models.base import DiffusionModel
from benchmark.models.prediction import PREDICTION_TYPES, to_epsilon

LAST_LAYER_TYPES = (nn.Conv2d, nn.Linear)
WEIGHT_SUFFIXES = (".pt", ".pth", ".safetensors")


def call_capturing_input(layer: nn.Module, forward: Callable[[], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(forward(), the input of `layer` during that call): one evaluation, the features taken by a pre-hook."""
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_pre_hook(lambda _module, args: captured.append(args[0]))
    try:
        out = forward()
    finally:
        handle.remove()
    if not captured:
        raise ConfigError("model.last_layer", type(layer).__name__, "a layer the network's forward calls",
                          "name the layer that produces the network's output (print(network) lists them)")
    return out, captured[-1]


class PlainTorchModel(DiffusionModel):
    """eps_theta from a user's `nn.Module` (the `[model] factory` table).

    Args:
        network: the module, called as network(x, t) or network(x, t, y) (class-conditional).
        alphas_cumprod: the training schedule ab_t [T].
        sample_shape: (C, H, W) of one sample.
        prediction_type: what the network outputs: "epsilon", "v_prediction" or "sample".
        num_classes: label count of a class-conditional network (None: unconditional).
        last_layer_name: dotted name of the Conv2d / Linear layer whose output is the network's output.
        source: where the network comes from (the factory), for messages and the manifest.
    """

    def __init__(self, network: nn.Module, alphas_cumprod: torch.Tensor, *, sample_shape: Sequence[int],
                 prediction_type: str = "epsilon", num_classes: int | None = None,
                 last_layer_name: str | None = None, source: str | None = None) -> None:
        super().__init__(alphas_cumprod=alphas_cumprod, sample_shape=sample_shape, num_classes=num_classes)
        if prediction_type not in PREDICTION_TYPES:
            raise ConfigError("model.prediction_type", prediction_type, f"one of {', '.join(PREDICTION_TYPES)}")
        self.network = network.eval()
        self.prediction_type = prediction_type
        self.last_layer_name = last_layer_name
        self.source = source
        if last_layer_name is not None:
            named_last_layer(network, last_layer_name)  # fail now on a wrong name or type

    @property
    def last_layer(self) -> nn.Module | None:
        """The named Conv2d / Linear layer (None when unnamed). Its output is the network's prediction; for v- and
        x0-prediction eps is the exact per-timestep affine map of it (eps = c_x x_t + c_t output,
        benchmark.models.prediction.epsilon_coefficients), which last-layer Laplace applies."""
        if self.last_layer_name is None:
            return None
        return named_last_layer(self.network, self.last_layer_name)

    def _check_labels(self, y: torch.Tensor | None, batch: int) -> None:
        if y is not None and self.num_classes is None:
            raise ConfigError("y", tuple(y.shape), "this model is unconditional (no model.num_classes)", "pass y=None")
        super()._check_labels(y, batch)

    def network_output(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """The network's raw output [B,C or 2C,H,W] (a diffusers-style output object gives its `.sample`)."""
        out = self.network(x, t) if self.num_classes is None else self.network(x, t, y)
        return getattr(out, "sample", out)

    def predict_eps(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self._to_eps(self.network_output(x, t, y), x, t)

    def predict_features(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.predict_eps_and_features(x, t, y)[1]

    def predict_eps_and_features(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None
                                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """One forward pass: eps [B,C,H,W] and the activations entering the last layer."""
        layer = named_last_layer(self.network, str(self.last_layer_name))
        out, features = call_capturing_input(layer, lambda: self.network_output(x, t, y))
        return self._to_eps(out, x, t), features

    def _to_eps(self, output: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ab = self.alphas_cumprod[t.to(self.alphas_cumprod.device)].to(x.device)
        return to_epsilon(output, x, ab, self.prediction_type, self.sample_shape[0])


def named_last_layer(network: nn.Module, name: str) -> nn.Module:
    """The submodule `name` of `network`, which must be an nn.Conv2d or nn.Linear (ConfigError otherwise)."""
    try:
        layer = network.get_submodule(name)
    except AttributeError:
        leaves = [n for n, m in network.named_modules() if isinstance(m, LAST_LAYER_TYPES)]
        raise ConfigError("model.last_layer", name, f"the dotted name of a submodule of the "
                          f"{type(network).__name__}", f"e.g. last_layer = {leaves[-1]!r}" if leaves else
                          "print(network) lists the names") from None
    if not isinstance(layer, LAST_LAYER_TYPES):
        raise ConfigError("model.last_layer", name, f"an nn.Conv2d or nn.Linear layer, but it is a "
                          f"{type(layer).__name__}", "name the final Conv2d / Linear layer, or remove "
                          "model.last_layer (estimators that need a last layer are then refused)")
    return layer


# ---------------------------------------------------------------------------------------------- weights
def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in a .pt/.pth (torch.save, loaded with weights_only=True) or .safetensors file."""
    path = Path(path)
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise ConfigError("model.weights", str(path), "a .pt/.pth file (the safetensors package is not "
                              "installed)", "pip install safetensors, or save the state dict with torch.save") from None
        try:
            return load_file(str(path), device="cpu")
        except Exception as err:  # noqa: BLE001 - a corrupt or foreign file
            raise ConfigError("model.weights", str(path), f"a readable safetensors file ({one_line(err)})",
                              "re-save the state dict with safetensors.torch.save_file") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - pickled objects other than tensors, corrupt files
        raise ConfigError("model.weights", str(path), f"a state dict saved with torch.save ({one_line(err)})",
                          "save network.state_dict(), not the whole module or a training checkpoint object") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        keys = list(state)[:5] if isinstance(state, dict) else type(state).__name__
        raise ConfigError("model.weights", str(path), f"a state dict of tensors, but it holds {keys}",
                          "save the network's own state dict, e.g. torch.save(checkpoint['model'], 'weights.pt')")
    return state


def load_weights(network: nn.Module, path: str | Path) -> None:
    """Load the state dict at `path` into `network`; missing, unexpected or mis-shaped keys are a ConfigError."""
    state = read_state_dict(path)
    own = network.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        parts = [f"{len(keys)} {what} (e.g. {', '.join(keys[:3])})" for what, keys in
                 (("missing keys", missing), ("unexpected keys", unexpected)) if keys]
        hint = " (the file's keys start with 'module.': strip that prefix)" if unexpected and all(
            k.startswith("module.") for k in unexpected) else ""
        raise ConfigError("model.weights", str(path), f"a state dict of the factory's network, but it has "
                          f"{' and '.join(parts)}{hint}", "make the factory build the architecture the weights were "
                          "saved from")
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own if state[k].shape != own[k].shape]
    if wrong:
        raise ConfigError("model.weights", str(path), f"tensors of the network's shapes, but {len(wrong)} differ "
                          f"(e.g. {'; '.join(wrong[:2])})", "make the factory build the architecture the weights "
                          "were saved from")
    network.load_state_dict(state, strict=True)


# ---------------------------------------------------------------------------------------------- probe
def check_call(network: nn.Module, num_classes: int | None, factory: str) -> None:
    """The network's forward takes (x, t), or (x, t, y) when num_classes is set (ConfigError naming the fix)."""
    try:
        params = list(inspect.signature(network.forward).parameters.values())
    except (TypeError, ValueError):
        return  # no signature to read: the probe decides
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    wanted = 2 if num_classes is None else 3
    if len(positional) < wanted:
        fix = ("remove model.num_classes (the network is unconditional)" if num_classes is not None else
               "make forward take (x, t)")
        raise ConfigError("model.factory", factory, f"a network called as f({'x, t' if wanted == 2 else 'x, t, y'}), "
                          f"but its forward takes ({', '.join(p.name for p in positional)})", fix)
    if len(required) > wanted:
        fix = ("set model.num_classes = <number of classes> (a class-conditional network is called as f(x, t, y))"
               if num_classes is None and len(required) == 3 else "give the extra arguments defaults")
        raise ConfigError("model.factory", factory, f"a network called as f({'x, t' if wanted == 2 else 'x, t, y'}), "
                          f"but its forward requires ({', '.join(p.name for p in required)})", fix)


def probe(model: PlainTorchModel, factory: str, weights: str | None = None) -> None:
    """One forward call at batch 1 (x ~ N(0, I) of sample_shape, t = T // 2, y = 0): the output must be a finite
    tensor [1, C or 2C, H, W]; a failing call is a ConfigError naming the factory (NaN / Inf: the `weights` file
    when one was loaded)."""
    x = torch.randn((1, *model.sample_shape), generator=torch.Generator(device="cpu").manual_seed(0), device="cpu")
    x = x.to(model.device, next((p.dtype for p in model.network.parameters()), x.dtype))
    t = torch.full((1,), model.num_train_timesteps // 2, dtype=torch.long, device=model.device)
    y = None if model.num_classes is None else torch.zeros(1, dtype=torch.long, device=model.device)
    layer = None if model.last_layer_name is None else named_last_layer(model.network, model.last_layer_name)
    layer_out: list[torch.Tensor] = []
    handle = None if layer is None else layer.register_forward_hook(lambda _m, _args, o: layer_out.append(o))
    try:
        with torch.no_grad():
            out = model.network_output(x, t, y)
    except Exception as err:  # noqa: BLE001 - whatever the user's network raises is reported, not re-raised
        raise ConfigError("model.factory", factory, f"a network that runs on x {tuple(x.shape)}, t [1] (long)"
                          f"{'' if y is None else ', y [1] (long)'}, but the call raised {type(err).__name__}: "
                          f"{one_line(err)}", "check model.sample_shape (or the data's shape), model.num_classes "
                          "and the network's forward") from None
    finally:
        if handle is not None:
            handle.remove()
    c, h, w = model.sample_shape
    if not isinstance(out, torch.Tensor):
        raise ConfigError("model.factory", factory, f"a network returning a tensor, but it returned an object of "
                          f"type {type(out).__name__}", "return the prediction [B, C, H, W] from forward")
    if not bool(torch.isfinite(out).all()):  # before the last-layer check: NaN != NaN would blame last_layer
        field, value = ("model.weights", weights) if weights is not None else ("model.factory", factory)
        raise ConfigError(field, value, f"a network whose output is finite, but the probe call returned "
                          f"{int((~torch.isfinite(out)).sum())} NaN/Inf values of {out.numel()}", "check the weights "
                          "(a corrupt or wrongly converted checkpoint) and the network's forward")
    if out.ndim != 4 or out.shape[0] != 1 or out.shape[1] not in (c, 2 * c) or tuple(out.shape[2:]) != (h, w):
        raise ConfigError("model.factory", factory, f"an output of shape [B, {c} (or {2 * c}), {h}, {w}] for input "
                          f"{tuple(x.shape)}, but it is {tuple(out.shape)}", "check model.sample_shape and the "
                          "network's out_channels")
    if layer is not None and (not layer_out or layer_out[-1].numel() != out.numel()
                              or not torch.equal(layer_out[-1].reshape(out.shape), out)):
        raise ConfigError("model.last_layer", model.last_layer_name, "the layer whose output is the network's output "
                          "(a last-layer posterior needs output = last_layer(features)), but the network "
                          + ("never calls it" if not layer_out else "transforms its output afterwards"),
                          "name the final layer, or remove model.last_layer")


def one_line(err: BaseException) -> str:
    """An exception's message on one line (at most 300 characters), for a one-line ConfigError."""
    text = " ".join(str(err).split())
    return text[:300] + ("..." if len(text) > 300 else "")
