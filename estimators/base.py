"""The estimator interface: accumulate per-step state in `observe`, produce the maps in `result`."""
from __future__ import annotations

import abc
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch

from benchmark.errors import ConfigError

if TYPE_CHECKING:
    from benchmark.models.base import DiffusionModel
    from benchmark.sampling.context import BatchInfo, StepContext

REFERENCE_STEPS = 50
#: what an estimator estimates (DESIGN "Estimator kinds"): the ground-truth protocol picks its target by kind
KINDS = ("aleatoric", "epistemic", "heuristic", "oracle")
#: options every estimator accepts besides its own constructor parameters (see `UncertaintyEstimator.negate`)
COMMON_PARAMETERS = ("negate",)


@dataclass
class EstimatorResult:
    """What one estimator says about one batch.

    pixel: per-pixel uncertainty map [B,C,H,W]; score: per-sample score [B] (higher = less trusted);
    per_step: optional {diffusion timestep t: map [B,C,H,W]}; nfe: extra network evaluations per
    sample this estimator made; seconds: wall-clock spent inside the estimator.
    """

    pixel: torch.Tensor
    score: torch.Tensor
    per_step: dict[int, torch.Tensor] | None = None
    nfe: float = 0.0
    seconds: float = 0.0


def negated_result(result: EstimatorResult) -> EstimatorResult:
    """The same result with pixel map, score and per-step maps multiplied by -1 (the `negate` option).

    Filtering keeps the lowest scores, so a negated estimator keeps the samples the plain one rejects: the
    inverted score is tested as its own row (e.g. `[estimators.sensitivity_neg] type = "sensitivity"
    negate = true`), never by flipping a row in place. Rank statistics (Spearman, AUROC) change sign /
    become 1 - AUROC; variances are negative numbers, so a negated map is an ordering, not a variance.
    """
    per_step = None if result.per_step is None else {t: -m for t, m in result.per_step.items()}
    return replace(result, pixel=-result.pixel, score=-result.score, per_step=per_step)


class UncertaintyEstimator(abc.ABC):
    """Base class of every estimator. Subclasses validate their parameters in __init__.

    Class attributes every estimator declares:
        kind: one of KINDS. "aleatoric" = the data's ambiguity given the network (sensitivity and its
            variants; ground truth: the same estimator on the exact score), "epistemic" = the spread over
            weight draws (bayesdiff, mc_dropout; ground truth: shared-theta regenerations), "heuristic" =
            anything else, "oracle" = uses information a deployed estimator cannot have.
        reference_row: True for floors and oracles (`random`, oracles): reported, never ranked.
        trivial_baseline: True for a 0-NFE statistic of the sample that any verdict must beat; shown, never
            ranked (local_variance, gradient_magnitude, distance_to_mean).
    Common option (accepted by `estimators.create` for every estimator, listed in COMMON_PARAMETERS):
        negate: report -1 x the pixel map and score (`negated_result`), applied by `final_result`, which
            is what the sampling engine calls. Default False.
    """

    name: str = "estimator"
    kind: str = "heuristic"
    reference_row: bool = False
    #: a baseline every estimator is tested against where a protocol compares per item (the `random` floor, the
    #: trivial `local_variance` row): e.g. the sparsification protocol's ause_delta_vs_<name>
    comparison_baseline: bool = False
    #: a 0-NFE statistic of the sample that any verdict must beat; shown, never ranked (`local_variance`,
    #: `gradient_magnitude`, `distance_to_mean`: estimators.final_sample)
    trivial_baseline: bool = False
    #: what a reference row is, in one line (the report and the leaderboard show it beside the row; "" for ranked
    #: estimators; oracles without one get the oracle line)
    reference_explanation: str = ""
    negate: bool = False
    #: whether the estimator needs extra network calls (False for e.g. the random floor)
    uses_network: bool = True

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind not in KINDS:
            raise TypeError(f"{cls.__name__}.kind = {cls.kind!r} is invalid: one of {', '.join(KINDS)}")

    @property
    def stream(self) -> str:
        """The name that seeds this estimator's random draws: its registered type, not the instance name, so
        that variants of one estimator (a negated row, other options) see the same draws (common random
        numbers) and a negated row is exactly -1 x the plain one."""
        return type(self).name

    def set_common(self, negate: object = False) -> "UncertaintyEstimator":
        """Apply the options of COMMON_PARAMETERS (validated; called by `estimators.create`)."""
        if not isinstance(negate, bool):
            raise ConfigError("negate", negate, "true or false", "set negate = true (or remove the key)")
        self.negate = negate
        return self

    def final_result(self) -> EstimatorResult:
        """`result()` with the common options applied (negate): what the sampling engine reports."""
        result = self.result()
        return negated_result(result) if self.negate else result

    def begin(self, batch: "BatchInfo") -> None:
        """Reset state for a new batch (called before the first step)."""
        self.batch = batch

    @abc.abstractmethod
    def observe(self, step: "StepContext") -> None:
        """See one sampler step (x_t, eps, coefficients); may call the model (counted as its NFEs)."""

    @abc.abstractmethod
    def result(self) -> EstimatorResult:
        """The pixel map and score of the batch (nfe / seconds are filled in by the sampling engine)."""

    def shared_draws_model(self, model, draws: int, seed: int, indices) -> "DiffusionModel":
        """Epistemic estimators: a model that evaluates a draw-major batch of `draws` x B rows with weight draw
        theta_s on block s, the same theta_s at every call (estimators.posterior_draws): the brute-force,
        shared-theta ground truth of the spread this estimator approximates. `indices` [B] are the samples'."""
        raise NotImplementedError(f"{type(self).__name__} ({self.kind}) has no weight posterior to draw from")

    def params(self) -> dict:
        """Constructor parameters as given (for manifests and reports)."""
        return dict(getattr(self, "_params", {}))


def scale_window(window: tuple[int, int], steps: int, reference: int = REFERENCE_STEPS) -> tuple[int, int]:
    """Map a half-open window of step indices of a `reference`-step run onto a `steps`-step run.

    Anchored on the fraction of the trajectory, for every sampler alike (a step index counts solver steps):
    step i of an n-step run spans the fraction [i/n, (i+1)/n) of the trajectory, and it belongs to the
    window (a, b) when its midpoint does:   a / reference <= (i + 1/2) / n < b / reference,
    i.e. i in [ceil(a n / reference - 1/2), ceil(b n / reference - 1/2)). The final step (index n - 1, the
    one that lands on the data) is included only when asked for, i.e. when b = reference; a window that
    would be empty keeps the one step nearest to it (a 1-step run keeps its only step).
    Examples for (45, 49), the paper's steps 45..48 of 50 (t = 80..20 on DDIM, t = 0 excluded):
    20 steps -> (18, 19); 25 -> (22, 24); 50 -> (45, 49); 100 -> (90, 98).
    """
    a, b = int(window[0]), int(window[1])
    last = steps if b >= reference or steps == 1 else steps - 1  # exclusive bound of allowed steps

    def first_at_or_after(boundary: int) -> int:  # ceil(boundary * steps / reference - 1/2), exactly
        return -((-(2 * boundary * steps - reference)) // (2 * reference))

    start = min(max(first_at_or_after(a), 0), last - 1)
    stop = min(max(first_at_or_after(b), start + 1), last)
    return start, stop


def validate_window(window: object, field_name: str = "window") -> tuple[int, int]:
    """A half-open window (start, stop) of step indices of a 50-step run, 0 <= start < stop <= 50."""
    try:
        start, stop = (int(v) for v in window)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ConfigError(field_name, window, "a pair (start, stop) of step indices", f"set {field_name} = [45, 49] "
                          f"(two integers, 0 <= start < stop <= {REFERENCE_STEPS})") from None
    if not 0 <= start < stop <= REFERENCE_STEPS:
        raise ConfigError(field_name, window, f"0 <= start < stop <= {REFERENCE_STEPS} (indices of a "
                          f"{REFERENCE_STEPS}-step run, scaled to other step counts)",
                          f"give [start, stop] with start below stop, both in 0..{REFERENCE_STEPS}, e.g. "
                          f"{field_name} = [45, 49] (the paper's steps 45..48 of 50)")
    return start, stop


def validate_m(m: object, field_name: str = "m") -> int:
    if not isinstance(m, int) or isinstance(m, bool) or m < 2:
        raise ConfigError(field_name, m, "an integer >= 2 (a variance needs at least two draws)",
                          f"set {field_name} to an integer >= 2, e.g. {field_name} = 5")
    return m
