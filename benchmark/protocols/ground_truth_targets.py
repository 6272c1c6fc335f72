"""The targets of the ground-truth protocol on the analytic mixture (issue 11 item 2; DESIGN "Estimator kinds").

Each estimator is compared with what it estimates:
- aleatoric (sensitivity and its variants): the SAME estimator run with the exact mixture score eps* on the
  same states x_t of the network's trajectory and the same noise draws (`ExactScoreTwin`, an observer of the
  generation pass). Where the network is exact, the two maps coincide; the difference is the network's error.
  The twin is always the UN-negated estimator (negate off): the target is the quantity, not the row's ordering,
      target = U_exact(x_t),  row = (-1)^negate U_network(x_t),
  so a negated row (`negate = true`) correlates with the target with the opposite sign of the plain row.
- epistemic (bayesdiff, mc_dropout): the spread of x0 over S weight draws theta_s, each shared by the whole
  trajectory, from the same x_T (`shared_theta_draws` / `shared_theta_spread`, estimators.posterior_draws):
      target map = Var_s[x0^s] (unbiased, per pixel),
  a Monte-Carlo estimate whose split-half reliability is reported beside it (ground_truth_reliability);
  and the squared error of the network's sample against the exact-score sample from the same x_T
  (`exact_samples`):   (x0_network - x0_exact)^2.
- every estimator: -log p(x0), the lowest-density set and between-mode samples (`mode_responsibility`).
The old target (the oracle's Var[x0 | x_t] summed over all steps, `OracleObserver`) stays as one extra column,
named for what it is.
"""
from __future__ import annotations

import copy
from dataclasses import replace
from typing import Callable

import torch

from estimators.base import EstimatorResult, UncertaintyEstimator, scale_window

ORACLE = "_oracle"
EXACT_PREFIX = "_exact:"


class OracleObserver(UncertaintyEstimator):
    """Sums the oracle's exact per-pixel Var[x0 | x_t] over the window's steps (default: all of them)."""

    name = ORACLE
    uses_network = False

    def __init__(self, oracle, window: tuple[int, int] = (0, 50)) -> None:
        self.oracle, self.window = oracle, window

    def begin(self, batch) -> None:
        super().begin(batch)
        self.oracle.to(batch.device)
        self.steps = scale_window(self.window, batch.num_steps)
        self.total: torch.Tensor | None = None

    def observe(self, step) -> None:
        if self.steps[0] <= step.index < self.steps[1]:
            var = self.oracle.posterior_variance(step.x_t.to(torch.float64), step.t).to(step.x_t.dtype)
            self.total = var if self.total is None else self.total + var

    def result(self) -> EstimatorResult:
        assert self.total is not None, "the window had no steps"
        return EstimatorResult(pixel=self.total, score=self.total.flatten(1).sum(1))


class ExactScoreTwin(UncertaintyEstimator):
    """Runs an un-negated copy of an aleatoric estimator on the network's states with the exact score.

    The copy is taken with negate off (`target_copy`), so the twin measures the quantity U, whatever the row's
    `negate` option. At every step the copy sees the same x_t, step index and sample indices (hence the same
    noise draws: they are seeded by (seed, estimator stream, sample index, step) and the copy keeps them), but
    model = the oracle and eps = eps*(x_t) (DPM-Solver-2: eps_eff from the oracle's midpoint too). The twin's
    own name, EXACT_PREFIX + name, keeps it apart in the generation's tables.
    """

    uses_network = False

    def __init__(self, estimator: UncertaintyEstimator, oracle) -> None:
        self.inner, self.oracle = target_copy(estimator), oracle
        self.name = EXACT_PREFIX + estimator.name

    def begin(self, batch) -> None:
        super().begin(batch)
        self.oracle.to(batch.device)
        self.inner.begin(replace(batch, model=self.oracle, y=None))

    def observe(self, step) -> None:
        eps = self.oracle.eps(step.x_t, step.t)  # the mixture is unconditional: no labels
        exact = replace(step, model=self.oracle, eps=eps, eps_eff=eps, y=None, features=None, mid_features=None)
        exact.eps_eff, _ = exact.midpoint(step.x_t, eps, None)
        self.inner.observe(exact)

    def result(self) -> EstimatorResult:
        return self.inner.final_result()


def target_copy(estimator: UncertaintyEstimator) -> UncertaintyEstimator:
    """A deep copy of `estimator` with the common options reset (negate off), the same name and parameters."""
    twin = copy.deepcopy(estimator)
    twin.set_common()
    return twin


def with_observers(make_estimators: Callable[[], list], oracle) -> Callable[[], list]:
    """The generation pass's estimators plus the oracle observer and one exact-score twin per aleatoric one."""

    def make() -> list:
        made = list(make_estimators())
        twins = [ExactScoreTwin(e, oracle) for e in made if e.kind == "aleatoric"]
        return [*made, OracleObserver(oracle), *twins]

    return make


def exact_samples(oracle, x_T: torch.Tensor, *, sampler: str, steps: int, seed: int, indices: torch.Tensor,
                  y: torch.Tensor | None = None) -> torch.Tensor:
    """x0 [B,C,H,W] of the exact-score sampler from the same x_T (and DDPM noise) as the network's samples."""
    from benchmark.sampling import sample

    with torch.no_grad():
        return sample(oracle, x_T, sampler=sampler, steps=steps, seed=seed, indices=indices, y=y).x0


#: rows (draws x samples) of one batched regeneration pass: more samples are regenerated in several passes, so
#: raising `weight_draws` costs time, not memory (512 = the 8-draw default's 64 samples in one pass)
ROWS_PER_PASS = 512


def shared_theta_draws(estimator: UncertaintyEstimator, model, x_T: torch.Tensor, *, sampler: str, steps: int,
                       seed: int, indices: torch.Tensor, draws: int, y: torch.Tensor | None = None) -> torch.Tensor:
    """x0^s [S,B,C,H,W] of `draws` = S regenerations from x_T [B,C,H,W], each with one weight draw theta_s of
    `estimator`'s posterior held for the whole trajectory (batched passes of S x b rows, b samples at a time).
    A draw depends on (seed, s) and, for dropout, the sample's index, never on the batch, so the draws are nested:
    the first S' of an S-draw call are those of an S'-draw call with the same seed (independent of each other)."""
    from benchmark.sampling import sample

    per_pass = max(1, ROWS_PER_PASS // int(draws))
    parts = []
    for start in range(0, x_T.shape[0], per_pass):
        chunk, chunk_indices = x_T[start:start + per_pass], indices[start:start + per_pass]
        draw_model = estimator.shared_draws_model(model, draws, seed, chunk_indices.tolist())
        labels = None if y is None else y[start:start + per_pass].repeat(draws)
        with torch.no_grad():
            x0 = sample(draw_model, chunk.repeat(draws, 1, 1, 1), sampler=sampler, steps=steps, seed=seed,
                        indices=chunk_indices.repeat(draws), y=labels).x0
        parts.append(x0.reshape(draws, *chunk.shape))
    return torch.cat(parts, dim=1)


def shared_theta_spread(estimator: UncertaintyEstimator, model, x_T: torch.Tensor, *, sampler: str, steps: int,
                        seed: int, indices: torch.Tensor, draws: int, y: torch.Tensor | None = None) -> torch.Tensor:
    """Var_s[x0^s] [B,C,H,W] (unbiased) over the `draws` regenerations of `shared_theta_draws`."""
    return shared_theta_draws(estimator, model, x_T, sampler=sampler, steps=steps, seed=seed, indices=indices,
                              draws=draws, y=y).var(dim=0, unbiased=True)


def mode_responsibility(oracle, x0: torch.Tensor) -> torch.Tensor:
    """max_k r_k(x0) [B]: the posterior probability of the nearest mode given x0 itself,
    r_k = softmax_k(log w_k - ||x0 - mu_k||^2 / (2 s^2)). Below 0.9 a sample lies between modes (the mode
    interpolation "hallucinations" of Aithal et al., NeurIPS 2024)."""
    x = x0.to(torch.float64).cpu()
    means = oracle.means.to(torch.float64).cpu()
    sq = (x.unsqueeze(1) - means.unsqueeze(0)).pow(2).flatten(2).sum(-1)  # [B, K]
    logits = oracle.log_weights.cpu() - sq / (2 * oracle.std**2)
    return torch.softmax(logits, dim=1).amax(dim=1)


def nearest_mode_radius(oracle, x0: torch.Tensor) -> torch.Tensor:
    """min_k ||x0 - mu_k||^2 / s^2 [B]: the chi-square statistic of x0 under its nearest mixture component.

    A sample of component k has ||x0 - mu_k||^2 / s^2 ~ chi^2_D (D = pixels), so x0 with a radius above the
    99 % quantile of chi^2_D lies outside the typical set of every mode ("off-mode"). In high dimension the
    responsibility of `mode_responsibility` is ~0 or ~1 almost everywhere (a small step off the midpoint
    settles it), so off-mode is the criterion that finds samples between (or beside) the modes there."""
    x = x0.to(torch.float64).cpu()
    means = oracle.means.to(torch.float64).cpu()
    sq = (x.unsqueeze(1) - means.unsqueeze(0)).pow(2).flatten(2).sum(-1)  # [B, K]
    return sq.amin(dim=1) / oracle.std**2


__all__ = ["EXACT_PREFIX", "ORACLE", "ExactScoreTwin", "OracleObserver", "exact_samples", "mode_responsibility",
           "nearest_mode_radius", "shared_theta_draws", "shared_theta_spread", "target_copy", "with_observers"]
