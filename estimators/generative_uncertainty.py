"""`generative_uncertainty`: Jazbec et al., "Generative Uncertainty in Diffusion Models" (arXiv 2502.20946).

Epistemic uncertainty of a *sample*: how much the generated image would change if the network's weights
were another plausible draw from their posterior. With the fitted diagonal last-layer Laplace posterior
N(theta_MAP, diag(1/P)) (the one BayesDiff uses, estimators/laplace.py):
    theta_m = theta_MAP + z_m / sqrt(P),  z_m ~ N(0, I),  m = 1..M     (drawn once per run, shared by all samples)
each draw is held fixed for the WHOLE trajectory, which starts from the SAME x_T as the sampler's:
    x^m_prev = k x^m_t + c eps_{theta_m}(x^m_t, t) + n z_t                (the engine's step coefficients)
(eps_{theta_m} = last layer with weights theta_m applied to the frozen features phi(x^m_t, t); DDPM's noise z_t
is the sampler's own draw, DPM-Solver-2's midpoint is taken with theta_m as well). The M + 1 images
{x0^MAP (the sampler's own sample), x0^1..x0^M} are embedded by a feature extractor f (domain classifier,
Inception, or raw pixels) and the score is the entropy of a diagonal Gaussian fitted to the embeddings:
    H = 1/2 sum_d log(Var_d + sigma^2) + D/2 (log 2 pi + 1),   Var_d = 1/(M+1) sum_m (f_d^m - mean_m f_d^m)^2
(paper Eq. for the semantic likelihood's entropy; sigma^2 = 1e-3 as the public code metodj/DIFF-UQ, which
uses the population variance over the M + 1 members, clipped at 0). The paper embeds with CLIP ViT-B/32; here
the feature space is configurable (no weights are downloaded). Pixel map: the per-pixel population variance
of the M + 1 images [B,C,H,W].
Extra NFEs per sample: M x (the sampler's NFEs per sample): M x steps for DDIM / DDPM, 2 M x steps for
DPM-Solver-2 (features calls of M*B rows), plus M + 1 feature-extractor passes (not diffusion NFEs).
Deviation: the public code regenerates the M images in separate full runs; here the M trajectories run
alongside the sampler's, batched, with identical arithmetic (tests compare them with M + 1 separate runs).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch
from torch.func import functional_call

from benchmark.errors import CapabilityError, ConfigError
from benchmark.seeding import derive_seed, per_sample_randn
from estimators.base import EstimatorResult, UncertaintyEstimator
from estimators.laplace import LastLayerLaplace, default_path
from estimators.registry import register
from estimators.requirements import Requirements
from estimators.windowed import stack_copies, unstack_copies

if TYPE_CHECKING:
    from benchmark.sampling.context import BatchInfo, StepContext

FEATURE_SPACES = ("classifier", "inception", "pixels")
WEIGHT_STREAM = "generative-uncertainty-weights"


# ---------------------------------------------------------------------------------------------- pure math
def gaussian_entropy(features: torch.Tensor, sigma2: float = 1e-3) -> torch.Tensor:
    """Entropy of N(mean, diag(Var + sigma2)) per sample: features [B, M+1, D] -> [B].

    H = 1/2 sum_d log(Var_d + sigma2) + D/2 (log 2 pi + 1), Var_d the population variance over the M+1 members.
    """
    var = features.var(dim=1, unbiased=False).clamp_min(0.0)
    dim = features.shape[-1]
    return 0.5 * torch.log(var + sigma2).sum(-1) + 0.5 * dim * (math.log(2 * math.pi) + 1.0)


def draw_last_layers(posterior: LastLayerLaplace, m: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """M weight draws {name: theta_MAP + z / sqrt(P)} of the last layer, seeded by the run's `seed` alone
    (estimators.posterior_draws.laplace_weight_draws on this estimator's own stream)."""
    from estimators.posterior_draws import laplace_weight_draws

    return laplace_weight_draws(posterior, m, derive_seed(seed, WEIGHT_STREAM, 0))


# ---------------------------------------------------------------------------------------------- the estimator
@register("generative_uncertainty")
class GenerativeUncertainty(UncertaintyEstimator):
    """Entropy of the M + 1 regenerated samples' features under last-layer Laplace weight draws.

    Args:
        laplace: a fitted `LastLayerLaplace` of the sampling model; None loads `default_path(model)` (the run
            hands over the posterior BayesDiff uses).
        m: weight draws (the paper: 5); M + 1 images with the MAP sample.
        features: "classifier" (the preset's domain classifier), "inception" (offline weights) or "pixels".
        sigma2: the entropy's isotropic floor sigma^2 (paper: 1e-3).
        extractor: a callable images [N,C,H,W] in [-1, 1] -> features [N, D] (the run passes the feature
            space's extractor); None builds "inception" / "pixels" here ("classifier" needs one).
    """

    kind = "epistemic"
    reference_row = False
    nfe_formula = "m x sampler NFEs (DDIM/DDPM: m x steps)"
    paper = "Jazbec et al., 2025 (arXiv 2502.20946)"
    requires = Requirements(posterior="laplace", feature_extractor="extractor")
    needs = "last layer + features, fitted Laplace posterior, a feature extractor"

    def __init__(self, laplace: LastLayerLaplace | None = None, m: int = 5, features: str = "classifier",
                 sigma2: float = 1e-3, extractor: Callable | None = None) -> None:
        if not isinstance(m, int) or isinstance(m, bool) or m < 1:
            raise ConfigError("m", m, "an integer >= 1 (weight draws; M + 1 images with the MAP sample)", "set m = 5")
        if features not in FEATURE_SPACES:
            raise ConfigError("features", features, f"one of {', '.join(FEATURE_SPACES)}")
        if isinstance(sigma2, bool) or not isinstance(sigma2, (int, float)) or not sigma2 > 0:
            raise ConfigError("sigma2", sigma2, "a number > 0 (the paper uses 1e-3)", "set sigma2 = 0.001")
        if laplace is not None and not callable(getattr(laplace, "variance_from_features", None)):
            raise ConfigError("laplace", type(laplace).__name__, "a fitted LastLayerLaplace or None")
        if extractor is not None and not callable(extractor):
            raise ConfigError("extractor", type(extractor).__name__, "a callable images -> features or None")
        self.laplace, self.m, self.features, self.sigma2 = laplace, m, features, float(sigma2)
        self.extractor = extractor
        self._cache: tuple[int, int, list] | None = None  # (id(posterior), seed, draws)

    # ------------------------------------------------------------------ engine hooks
    def begin(self, batch: "BatchInfo") -> None:
        super().begin(batch)
        model = batch.model
        if getattr(model, "last_layer", None) is None:
            raise CapabilityError(
                f"generative_uncertainty needs a model with a last layer (last_layer + predict_features) for its "
                f"last-layer Laplace weight draws; {type(model).__name__} has none. Fix: use a DiffusersUNet or a "
                "preset model, or drop generative_uncertainty from the estimators.")
        if self.extractor is None and self.features == "classifier":
            raise ConfigError("generative_uncertainty.features", "classifier",
                              "a domain classifier handed over by the run (extractor=...)",
                              "run it through `python -m benchmark run`, pass extractor=, or use features = "
                              "'inception' or 'pixels'")
        self._posterior = self.laplace or LastLayerLaplace(model).load(default_path(model))
        self._posterior.check_compatible(model)
        self._decode = getattr(model, "decode", None)  # a latent model's regenerations are embedded as images
        key = (id(self._posterior), batch.seed)
        if self._cache is None or self._cache[:2] != key:
            self._cache = (*key, draw_last_layers(self._posterior, self.m, batch.seed))
        self._draws = self._cache[2]
        self._states: torch.Tensor | None = None  # [M*B,C,H,W], copy-major
        self._map_next: torch.Tensor | None = None

    def observe(self, step: "StepContext") -> None:
        states = stack_copies(step.x_t, self.m) if self._states is None else self._states
        g, c = step.grid, step.coefficients
        labels = step.repeat_labels(self.m)
        eps = self._draw_eps(states, step.t, labels, step.model)
        if g.t_mid is not None:  # DPM-Solver-2: the midpoint with the same weight draw
            u = g.mid_x_coef * states + g.mid_eps_coef * eps
            eps = (1.0 - g.mid_weight) * eps + g.mid_weight * self._draw_eps(u, g.t_mid, labels, step.model)
        states = c.x_coef * states + c.eps_coef * eps
        map_next = c.x_coef * step.x_t + c.eps_coef * step.eps_eff
        if c.noise_std > 0:  # the sampler's own DDPM noise (engine: stream "ddpm-noise")
            noise = per_sample_randn(step.seed, step.indices, step.x_t.shape[1:], stream="ddpm-noise",
                                     step=g.index, device=step.x_t.device, dtype=step.x_t.dtype)
            states = states + c.noise_std * stack_copies(noise, self.m)
            map_next = map_next + c.noise_std * noise
        self._states, self._map_next = states, map_next

    def result(self) -> EstimatorResult:
        if self._states is None or self._map_next is None:
            raise RuntimeError(f"{self.name}: no step was observed; call begin() and observe() every step first")
        images = torch.cat([self._map_next.unsqueeze(0), unstack_copies(self._states, self.m)])  # [M+1,B,C,H,W]
        pixel = images.var(dim=0, unbiased=False)
        flat = images.reshape(-1, *images.shape[2:])
        feats = self._embed(self._decode(flat) if callable(self._decode) else flat)  # [(M+1)*B, D]
        feats = feats.reshape(self.m + 1, images.shape[1], -1).transpose(0, 1)  # [B, M+1, D]
        return EstimatorResult(pixel=pixel, score=gaussian_entropy(feats, self.sigma2).to(pixel.device, pixel.dtype))

    def shared_draws_model(self, model, draws: int, seed: int, indices):
        """Last-layer weight draws of this estimator's Laplace posterior (ground truth: estimators.posterior_draws)."""
        from estimators.posterior_draws import LaplaceDrawModel

        posterior = self.laplace if self.laplace is not None else LastLayerLaplace(model).load(default_path(model))
        return LaplaceDrawModel(model, posterior, draws, seed)

    # ------------------------------------------------------------------ helpers
    def _draw_eps(self, states: torch.Tensor, t: int, labels, model) -> torch.Tensor:
        """eps of copy m under weight draw m: one features call of M*B rows (M NFEs per sample)."""
        phi = unstack_copies(model.features(states, t, labels), self.m)  # [M,B,...]
        layer = self._posterior.layer
        return self._posterior.eps_from_output(torch.cat([functional_call(layer, self._draws[k], (phi[k],))
                                                          for k in range(self.m)]), states, t)

    def _embed(self, images: torch.Tensor) -> torch.Tensor:
        """Features [N, D] (float64) of images [N,C,H,W] in the configured space."""
        if self.features == "pixels" and self.extractor is None:
            return images.flatten(1).to(torch.float64)
        if self.extractor is None:
            from metrics import build_feature_extractor

            self.extractor = build_feature_extractor(self.features)
        features = np.asarray(self.extractor(images.detach().cpu()), dtype=np.float64)
        return torch.as_tensor(features, device=images.device)


__all__ = ["FEATURE_SPACES", "GenerativeUncertainty", "draw_last_layers", "gaussian_entropy"]
