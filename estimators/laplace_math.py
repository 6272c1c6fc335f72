"""Pure maths of the diagonal last-layer Laplace approximation (estimators.laplace re-exports every name).

The last layer o = W x + b is linear in theta = (W, b). Row n of a batch (one image, at timestep t_n) enters the
eps-regression likelihood through eps_n = c_x(t_n) x_t + c_n o_n, with c_n = d eps / d o the per-timestep slope of
the model's prediction type (benchmark.models.prediction.epsilon_coefficients: 1, a_t or -a_t / s_t), so
J_eps,n = c_n J_o,n and the exact GGN diagonal weights row n by w_n = c_n^2:
    H = sum_n c_n^2 diag(J_o,n^T J_o,n)
(`row_weights` below; None means w_n = 1, an epsilon-prediction model). The predictive variance of a weighted sum
of last-layer outputs sum_k g_k o(x_k) under theta ~ N(theta_MAP, diag(1 / P)) is that of one output at the
effective features sum_k g_k x_k with bias coefficient sum_k g_k (`bias_scale`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _per_row(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """values [R] shaped [R, 1, ..., 1] to broadcast against `like` [R, ...]."""
    return values.reshape(-1, *([1] * (like.ndim - 1)))


def conv_padding(layer: nn.Conv2d) -> tuple[tuple[int, int, int, int], str]:
    """(left, right, top, bottom) padding and F.pad mode that reproduce `layer`'s own padding explicitly."""
    kernel, dilation = layer.kernel_size, layer.dilation
    if isinstance(layer.padding, str):
        if layer.padding == "valid":
            pads = [(0, 0), (0, 0)]
        else:  # "same": PyTorch puts the odd extra pixel on the right/bottom
            totals = [d * (k - 1) for d, k in zip(dilation, kernel)]
            pads = [(tot // 2, tot - tot // 2) for tot in totals]
    else:
        pads = [(p, p) for p in layer.padding]
    (top, bottom), (left, right) = pads
    mode = "constant" if layer.padding_mode == "zeros" else layer.padding_mode
    return (left, right, top, bottom), mode


def pad_like_conv(layer: nn.Conv2d, features: torch.Tensor) -> torch.Tensor:
    """features [B,Cin,H,W] padded as `layer` pads them, so that conv2d(..., padding=0) equals layer(...)."""
    pads, mode = conv_padding(layer)
    return F.pad(features, pads, mode=mode) if any(pads) else features


def conv_ggn_diagonal(layer: nn.Conv2d, features: torch.Tensor, eps_channels: int,
                      row_weights: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Exact GGN diagonal of sum_n w_n ||conv(x_n)[:eps_channels] - target||^2 / 2 w.r.t. weight and bias.

    H_w[o, i, u, v] = sum_n w_n sum_p xpad_n[i, stride p + dilation (u, v)]^2 for o < eps_channels (0 otherwise);
    H_b[o] = P sum_n w_n. features [B,Cin,H,W], row_weights w [B] (None: 1) -> {"weight": [Cout,Cin/g,kh,kw],
    "bias": [Cout]} (float64).
    """
    squared = pad_like_conv(layer, features.to(torch.float64)).pow(2)
    weight_sum = float(features.shape[0])
    if row_weights is not None:
        w = row_weights.to(squared.device, torch.float64)
        squared, weight_sum = squared * _per_row(w, squared), float(w.sum())
    squared = squared.sum(0, keepdim=True)  # [1,Cin,Hp,Wp]
    cols = F.unfold(squared, layer.kernel_size, dilation=layer.dilation, stride=layer.stride)  # [1,Cin*k*k,P]
    groups, c_out = layer.groups, layer.out_channels
    per_input = cols.sum(-1).view(groups, layer.in_channels // groups, *layer.kernel_size)
    weight = per_input.repeat_interleave(c_out // groups, dim=0)  # output o belongs to group o // (Cout/g)
    mask = (torch.arange(c_out, device=features.device) < eps_channels).to(torch.float64)
    out = {"weight": weight * mask.view(-1, 1, 1, 1)}
    if layer.bias is not None:
        out["bias"] = mask * (weight_sum * cols.shape[-1])
    return out


def conv_ef_diagonal(layer: nn.Conv2d, features: torch.Tensor, residual: torch.Tensor) -> dict[str, torch.Tensor]:
    """Empirical-Fisher diagonal sum_n (J_n^T r_n)^2: per-example gradients of ||f_n - y_n||^2 / 2, squared.

    features [B,Cin,H,W], residual r = f - y [B,Cout,Ho,Wo] (zero on non-eps channels).
    grad_w[n, o, i, u, v] = sum_p r_n[o, p] xpad_n[i, stride p + dilation (u, v)];  grad_b[n, o] = sum_p r_n[o, p].
    """
    batch, groups = features.shape[0], layer.groups
    cols = F.unfold(pad_like_conv(layer, features.to(torch.float64)), layer.kernel_size,
                    dilation=layer.dilation, stride=layer.stride)  # [B, Cin*k*k, P]
    cols = cols.view(batch, groups, -1, cols.shape[-1])
    r = residual.to(torch.float64).flatten(2).view(batch, groups, layer.out_channels // groups, -1)
    grads = torch.einsum("bgop,bgip->bgoi", r, cols).reshape(batch, *layer.weight.shape)
    out = {"weight": grads.pow(2).sum(0)}
    if layer.bias is not None:
        out["bias"] = residual.to(torch.float64).flatten(2).sum(-1).pow(2).sum(0)
    return out


def linear_ggn_diagonal(layer: nn.Linear, features: torch.Tensor, row_weights: torch.Tensor | None = None
                        ) -> dict[str, torch.Tensor]:
    """Exact GGN diagonal of a linear last layer: H_w[o, j] = sum_n w_n sum_rows(n) x_j^2, H_b[o] = sum_n w_n rows(n).

    features [B, ..., Din] (every leading index is one output row, e.g. one token, of example n); row_weights w [B]
    (None: 1).
    """
    x2 = features.to(torch.float64).pow(2)
    ones = torch.ones(x2.shape[:-1], dtype=torch.float64, device=features.device)
    if row_weights is not None:
        w = row_weights.to(x2.device, torch.float64)
        x2, ones = x2 * _per_row(w, x2), ones * _per_row(w, ones)
    out = {"weight": x2.reshape(-1, layer.in_features).sum(0).expand(layer.out_features, -1).clone()}
    if layer.bias is not None:
        out["bias"] = torch.full((layer.out_features,), float(ones.sum()), dtype=torch.float64, device=features.device)
    return out


def linear_ef_diagonal(layer: nn.Linear, features: torch.Tensor, residual: torch.Tensor) -> dict[str, torch.Tensor]:
    """Empirical-Fisher diagonal of a linear layer: grad_w[n, o, j] = sum_rows r[o] x[j], squared, summed over n.

    features [B, ..., Din], residual [B, ..., Dout].
    """
    batch = features.shape[0]
    x = features.to(torch.float64).reshape(batch, -1, layer.in_features)
    r = residual.to(torch.float64).reshape(batch, -1, layer.out_features)
    out = {"weight": torch.einsum("bto,btj->boj", r, x).pow(2).sum(0)}
    if layer.bias is not None:
        out["bias"] = r.sum(1).pow(2).sum(0)
    return out


def predictive_variance(layer: nn.Module, features: torch.Tensor, inverse_precision: dict[str, torch.Tensor],
                        bias_scale: torch.Tensor | None = None) -> torch.Tensor:
    """Var[W x + g b] under theta ~ N(theta_MAP, diag(inverse_precision)), exact for a layer linear in theta.

    linear: var = (x^2) @ (1/P_w)^T + g^2 / P_b  [B, ..., Dout];
    conv:   var = conv2d(xpad^2, 1/P_w, stride, dilation, groups) + g^2 / P_b  [B, Cout, Ho, Wo];
    g = bias_scale [B] per row (None: 1, the variance of the layer's output itself).
    """
    inv_w = inverse_precision["weight"].to(features.dtype)
    inv_b = inverse_precision.get("bias")
    if isinstance(layer, nn.Linear):
        var = features.pow(2) @ inv_w.T
        inv_b = None if inv_b is None else inv_b.to(features.dtype)
    else:
        squared = pad_like_conv(layer, features).pow(2)
        var = F.conv2d(squared, inv_w, None, stride=layer.stride, dilation=layer.dilation, groups=layer.groups)
        inv_b = None if inv_b is None else inv_b.to(features.dtype).view(-1, 1, 1)
    if inv_b is None:
        return var
    if bias_scale is None:
        return var + inv_b
    return var + _per_row(bias_scale.to(var.dtype).pow(2), var) * inv_b
