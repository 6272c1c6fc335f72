"""Does a filter remove bad samples or remove spread? One sentence per filter and feature space, from metrics.csv.

filtered_fid splits each filter's ΔFID against random K-subsets into three terms (benchmark/protocols/
fidelity_diversity.py, metrics/fid_decomposition.py), which sum to it:
    ΔFID = Δ||mu_kept - mu_real||^2 (mean) + Δtr(S_kept) (trace) + Δ(-2 tr((S_kept S_real)^1/2)) (cross)
The term of largest |value| is where ΔFID mainly comes from: the mean term means the kept set's centre moved
(towards the real data: fidelity, "removes bad samples"), the trace term that its spread changed (smaller: a narrower
kept set, "removes spread"), the cross term how its covariance lines up with the real one. Where the space has real
features, ΔKID (no size bias, less moved by spread alone) and Δcoverage say whether they agree: KID *agrees* when
it moves significantly (raw p <= ALPHA) in ΔFID's direction; coverage *agrees* with "removes spread" when it falls
significantly, and with "removes bad samples" when it does not. The p-values are the rows' raw randomization tests
(not adjusted: these sentences describe, the verdicts are benchmark.report.verdicts').

`characterise(frame)` is pure: it reads the rows (columns protocol, estimator, metric, value, p_value) and returns
one FilterCharacter per filter and space that has a `delta_vs_random` row and its three terms.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from benchmark.report import metric_info

PROTOCOL = "filtered_fid"
ALPHA = 0.05
TERMS = ("mean", "trace", "cross")
#: what a term's dominance means, by the sign of that term
MEANING = {("mean", -1): "the kept set's centre is closer to the real data (fidelity: removes bad samples)",
           ("mean", 1): "the kept set's centre is farther from the real data (keeps bad samples)",
           ("trace", -1): "the kept set is narrower than a random one (removes spread)",
           ("trace", 1): "the kept set is wider than a random one (keeps spread)",
           ("cross", -1): "the kept set's covariance lines up better with the real one",
           ("cross", 1): "the kept set's covariance lines up worse with the real one"}

#: (kind, coverage agrees) -> what coverage adds to the sentence
COVERAGE_READING = {("spread", True): ", as for a narrower set", ("spread", False): ", unlike a narrower set",
                    ("fidelity", True): ": the spread is kept", ("fidelity", False): ": the kept set is also narrower"}


@dataclass(frozen=True)
class Measured:
    """One row's value and raw p-value (NaN when the row is absent)."""

    value: float = math.nan
    p_value: float = math.nan

    @property
    def present(self) -> bool:
        return math.isfinite(self.value)

    def moves(self) -> int:
        """+1 / -1: significantly up / down at the raw ALPHA level; 0 otherwise."""
        if not (self.present and math.isfinite(self.p_value)) or self.p_value > ALPHA or self.value == 0:
            return 0
        return 1 if self.value > 0 else -1


@dataclass(frozen=True)
class FilterCharacter:
    """A filter's ΔFID in one space, what it mainly comes from, and whether KID and coverage agree
    (kid_agrees / coverage_agrees: None where the space has no such row)."""

    estimator: str
    space: str
    delta_fid: Measured
    terms: dict[str, Measured]
    main_term: str  # "mean" | "trace" | "cross": the term of largest |value|
    kind: str  # "fidelity" (the mean term), "spread" (the trace term) or "covariance" (the cross term)
    kid: Measured
    coverage: Measured
    density: Measured
    kid_agrees: bool | None
    coverage_agrees: bool | None
    sentence: str


def characterise(frame: pd.DataFrame) -> list[FilterCharacter]:
    """One FilterCharacter per (estimator, space) with a filtered_fid delta_vs_random row and its three terms, in
    the frame's order."""
    rows = frame[frame.protocol == PROTOCOL]
    table = {(r.estimator, r.metric): Measured(float(r.value), float(r.p_value)) for r in rows.itertuples()}
    out = []
    for estimator, metric in table:
        parsed = metric_info.parse(metric)
        if parsed.base != "delta_vs_random" or parsed.space is None:
            continue
        get = lambda base: table.get((estimator, f"{base}[{parsed.space}]"), Measured())  # noqa: E731
        terms = {term: get(f"fid_{term}_term_delta_vs_random") for term in TERMS}
        if all(t.present for t in terms.values()):
            out.append(_character(estimator, parsed.space, table[(estimator, metric)], terms,
                                  get("kid_delta_vs_random"), get("coverage_delta_vs_random"),
                                  get("density_delta_vs_random")))
    return out


def _character(estimator: str, space: str, delta: Measured, terms: dict[str, Measured], kid: Measured,
               coverage: Measured, density: Measured) -> FilterCharacter:
    main = max(TERMS, key=lambda t: abs(terms[t].value))
    kind = {"mean": "fidelity", "trace": "spread", "cross": "covariance"}[main]
    sign = 1 if terms[main].value > 0 else -1
    kid_agrees = None if not kid.present else kid.moves() != 0 and kid.moves() == (1 if delta.value > 0 else -1)
    coverage_agrees = None
    if coverage.present and kind in ("fidelity", "spread"):
        coverage_agrees = (coverage.moves() == -1) == (kind == "spread")
    sentence = (f"`{estimator}` [{space}]: ΔFID {delta.value:+.3g} ({_p(delta)}) comes mainly from the {main} term "
                f"({terms[main].value:+.3g}; mean {terms['mean'].value:+.3g}, trace {terms['trace'].value:+.3g}, "
                f"cross {terms['cross'].value:+.3g}): {MEANING[(main, sign)]}. "
                + _agreement(kid, coverage, kid_agrees, coverage_agrees, kind))
    return FilterCharacter(estimator, space, delta, terms, main, kind, kid, coverage, density, kid_agrees,
                           coverage_agrees, sentence.strip())


def _p(measured: Measured) -> str:
    return f"p = {measured.p_value:.2g}" if math.isfinite(measured.p_value) else "no test"


def _agreement(kid: Measured, coverage: Measured, kid_agrees: bool | None, coverage_agrees: bool | None,
               kind: str) -> str:
    if not kid.present and not coverage.present:
        return "KID and coverage were not measured in this space (no real features)."
    parts = []
    if kid.present:
        said = "agrees" if kid_agrees else "does not confirm it" if kid.moves() == 0 else "disagrees"
        parts.append(f"KID {said} (ΔKID {kid.value:+.3g}, {_p(kid)})")
    if coverage.present:
        moved = {-1: "falls", 1: "rises", 0: "does not move significantly"}[coverage.moves()]
        parts.append(f"coverage {moved} (Δcoverage {coverage.value:+.3g}, {_p(coverage)})"
                     + COVERAGE_READING.get((kind, coverage_agrees), ""))
    return "; ".join(parts) + "."
