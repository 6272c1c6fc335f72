"""`subset_laplace`: Laplace over a random subset of the parameters of ALL layers, propagated by weight sampling
(FLARE, Gupta et al., AISTATS 2026, "Quantifying Epistemic Uncertainty in Diffusion Models").

Posterior (estimators.subset_laplace_posterior, maths in estimators.subset_laplace_math): K = `num_params` entries
drawn uniformly across all the network's parameter tensors (seeded by `subset_seed`), each with a diagonal Laplace
posterior whose curvature is the EMPIRICAL FISHER of the eps-regression likelihood,
    P[k] = sum_n (J_n^T r_n)[k]^2 / sigma^4 + prior_precision,     r_n = f_n(theta) - eps_n,
from per-sample gradients (torch.func vmap(grad)) on `fit_images` noisy training images; every other parameter
stays at the MAP. (The GGN diagonal sum_n sum_pixels (d f_n / d theta_k)^2 would need one backward pass per output
pixel; the empirical Fisher needs one per image.)

Estimate: S = `draws` weight draws theta_1..theta_S ~ N(theta_MAP, diag(1 / P)) on the subset, fixed for the run
(seeded by the run's seed). At a step t of `window` every draw predicts, from the SAME shared state x_t,
    x0_hat_s = (x_t - s_t eps_{theta_s}(x_t, t)) / a_t                         (Tweedie / DDIM Eq. 12)
and the step's map is the unbiased per-pixel variance over the S draws (epistemic); the pixel map and the score
are summed over the window like `sensitivity`. Cost: S NFEs per sample and window step (S networks on B rows each).
Its brute-force target (`shared_draws_model`): the spread of x0 when whole trajectories are regenerated, each under
one weight draw of the same posterior.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch.func import functional_call

from benchmark.errors import MissingAssetError
from benchmark.seeding import derive_seed
from estimators.base import validate_m
from estimators.posterior_draws import SharedDrawModel
from estimators.registry import register
from estimators.requirements import Requirements, TrainingImages
from estimators.subset_laplace_posterior import EpsCall, SubsetLaplace, SubsetSettings
from estimators.windowed import WindowedVarianceEstimator, sample_variance

if TYPE_CHECKING:
    from benchmark.models.base import DiffusionModel
    from benchmark.sampling.context import BatchInfo, StepContext

#: constructor parameters that configure the posterior's fit (SubsetSettings), not the estimate
FIT_KEYS = ("fit_images", "num_params", "subset_seed", "prior_precision", "sigma_noise")


def draw_predictions(model: "DiffusionModel", draws: list[dict[str, torch.Tensor]], x_t: torch.Tensor, t: int,
                     ab_t: float, y: torch.Tensor | None = None) -> torch.Tensor:
    """x0_hat_s [S,B,C,H,W] = (x_t - s_t eps_{theta_s}(x_t, t)) / a_t of every weight draw at the same states x_t
    [B,C,H,W]; each draw is one counted call of B rows (model.eps)."""
    a_t, s_t = math.sqrt(ab_t), math.sqrt(1.0 - ab_t)
    call = EpsCall(model, counted=True)
    with torch.no_grad():
        return torch.stack([(x_t - s_t * functional_call(call, draw, (x_t, t, y))) / a_t for draw in draws])


class SubsetDrawModel(SharedDrawModel):
    """eps under S weight draws of a fitted `SubsetLaplace`, draw s on block s of a draw-major batch, the same draw at
    every call (the shared-theta brute-force target, estimators.posterior_draws)."""

    def __init__(self, base: "DiffusionModel", posterior: SubsetLaplace, draws: int, seed: int) -> None:
        super().__init__(base, draws)
        self.call = EpsCall(base)
        self.weights = posterior.draw_parameters(base, draws, derive_seed(int(seed), "subset-laplace-shared-theta", 0))

    def predict_eps(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        rows = self.blocks(x)
        outs = []
        for s in range(self.draws):
            block = slice(s * rows, (s + 1) * rows)
            outs.append(functional_call(self.call, self.weights[s], (x[block], t[block], None if y is None else y[block])))
        return torch.cat(outs)


@register("subset_laplace")
class SubsetLaplaceEstimator(WindowedVarianceEstimator):
    """Variance of x0_hat over S weight draws of a subset Laplace posterior on the steps of `window` (module doc).

    Args:
        posterior: a fitted `SubsetLaplace` (the run supplies it); None loads the matching fit saved next to the model.
        draws: S weight draws (>= 2), fixed for the run.
        window: half-open window of step indices of a 50-step run, scaled to other step counts.
        fit_images, num_params, subset_seed, prior_precision, sigma_noise: the posterior's fit (SubsetSettings).
        keep_steps: keep the per-step maps {t: U_t}.
    """

    kind = "epistemic"
    requires = Requirements(fitted="posterior")
    paper = "Gupta et al., AISTATS 2026 (FLARE): Laplace over a random subset of all layers"
    needs = "parameters (torch.func per-sample gradients), empirical-Fisher fit on training images"
    nfe_formula = "draws x window steps (fit: fit_images forward+backward passes, once per model and settings)"

    def __init__(self, posterior: SubsetLaplace | None = None, draws: int = 5, window: tuple[int, int] = (45, 49),
                 fit_images: int = 256, num_params: int = 1000, subset_seed: int = 0, prior_precision: float = 1.0,
                 sigma_noise: float = 1.0, keep_steps: bool = False) -> None:
        super().__init__(m=validate_m(draws, "draws"), window=window, keep_steps=keep_steps)
        self.settings = SubsetSettings(fit_images=fit_images, num_params=num_params, subset_seed=subset_seed,
                                       prior_precision=prior_precision, sigma_noise=sigma_noise)
        self.posterior = posterior
        self._draws: list[dict[str, torch.Tensor]] = []

    @classmethod
    def fit_resource(cls, model: "DiffusionModel", training: TrainingImages, params: dict[str, Any]) -> SubsetLaplace:
        """The posterior of `params`' fit settings: loaded from a saved matching fit, else fitted on the run's
        training images (Requirements.fitted)."""
        settings = SubsetSettings(**{k: params[k] for k in FIT_KEYS if k in params})
        return SubsetLaplace.load_or_fit(model, settings, training.folders, lambda: training.load(settings.fit_images),
                                         seed=training.seed, progress=training.progress)

    def begin(self, batch: "BatchInfo") -> None:
        posterior = self._posterior(batch.model)
        self._draws = posterior.draw_parameters(batch.model, self.m, derive_seed(batch.seed, "subset-laplace-draws", 0))
        super().begin(batch)

    def step_variance(self, step: "StepContext") -> torch.Tensor:
        return sample_variance(draw_predictions(step.model, self._draws, step.x_t, step.t, step.ab_t, step.y))

    def shared_draws_model(self, model, draws: int, seed: int, indices) -> SubsetDrawModel:
        """Whole trajectories each under one weight draw of this posterior (estimators.posterior_draws)."""
        return SubsetDrawModel(model, self._posterior(model), draws, seed)

    def _posterior(self, model) -> SubsetLaplace:
        if self.posterior is None:
            source = getattr(model, "source", None)
            folders = [source] if source else []
            try:
                self.posterior = SubsetLaplace.load_or_fit(model, self.settings, folders, _no_fit_data, seed=0)
            except MissingAssetError:
                raise MissingAssetError(
                    f"subset_laplace found no fitted posterior with settings {self.settings} next to "
                    f"{type(model).__name__} ({source!r}). Fix: fit one and pass it: "
                    "post = SubsetLaplace(model, SubsetSettings(...)).fit(loader, num_images=256); "
                    "create('subset_laplace', posterior=post), or run it through a config (the run fits it).") from None
        return self.posterior


def _no_fit_data() -> tuple:
    raise MissingAssetError("no training images to fit the subset Laplace posterior on")


__all__ = ["SubsetDrawModel", "SubsetLaplaceEstimator", "draw_predictions"]
