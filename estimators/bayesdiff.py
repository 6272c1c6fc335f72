"""BayesDiff (Kou et al., ICLR 2024): last-layer Laplace + uncertainty iteration, with the Skip schedule.

Every sampler step is  x_prev = k x_t + c eps_eff(x_t) + n z  (k = x_coef, c = eps_coef, n = noise_std, from
the engine's grid). Treating x_t as random with diagonal variance V_t and the noise prediction as random under
the last-layer posterior, the uncertainty iteration (BayesDiff Sec. 3, written there for DDIM) is
    Var[x_prev] = k^2 V_t + 2 k c Cov(x_t, eps_t) + c^2 Var[eps_t] + n^2                     (uncertainty step)
    Var[x_prev] = (k + c J_t)^2 V_t + n^2,   J_t = d eps_eff / d x_t per pixel                (skip step)
with V_T = 0 (x_T is given). The skip step is the same linearised update without the network's own variance:
the flow's contraction k + c J_t (about 1 at high noise, < 1 later on DDIM; k alone is > 1) acts on V_t. J_t
is carried from the last uncertainty step's Monte-Carlo slope J_u = Cov(x_u, eps_u) / V_u by a per-pixel
Gaussian model of the data (estimators/bayesdiff_flow.py: exact for Gaussian data). Before the first slope is
measured (steps 1..skip-1: V = 0 at step 0, so no draws) J_t = 1/s_t, the high-noise limit of every score
(an assumption: a model whose eps ignores x has J = 0 there). No extra network call.
skip_rule="public" keeps the public code's Var <- k^2 V_t + n^2 (its `(at_next/at)*var`): on DDIM k^2
compounds over the skipped steps (about 2000x over 40 of 50), so its Var[x_0] is not the variance of anything;
it stays only to reproduce the public results. On an uncertainty step:
  - Cov(x_t, eps_t) and Var_x[eps_MAP] come from S draws x^s = x_t + sqrt(V_t) z_s evaluated in ONE batched
    call of the step's effective eps (S*B rows; DPM-Solver-2: two calls, both stages). Default estimator
    (mc_estimator="regression"): per pixel, the least-squares slope of e^s on x^s, then Cov = slope V_t and
    Var_x = slope^2 V_t + residual variance; it uses the known V_t as a control variate and is exact when
    eps is affine in x. The plain sample moments (mc_estimator="plain") are unbiased too, but k^2 V and
    2 k c Cov nearly cancel on the early steps (k + c slope << k), so with S = 10 their error is amplified
    and V_prev can come out negative (clamped to 0): on the affine test model it scatters Var[x_0] per
    pixel by a factor of several around the truth.
  - Var_theta[eps] is the closed-form Laplace predictive at the trajectory state (one features() call; for
    DPM-Solver-2 one call on 2B rows: the features of both stages, combined with the solver's weights, which
    is exact for the last layer at fixed features);
  - Var[eps_t] = Var_theta[eps] + Var_x[eps_MAP]  (law of total variance; eps_variance="laplace" drops the
    second term, as the public code does).
When V_t = 0 everywhere the draws coincide: the MC call is skipped (Cov = 0, Var_x = 0).
Pixel map = Var[x_0] [B,C,H,W]; sample score = its sum over pixels.

Uncertainty steps are the step indices 0, skip, 2 skip, ... in sampling order (index 0 = the step from x_T),
i.e. the public `uq_array[i] = True for i in range(T-1, 0, -skip)` counted from the start.
NFE per sample (extra over the sampler) = sum over uncertainty steps of f + [V_t > 0] S m, with m = 1 (DDIM,
DDPM) or 2 (DPM-Solver-2) calls per draw and f the features calls: f = 0 when the model shares features with
the sampler's own calls (DiffusersUNet: one forward pass returns eps and phi; for DPM-Solver-2 both the
first-stage and the midpoint call), else 1 (one call of 2B rows for DPM-Solver-2). 50-step DDIM, skip 5, S = 10: 10 uncertainty steps
(0, 5, ..., 45), the first with V = 0, so 9 x 10 = 90 extra NFEs on a DiffusersUNet (140 in all, 2.8x, the
public code's 50 + 9 S), or 10 + 90 = 100 on a model that cannot share features.

Design decision: the mean. The trajectory is the plain sampler's (x0 is unchanged) and E[x_t] is taken to be
that trajectory's x_t: the draws are centred on the state the sample actually passes through, and Var[x_0]
is the uncertainty of the image that was generated. (Propagating E with the MC mean of eps would drift
from the sample, and its skip steps would reuse eps evaluated at the trajectory anyway.)

Calibration, measured (issue 11 item 3, issue 24 item 1; reported by the ground_truth protocol as
calibration_ratio[skip=s], never used to rescale anything). Ratio of the propagated Var[x_0] to the brute-force
predictive variance of the same last-layer posterior with theta SHARED by the whole trajectory (8 weight draws
regenerating each sample from its x_T), both summed over pixels and samples, on the gmm preset with
configs/gmm.toml (DDIM 50 steps, mc_samples 10, regression estimator, posterior fitted on 512 exact mixture
draws, prior 1, GGN; first 64 samples; 95 % percentile bootstrap over samples, 200 replicates; CPU):
    skip = 1 (full BayesDiff):                          0.0058  [0.0054, 0.0064]
    skip = 5 (BayesDiff-Skip, skip_rule="contraction"):  0.0015  [0.0013, 0.0017]   (summed Var[x_0] 0.254)
    skip = 5, skip_rule="public" (k^2 V):                6.93    [6.13, 7.78]      (summed Var[x_0] 1187)
Skip / full = 0.256 (about 1/skip: Skip drops c^2 Var[eps] on 4 of 5 steps and carries the rest like full
BayesDiff). The public rule's 6.93 (~1) was an artefact of k^2 compounding over 40 skipped steps (~2000x), not
calibration. Both rules are far below the shared-theta spread: the recursion adds each step's c^2 Var[eps] as
an independent error, whereas one shared theta makes the steps' errors coherent (they add in amplitude, not in
variance: the constant-features closed form in tests/test_ground_truth.py). Check of the contraction on the
network itself (2 samples, the same draws): over each run of 4 skipped steps, the carried (k + c J)^2 matches
the product of the exact per-pixel diagonal (k + c d eps_p / d x_p)^2 from central finite differences of the
network to +2 % median (log10 ratio +0.009, worst run +0.029); reusing J_u unchanged instead gives up to +24 %
(log10 +0.093) on the late runs, where J_t changes fast. Skip also keeps full BayesDiff's ordering (32 gmm
samples, posterior fitted on 128 draws): Spearman with full 0.993 per score and 0.954 per pixel (mean over
images), against 0.930 and 0.791 for the public rule.

Deviations from the public code (karrykkk/BayesDiff, notes/anchors.md Sec. 1):
- its sample path draws eps_t ~ N(E[eps], Var[eps]) on uncertainty steps, so its images differ from plain
  sampling; here the images are the plain sampler's and E[x_t] = x_t (above).
- DDPM: it scales Var by 1/sqrt(1 - beta_t) instead of the square of the update's coefficient, adds beta_t
  instead of the sampler's posterior variance, and its mean iteration uses beta_t = 0 (at_minus_1 =
  compute_alpha(t)). Here every sampler uses the engine's exact coefficients: k^2, c^2, n^2.
- Var[eps_t]: it uses the Laplace variance at the trajectory only; for eps affine in x (slope a) that misses
  c^2 a^2 V_t, so its recursion is not the variance of the update. Default here: the total variance.
- skipped steps: it scales Var by k^2 (`(at_next/at)*var`), dropping the flow's contraction; here (k + c J_t)^2
  (above); skip_rule="public" keeps k^2 V + n^2 (its rule on DDIM; on DDPM with the engine's k and n).
- its Laplace predictive uses 100 last-layer weight samples; here it is exact (estimators/laplace.py).
- Cov: it uses mean_s(x^s e^s) - E[x] mean_s(e^s) (unbiased, uncentred in e, error amplified as above);
  here the regression estimator by default.
- DPM-Solver-2: it attaches the Laplace variance to the midpoint eps only and draws the midpoint state from
  its own Gaussian; here the draws pass through both solver stages and the variance is that of eps_eff.
"""
from __future__ import annotations

import torch

from benchmark.errors import CapabilityError, ConfigError, MissingAssetError
from estimators.base import EstimatorResult, UncertaintyEstimator, validate_m
from estimators.bayesdiff_flow import flow_contraction, rebase_signal_fraction, signal_fraction_from_slope
from estimators.laplace import LastLayerLaplace, default_path
from estimators.registry import register
from estimators.requirements import Requirements

EPS_VARIANCES = ("total", "laplace")
SKIP_RULES = ("contraction", "public")


def propagate_variance(var_x: torch.Tensor, cov_x_eps: torch.Tensor | float, var_eps: torch.Tensor | float,
                       x_coef: float, eps_coef: float, noise_std: float = 0.0) -> torch.Tensor:
    """Var[x_prev] = k^2 Var[x_t] + 2 k c Cov(x_t, eps_t) + c^2 Var[eps_t] + n^2 (uncertainty iteration), >= 0.

    All terms element-wise [B,C,H,W]; the clamp guards against a negative Monte-Carlo estimate.
    """
    var = x_coef**2 * var_x + 2.0 * x_coef * eps_coef * cov_x_eps + eps_coef**2 * var_eps + noise_std**2
    return var.clamp_min(0.0)


def sample_moments(deviations: torch.Tensor, eps: torch.Tensor, var_x: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain unbiased Monte-Carlo Cov(x, eps) and Var_x[eps] from S draws with known mean of x.

    deviations d_s = x^s - E[x] [S,B,C,H,W], eps e_s [S,B,C,H,W] (var_x unused, for a common signature):
    Cov = sum_s d_s (e_s - e_bar) / (S - 1),  Var = sum_s (e_s - e_bar)^2 / (S - 1).
    """
    centred = eps - eps.mean(0, keepdim=True)
    denom = eps.shape[0] - 1
    return (deviations * centred).sum(0) / denom, centred.pow(2).sum(0) / denom


def regression_moments(deviations: torch.Tensor, eps: torch.Tensor, var_x: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Cov(x, eps) and Var_x[eps] by per-pixel linear regression of e_s on d_s, using the known Var[x]:

        slope = sum_s (d_s - d_bar)(e_s - e_bar) / sum_s (d_s - d_bar)^2
        Cov   = slope Var[x],     Var = slope^2 Var[x] + sum_s (e_s - e_bar - slope (d_s - d_bar))^2 / (S - 2)
    (a control variate: the sampling error of the draws' own spread is replaced by the known Var[x]).
    Exact for eps affine in x; S >= 3. Shapes as in `sample_moments`.
    """
    d = deviations - deviations.mean(0, keepdim=True)
    e = eps - eps.mean(0, keepdim=True)
    spread = d.pow(2).sum(0)
    slope = torch.where(spread > 0, (d * e).sum(0) / spread.clamp_min(torch.finfo(spread.dtype).tiny), 0.0)
    residual = (e - slope * d).pow(2).sum(0) / (eps.shape[0] - 2)
    return slope * var_x, slope.pow(2) * var_x + residual


MC_ESTIMATORS = {"regression": regression_moments, "plain": sample_moments}


@register("bayesdiff")
class BayesDiff(UncertaintyEstimator):
    """Var[x_0] by the BayesDiff uncertainty iteration with last-layer Laplace Var[eps].

    Args:
        laplace: a fitted `LastLayerLaplace` of the sampling model; None loads `default_path(model)`.
        mc_samples: S draws of x_t per uncertainty step (>= 3; >= 2 for "plain"), evaluated in one batched call.
        skip: uncertainty every `skip`-th step (5 = BayesDiff-Skip, 1 = full BayesDiff).
        keep_steps: also return {timestep t: Var[x_t]} of every step.
        eps_variance: "total" (Laplace + variance of eps over the draws) or "laplace" (public code).
        mc_estimator: "regression" (control variate with the known Var[x_t]) or "plain" (sample moments).
        skip_rule: variance on skipped steps, "contraction" ((k + c J_t)^2 V + n^2, module doc) or "public"
            (k^2 V + n^2, the public code's rule, to reproduce its numbers).
    """

    kind = "epistemic"
    wants_step_features = True  # the engine hands over phi(x_t, t) from the sampler's own network call
    requires = Requirements(posterior="laplace")
    state_variance = True  # its map is Var of the sampler state after the last observed step (augmentation)

    def __init__(self, laplace: LastLayerLaplace | None = None, mc_samples: int = 10, skip: int = 5,
                 keep_steps: bool = False, eps_variance: str = "total", mc_estimator: str = "regression",
                 skip_rule: str = "contraction") -> None:
        self.mc_samples = validate_m(mc_samples, "mc_samples")
        if mc_estimator not in MC_ESTIMATORS:
            raise ConfigError("mc_estimator", mc_estimator, f"one of {', '.join(MC_ESTIMATORS)}",
                              'set mc_estimator = "regression" (the default) or "plain"')
        if mc_estimator == "regression" and self.mc_samples < 3:
            raise ConfigError("mc_samples", mc_samples, "an integer >= 3 for mc_estimator='regression' "
                              "(a slope and a residual variance)", "use mc_samples >= 3 or mc_estimator='plain'")
        if not isinstance(skip, int) or isinstance(skip, bool) or skip < 1:
            raise ConfigError("skip", skip, "an integer >= 1 (1 = uncertainty on every step)", "set skip = 5 (the paper's)")
        if eps_variance not in EPS_VARIANCES:
            raise ConfigError("eps_variance", eps_variance, f"one of {', '.join(EPS_VARIANCES)}",
                              f'set eps_variance = "{EPS_VARIANCES[0]}" (the default)')
        if skip_rule not in SKIP_RULES:
            raise ConfigError("skip_rule", skip_rule, f"one of {', '.join(SKIP_RULES)}",
                              f'set skip_rule = "{SKIP_RULES[0]}" (the default)')
        if laplace is not None and not callable(getattr(laplace, "variance_from_features", None)):
            raise ConfigError("laplace", type(laplace).__name__, "a fitted LastLayerLaplace or None",
                              "pass LastLayerLaplace(model).fit(loader, num_images=...)")
        self.laplace, self.skip, self.keep_steps = laplace, skip, bool(keep_steps)
        self.eps_variance, self.mc_estimator, self.skip_rule = eps_variance, mc_estimator, skip_rule
        self._loaded: tuple[int, LastLayerLaplace] | None = None

    # ------------------------------------------------------------------ engine hooks
    def begin(self, batch) -> None:
        super().begin(batch)
        model = batch.model
        if getattr(model, "last_layer", None) is None:
            raise CapabilityError(
                f"bayesdiff needs a model with a last layer (last_layer + predict_features) for its last-layer "
                f"Laplace posterior; {type(model).__name__} has none. Fix: use a DiffusersUNet or a preset model.")
        self._posterior = self.laplace if self.laplace is not None else self._load_default(model)
        self._posterior.check_compatible(model)
        self._var: torch.Tensor | None = None
        self._per_step: dict[int, torch.Tensor] = {}
        # the Gaussian model of the flow's slope (bayesdiff_flow): signal fraction r [B,C,H,W] at ab_ref
        self._signal: torch.Tensor | None = None
        self._ab_ref = 1.0

    def observe(self, step) -> None:
        var = torch.zeros_like(step.x_t) if self._var is None else self._var
        if self.keep_steps:
            self._per_step[step.t] = var.clone()
        c = step.coefficients
        if self._signal is None:  # r = 0: J_t = 1/s_t until a slope is measured
            self._signal, self._ab_ref = torch.zeros_like(step.x_t), step.ab_t
        if step.index % self.skip == 0:
            cov, var_eps = self._eps_moments(step, var)
            self._var = propagate_variance(var, cov, var_eps, c.x_coef, c.eps_coef, c.noise_std)
            if self.skip > 1 and self.skip_rule == "contraction":
                self._record_slope(step, var, cov)
        elif self.skip_rule == "contraction":
            gain = flow_contraction(step.grid, self._signal, self._ab_ref)
            self._var = gain.square() * var + c.noise_std**2
        else:
            self._var = propagate_variance(var, 0.0, 0.0, c.x_coef, c.eps_coef, c.noise_std)

    def _record_slope(self, step, var: torch.Tensor, cov: torch.Tensor | float) -> None:
        """Store the Gaussian model of the slope J_u = Cov(x_u, eps_u) / V_u measured at this uncertainty step
        (pixels with V_u = 0 keep their previous model)."""
        if not isinstance(cov, torch.Tensor):  # V_u = 0 everywhere: nothing measured
            return
        measured = var > 0
        slope = torch.where(measured, cov / var.clamp_min(torch.finfo(var.dtype).tiny), 0.0)
        previous = rebase_signal_fraction(self._signal, self._ab_ref, step.ab_t)
        self._signal = torch.where(measured, signal_fraction_from_slope(step.grid, slope), previous)
        self._ab_ref = step.ab_t

    def result(self) -> EstimatorResult:
        pixel = self._var
        return EstimatorResult(pixel=pixel, score=pixel.flatten(1).sum(1),
                               per_step=dict(self._per_step) if self.keep_steps else None)

    # ------------------------------------------------------------------ one uncertainty step
    def _eps_moments(self, step, var: torch.Tensor) -> tuple[torch.Tensor | float, torch.Tensor]:
        """(Cov(x_t, eps_t), Var[eps_t]) [B,C,H,W] at this step (1 features call + S draws in one call)."""
        var_eps = self._eps_variance(step)
        if not bool((var > 0).any()):
            return 0.0, var_eps
        draws = self.mc_samples
        z = step.randn("bayesdiff-mc", (draws, *step.x_t.shape[1:])).transpose(0, 1)  # [S,B,C,H,W]
        deviations = var.sqrt().unsqueeze(0) * z
        states = (step.x_t.unsqueeze(0) + deviations).reshape(-1, *step.x_t.shape[1:])  # copy-major [S*B,...]
        eps = step.effective_eps(states).view_as(deviations)
        cov, var_eps_state = MC_ESTIMATORS[self.mc_estimator](deviations, eps, var)
        return cov, (var_eps + var_eps_state if self.eps_variance == "total" else var_eps)

    def _eps_variance(self, step) -> torch.Tensor:
        """Var[eps_eff] [B,C,H,W] of the last-layer posterior: Var[eps(x_t, t)] from the features of the one
        evaluation (DDIM, DDPM: no mixing work on the sampling loop's path), or for DPM-Solver-2
        Var[(1 - w) eps(x_t, t) + w eps(u, t_mid)] under one weight draw (LastLayerLaplace.mixture_variance, exact
        for epsilon, v- and x0-prediction)."""
        parts = self._feature_parts(step)
        if len(parts) == 1:
            _, phi, t = parts[0]
            return self._posterior.variance_from_features(phi, t)
        return self._posterior.mixture_variance(parts)

    def _feature_parts(self, step) -> list[tuple[float, torch.Tensor, int]]:
        """(weight, last-layer features, timestep) of eps_eff at the trajectory state: [(1, phi(x_t, t), t)], or for
        DPM-Solver-2 [(1 - w, phi(x_t, t), t), (w, phi(u, t_mid), t_mid)] with u the first-stage state.

        Both come free with the sampler's own calls when the model shares features (step.features,
        step.mid_features); otherwise they cost one features() call (DPM-Solver-2: one call on 2B rows)."""
        g, model = step.grid, step.model
        if g.t_mid is None:
            phi = step.features if step.features is not None else model.features(step.x_t, step.t, step.y)
            return [(1.0, phi, step.t)]
        if step.features is not None and step.mid_features is not None:
            return [(1.0 - g.mid_weight, step.features, step.t), (g.mid_weight, step.mid_features, g.t_mid)]
        u = g.mid_x_coef * step.x_t + g.mid_eps_coef * step.eps
        batch = step.x_t.shape[0]
        t = torch.tensor([step.t] * batch + [g.t_mid] * batch, device=step.x_t.device)
        both = model.features(torch.cat([step.x_t, u]), t, step.repeat_labels(2))
        return [(1.0 - g.mid_weight, both[:batch], step.t), (g.mid_weight, both[batch:], g.t_mid)]

    def shared_draws_model(self, model, draws: int, seed: int, indices):
        """Last-layer weight draws of this estimator's Laplace posterior (estimators.posterior_draws)."""
        from estimators.posterior_draws import LaplaceDrawModel

        posterior = self.laplace if self.laplace is not None else self._load_default(model)
        return LaplaceDrawModel(model, posterior, draws, seed)

    def _load_default(self, model) -> LastLayerLaplace:
        if self._loaded is not None and self._loaded[0] == id(model):
            return self._loaded[1]
        path = default_path(model)
        if not path.is_file():
            raise MissingAssetError(
                f"bayesdiff found no fitted last-layer Laplace posterior for {type(model).__name__} at {path}. "
                "Fix: fit it once (a loader of training images in [-1, 1]):\n"
                "    from estimators.laplace import LastLayerLaplace, default_path\n"
                "    LastLayerLaplace(model).fit(loader, num_images=1000).save(default_path(model))\n"
                "or pass a fitted one: create('bayesdiff', laplace=la).")
        posterior = LastLayerLaplace(model).load(path)
        self._loaded = (id(model), posterior)
        return posterior
