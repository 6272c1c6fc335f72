"""The analytic oracle: a Gaussian mixture with an exact score, posterior and density.

Data: x0 ~ sum_k w_k N(mu_k, s^2 I). With x_t = a_t x0 + s_t n (a_t = sqrt(ab_t), s_t = sqrt(1 - ab_t)):
    x_t ~ sum_k w_k N(a_t mu_k, v_t I),  v_t = a_t^2 s^2 + s_t^2
    r_k(x_t) = softmax_k( log w_k - ||x_t - a_t mu_k||^2 / (2 v_t) )              responsibilities
    eps*(x_t, t) = -s_t grad log p(x_t) = s_t (x_t - a_t sum_k r_k mu_k) / v_t
    x0 | x_t, k  ~ N(m_k, (s^2 s_t^2 / v_t) I),  m_k = mu_k + (a_t s^2 / v_t)(x_t - a_t mu_k)
    E[x0 | x_t]   = sum_k r_k m_k
    Var[x0 | x_t] = s^2 s_t^2 / v_t + sum_k r_k m_k^2 - (sum_k r_k m_k)^2        (per pixel)
All of it is computed in float64 and returned in the input's dtype.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

from benchmark.errors import ConfigError
from benchmark.models.base import DiffusionModel, linear_beta_alphas_cumprod


class GaussianMixtureModel(DiffusionModel):
    """Exact eps* of a mixture of isotropic Gaussians N(mu_k, std^2 I), means [K,C,H,W]."""

    def __init__(
        self,
        means: torch.Tensor,
        std: float,
        weights: torch.Tensor | Sequence[float] | None = None,
        alphas_cumprod: torch.Tensor | None = None,
    ) -> None:
        means = torch.as_tensor(means, dtype=torch.float64)
        if means.ndim != 4:
            raise ConfigError("means", tuple(means.shape), "must be [K, C, H, W]")
        if not float(std) > 0:
            raise ConfigError("std", std, "must be > 0")
        k = means.shape[0]
        w = torch.full((k,), 1.0 / k, dtype=torch.float64) if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        if w.shape != (k,) or bool((w <= 0).any()) or abs(float(w.sum()) - 1.0) > 1e-6:
            raise ConfigError("weights", tuple(w.shape), f"{k} positive weights summing to 1")
        if alphas_cumprod is None:
            alphas_cumprod = linear_beta_alphas_cumprod()
        super().__init__(alphas_cumprod=alphas_cumprod, sample_shape=means.shape[1:])
        self.register_buffer("means", means, persistent=False)
        self.register_buffer("log_weights", w.log(), persistent=False)
        self.std = float(std)

    # ------------------------------------------------------------------ closed forms
    def _coefficients(self, t: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ab = self.alphas_cumprod.to(x.device)[t].view(-1, 1, 1, 1)
        a, sig2 = ab.sqrt(), 1.0 - ab
        v = ab * self.std**2 + sig2
        return a, sig2, v

    def responsibilities(self, x_t: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """r_k(x_t) [B, K]: posterior probability of component k given x_t."""
        x = x_t.to(torch.float64)
        t = self._timesteps(t, x.shape[0], x.device)
        a, _, v = self._coefficients(t, x)
        diff = x.unsqueeze(1) - a.unsqueeze(1) * self.means.unsqueeze(0)  # [B, K, C, H, W]
        logits = self.log_weights - diff.pow(2).flatten(2).sum(-1) / (2 * v.view(-1, 1))
        return torch.softmax(logits, dim=1)

    def _component_posterior_means(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a, _, v = self._coefficients(t, x)
        gain = (a * self.std**2 / v).unsqueeze(1)
        return self.means.unsqueeze(0) + gain * (x.unsqueeze(1) - a.unsqueeze(1) * self.means.unsqueeze(0))

    def predict_eps(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        x64 = x.to(torch.float64)
        a, sig2, v = self._coefficients(t, x64)
        r = self.responsibilities(x64, t)
        mean_mu = torch.einsum("bk,kchw->bchw", r, self.means)
        return (sig2.sqrt() * (x64 - a * mean_mu) / v).to(x.dtype)

    def posterior_mean(self, x_t: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """E[x0 | x_t] [B,C,H,W]."""
        x = x_t.to(torch.float64)
        t = self._timesteps(t, x.shape[0], x.device)
        r = self.responsibilities(x, t)
        m = self._component_posterior_means(x, t)
        return torch.einsum("bk,bkchw->bchw", r, m).to(x_t.dtype)

    def posterior_variance(self, x_t: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        """Var[x0 | x_t] per pixel [B,C,H,W] (law of total variance over components)."""
        x = x_t.to(torch.float64)
        t = self._timesteps(t, x.shape[0], x.device)
        _, sig2, v = self._coefficients(t, x)
        r = self.responsibilities(x, t)
        m = self._component_posterior_means(x, t)
        mean = torch.einsum("bk,bkchw->bchw", r, m)
        second = torch.einsum("bk,bkchw->bchw", r, m.pow(2))
        within = self.std**2 * sig2 / v
        return (within + (second - mean.pow(2)).clamp_min(0)).to(x_t.dtype)

    def log_density(self, x0: torch.Tensor) -> torch.Tensor:
        """log p(x0) [B] of the data distribution: logsumexp_k (log w_k + log N(x0; mu_k, s^2 I))."""
        x = x0.to(torch.float64)
        d = x[0].numel()
        sq = (x.unsqueeze(1) - self.means.unsqueeze(0)).pow(2).flatten(2).sum(-1)
        log_norm = -0.5 * d * math.log(2 * math.pi * self.std**2)
        return torch.logsumexp(self.log_weights + log_norm - sq / (2 * self.std**2), dim=1)

    def sample_data(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n exact draws x0 [n,C,H,W] from the mixture (float32, on the CPU like every data set): drawn on the CPU
        with a CPU `generator`, so the draws are the same whichever device the oracle was moved to."""
        comp = torch.multinomial(self.log_weights.exp().cpu(), n, replacement=True, generator=generator)
        noise = torch.randn((n, *self.sample_shape), generator=generator, dtype=torch.float64, device="cpu")
        return (self.means.cpu()[comp] + self.std * noise).to(torch.float32)
