"""What a denoiser predicts, converted to the noise eps that samplers and estimators work with.

Notation: ab_t = alphas_cumprod[t], a_t = sqrt(ab_t), s_t = sqrt(1 - ab_t), x_t = a_t x0 + s_t eps.
The three parameterisations of diffusers' schedulers (`scheduler_config.json: prediction_type`):

    epsilon        output = eps                                    -> eps = output
    v_prediction   output = v = a_t eps - s_t x0 (Salimans & Ho 2022, eq. 9 ff.)
                                                                   -> eps = a_t v + s_t x_t
    sample         output = x0                                     -> eps = (x_t - a_t x0) / s_t

(these are the inverses diffusers' DDIMScheduler.step uses for `pred_epsilon`). Models with learned variance
(ADM, DiT) output 2C channels [prediction, variance interpolation]; the first C are the prediction.
"""
from __future__ import annotations

import torch

from benchmark.errors import ConfigError

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


def check_prediction_type(prediction_type: str, field: str = "scheduler.prediction_type") -> str:
    """`prediction_type` when it is one of PREDICTION_TYPES, else a ConfigError naming `field`."""
    if prediction_type not in PREDICTION_TYPES:
        raise ConfigError(field, prediction_type, f"one of {', '.join(PREDICTION_TYPES)}",
                          "set prediction_type in the model's scheduler_config.json")
    return prediction_type


def to_epsilon(output: torch.Tensor, x_t: torch.Tensor, alpha_bar_t: torch.Tensor | float,
               prediction_type: str, channels: int) -> torch.Tensor:
    """eps [B,C,H,W] from a network output [B,C or 2C,H,W] at x_t [B,C,H,W].

    `alpha_bar_t` is ab_t per row ([B], or a scalar); `channels` = C (the first C output channels are the
    prediction, the rest a learned variance). epsilon: eps = out; v_prediction: eps = a_t v + s_t x_t;
    sample: eps = (x_t - a_t x0) / s_t. The result has the dtype of `output`.
    """
    check_prediction_type(prediction_type)
    if output.shape[1] not in (channels, 2 * channels):
        raise ConfigError("model output channels", output.shape[1], f"{channels} or {2 * channels} (learned variance)",
                          "check the model's out_channels against its in_channels")
    pred = output[:, :channels]
    if prediction_type == "epsilon":
        return pred
    ab = torch.as_tensor(alpha_bar_t, dtype=pred.dtype, device=pred.device).reshape(-1, 1, 1, 1)
    a_t, s_t = ab.sqrt(), (1 - ab).sqrt()
    x_t = x_t.to(pred.dtype)
    if prediction_type == "v_prediction":
        return a_t * pred + s_t * x_t
    return (x_t - a_t * pred) / s_t


def epsilon_coefficients(alpha_bar_t: torch.Tensor | float, prediction_type: str
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """(c_x, c_out) of the per-timestep affine map eps = c_x x_t + c_out * output (float64, shaped like ab_t):

        epsilon        c_x = 0,         c_out = 1
        v_prediction   c_x = s_t,       c_out = a_t
        sample         c_x = 1 / s_t,   c_out = -a_t / s_t

    The map is affine in the output with a scalar slope per timestep, so a Gaussian over the output maps to
    eps exactly: E[eps] = c_x x_t + c_out E[output], Var[eps] = c_out^2 Var[output] (last-layer Laplace).
    """
    check_prediction_type(prediction_type)
    ab = torch.as_tensor(alpha_bar_t, dtype=torch.float64)
    a_t, s_t = ab.sqrt(), (1 - ab).sqrt()
    if prediction_type == "epsilon":
        return torch.zeros_like(ab), torch.ones_like(ab)
    if prediction_type == "v_prediction":
        return s_t, a_t
    return 1 / s_t, -a_t / s_t


def output_to_eps_scale(alpha_bar_t: torch.Tensor | float, prediction_type: str) -> torch.Tensor:
    """c_out = d eps / d output at ab_t (float64): 1 (epsilon), a_t (v_prediction), -a_t / s_t (sample)."""
    return epsilon_coefficients(alpha_bar_t, prediction_type)[1]
