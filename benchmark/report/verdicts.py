"""The run's verdicts against the floor, with their error rate controlled over the run's family.

A *verdict test* is a metrics.csv row with a p-value (metrics.significance), one per question: a filter's
`delta_vs_random[space]` (FID of the kept K minus the mean over R random K-subsets, randomization test) and
`precision_delta_vs_random[space]` (exact hypergeometric test); on sparsification, where trivial maps of the image
(local variance, gradient magnitude: `trivial_baseline` estimators) already rank the error's structure, the floor is
the best trivial baseline: `ause_delta_vs_trivial` (paired t-test over images) and the structure-controlled
`partial_spearman_given_trivial` (one-sample t-test of 0), and only a run without trivial baselines falls back to
`aurg` against `random` (one-sample t-test of 0; ΔAUSE vs `random` is -AURG up to a constant, never a second test);
on the mixture `spearman_score_vs_neg_log_density` (Spearman's test of rho = 0) and the `auroc_*` rows (Mann-Whitney
test of AUROC = 0.5). Each verdict carries the test's minimum detectable effect (80 % power at the raw 5 % level,
and `Family.detectable` at the family's strictest level).

The *family* is every such test of every ranked estimator in the run's headline (reference rows such as `random`
and oracles are not in it). Its p-values are adjusted together by `run.multiplicity` (default "holm": the
probability of at least one false "beats / worse than random" in the run is <= 5 %; "bh": the expected share of
false ones among them is <= 5 %). A verdict is *better* when the adjusted p <= ALPHA and the effect lies on the
metric's better side, *worse* in the mirror case. The plain 95 % intervals are not adjusted.

The `random` row's own tests are kept out of the family and reported as a check: each is one draw from the null,
significant at the raw 5 % about one time in twenty.
"""
from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmark.report import metric_info
from metrics.significance import MULTIPLICITY, adjust, detectable_at_level

ALPHA = 0.05
FLOOR = "random"
#: (protocol, pattern on the metric's base name) of the rows that test an estimator against the floor
TESTS = (
    ("filtered_fid", "delta_vs_random"),
    ("precision_recall", "precision_delta_vs_random"),
    ("sparsification", "aurg"),  # only without trivial baselines (`_superseded`)
    ("sparsification", "ause_delta_vs_trivial"),
    ("sparsification", "partial_spearman_given_trivial"),
    ("ground_truth", "spearman_score_vs_neg_log_density"),
    ("ground_truth", "spearman_score_vs_neg_log_density_delta_vs_trivial"),
    ("ground_truth", "auroc_*"),  # and auroc_*_delta_vs_trivial
    ("hallucination", "auroc_hallucination"),  # and _delta_vs_trivial (benchmark.protocols.label_rows)
    ("hallucination", "auroc_hallucination_delta_vs_trivial"),
    ("failure_labels", "auroc_*"),  # auroc_<label> and auroc_<label>_delta_vs_trivial
)
#: a test `<base>` is left out where the same estimator has `<base>` + TRIVIAL_SUFFIX: the same question against the
#: best trivial baseline instead of the floor (benchmark.protocols.ground_truth_trivial)
TRIVIAL_SUFFIX = "_delta_vs_trivial"
#: a test left out of the family where the same estimator has the stronger test of the same question
SUPERSEDED_BY = {("sparsification", "aurg"): "ause_delta_vs_trivial"}
#: degrees of freedom of a protocol's verdict tests from the row's n (absent: a normal test): t-tests over the n
#: images; the randomization tests' t law has R - 1 >= 99 degrees of freedom (99 is the conservative choice)
TEST_DOF = {"sparsification": lambda n: max(int(n) - 1, 1), "filtered_fid": lambda n: 99}
#: headline columns shown as raw values whose verdict is another row's test (column base -> test base)
TEST_OF = {"precision": "precision_delta_vs_random", "ause": "ause_delta_vs_trivial"}


@dataclass(frozen=True)
class Verdict:
    """One test of the family: the estimator, the metric tested, the effect, its raw and adjusted p-value, and
    the outcome (+1 better than the floor, -1 worse, 0 not distinguishable)."""

    protocol: str
    estimator: str
    metric: str
    value: float
    ci_low: float
    ci_high: float
    p_value: float
    adjusted_p: float
    outcome: int
    detectable: float = math.nan  # |effect| the test sees with 80 % power at the raw 5 % level (NaN: not recorded)
    n: int = 0  # the row's n (images for the paired t-tests)


@dataclass(frozen=True)
class Family:
    """The run's verdicts and how their error is controlled."""

    verdicts: tuple[Verdict, ...]
    method: str
    floor_checks: tuple[Verdict, ...] = ()  # the `random` row's own tests (raw p), outside the family

    @property
    def size(self) -> int:
        return len(self.verdicts)

    def outcome(self, estimator: str, metric: str) -> int:
        """+1 / -1 / 0 for the estimator on `metric` (or on the test that stands for a raw headline column)."""
        for wanted in tested_metrics(metric):
            for v in self.verdicts:
                if v.estimator == estimator and v.metric == wanted:
                    return v.outcome
        return 0

    def detectable(self, v: Verdict) -> float:
        """The |effect| the verdict's test sees with 80 % power at the family's strictest level (ALPHA / size for
        Holm and BH, whose first step is Bonferroni's; ALPHA for "none"), with the test's own quantiles
        (`TEST_DOF`)."""
        level = ALPHA if self.method == "none" else ALPHA / max(self.size, 1)
        if not math.isfinite(v.detectable):
            return math.nan
        return detectable_at_level(v.detectable, level, dof=TEST_DOF.get(v.protocol, lambda n: None)(v.n))

    def description(self) -> str:
        """One sentence naming the family, its size, its members and the method."""
        names = ", ".join(sorted({metric_info.label(v.metric, with_arrow=False) for v in self.verdicts}))
        return (f"{self.size} tests of ranked estimators, one per question (every estimator × {names}): against the "
                f"`random` floor, and on sparsification against the best trivial baseline; adjusted by {self.method}: "
                f"{MULTIPLICITY[self.method]}, at {ALPHA:.0%}")


def tested_metrics(metric: str) -> list[str]:
    """The metric names whose test stands for a headline column, strongest first: `<base>_delta_vs_trivial`, the
    column's own test or the test of a raw value (TEST_OF)."""
    parsed = metric_info.parse(metric)
    bases = [parsed.base + TRIVIAL_SUFFIX, TEST_OF.get(parsed.base, parsed.base)]
    return [f"{b}[{parsed.space}]" if parsed.space else b for b in bases]


def is_test(protocol: str, metric: str) -> bool:
    base = metric_info.parse(metric).base
    return any(protocol == p and fnmatch.fnmatch(base, pattern) for p, pattern in TESTS)


def _outcome(direction: int, value: float, adjusted_p: float) -> int:
    if not math.isfinite(adjusted_p) or adjusted_p > ALPHA or direction == 0 or value == 0:
        return 0
    return direction if value > 0 else -direction


def _direction(metric: str) -> int:
    """+1 when a larger value is better, -1 when smaller is, for a test row (an AUROC's floor is 0.5)."""
    return metric_info.direction(metric)


def _effect(metric: str, value: float) -> float:
    """The signed distance from the floor's expectation (0, or 0.5 for an AUROC)."""
    base = metric_info.parse(metric).base
    return value - 0.5 if base.startswith("auroc") and "_delta_vs_" not in base else value


def family(frame: pd.DataFrame, is_reference, method: str = "holm") -> Family:
    """The run's family of tests (rows of `frame` with a finite p-value that `is_test`), adjusted by `method`.
    `is_reference(name)` says which rows are references (kept out; `random`'s go to floor_checks)."""
    if "p_value" not in frame.columns:
        return Family((), method)
    rows = [r for r in frame.itertuples() if is_test(r.protocol, r.metric) and math.isfinite(float(r.p_value))]
    present = {(r.protocol, r.estimator, metric_info.parse(r.metric).base) for r in rows}
    rows = [r for r in rows if not _superseded(r, present)]
    members = [r for r in rows if not is_reference(r.estimator)]
    adjusted = adjust([float(r.p_value) for r in members], method) if members else np.array([])
    verdicts = tuple(_verdict(r, p) for r, p in zip(members, adjusted))
    checks = tuple(_verdict(r, float(r.p_value)) for r in rows if r.estimator == FLOOR and _null_for_floor(r.metric))
    return Family(verdicts, method, checks)


def _null_for_floor(metric: str) -> bool:
    """Whether the `random` row's test is a draw from its null: not a comparison with the trivial baselines (which
    carry information, so `random` is expected to lose to them)."""
    base = metric_info.parse(metric).base
    return "_delta_vs_" not in base or base.endswith("_delta_vs_random")


def _superseded(row, present: set[tuple[str, str, str]]) -> bool:
    """True for a test whose question the same estimator's stronger test answers (SUPERSEDED_BY)."""
    base = metric_info.parse(row.metric).base
    stronger = [SUPERSEDED_BY.get((row.protocol, base)), base + TRIVIAL_SUFFIX]
    return any(s is not None and (row.protocol, row.estimator, s) in present for s in stronger)


def _verdict(row, adjusted_p: float) -> Verdict:
    value = float(row.value)
    outcome = _outcome(_direction(row.metric), _effect(row.metric, value), adjusted_p)
    return Verdict(row.protocol, row.estimator, row.metric, value, float(row.ci_low), float(row.ci_high),
                   float(row.p_value), float(adjusted_p), outcome, float(getattr(row, "detectable_effect", math.nan)),
                   int(getattr(row, "n", 0) or 0))
