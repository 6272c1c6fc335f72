"""What `regress` found, in both modes, and the three forms it is written in: JSON (for scripts), JUnit XML (one
test case per metric, a failure per flagged one: CI systems annotate them) and Markdown (a pull-request comment).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

@dataclass(frozen=True)
class MetricChange:
    """One metric's comparison (both modes). `status`: ok, untested (no interval to judge by), regressed, changed
    (no direction, or tolerance mode), missing."""

    protocol: str
    estimator: str
    metric: str
    baseline: float
    value: float
    threshold: float  # the practical threshold (errors mode) or the tolerance (tolerance mode)
    se_baseline: float = math.nan
    se_run: float = math.nan
    z: float = math.nan
    p_value: float = math.nan
    p_adjusted: float = math.nan
    status: str = "ok"

    @property
    def delta(self) -> float:
        return self.value - self.baseline

    @property
    def flagged(self) -> bool:
        return self.status not in ("ok", "untested")

    @property
    def name(self) -> str:
        return f"{self.protocol}/{self.estimator}/{self.metric}"

    def describe(self) -> str:
        if self.status == "missing":
            return f"{self.name}: missing from the run (baseline {self.baseline:.6g})"
        stats = "" if math.isnan(self.z) else f", z = {self.z:.2f}, adjusted p = {self.p_adjusted:.3g}"
        return (f"{self.name}: {self.value:.6g} vs baseline {self.baseline:.6g} (Δ {self.delta:+.3g}, threshold "
                f"{self.threshold:.3g}{stats})")


@dataclass
class RegressResult:
    """A whole comparison: every metric's change, the mode and the rule it was judged by."""

    mode: str
    rule: str
    baseline: str
    run: str
    changes: list[MetricChange] = field(default_factory=list)

    @property
    def flagged(self) -> list[MetricChange]:
        return [c for c in self.changes if c.flagged]

    @property
    def exit_code(self) -> int:
        return 1 if self.flagged else 0

    def text(self) -> str:
        if not self.flagged:
            return f"OK: {len(self.changes)} metrics show no regression against {self.baseline} ({self.mode} mode)"
        lines = [f"REGRESSION: {len(self.flagged)} of {len(self.changes)} metrics flagged against {self.baseline} "
                 f"({self.mode} mode):"]
        return "\n".join(lines + [f"  - {c.describe()}" for c in self.flagged])


def _number(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else x


def to_json(result: RegressResult) -> str:
    """Every metric's comparison; NaN and infinities as null."""
    metrics = [{"protocol": c.protocol, "estimator": c.estimator, "metric": c.metric, "status": c.status,
                **{k: _number(float(getattr(c, k))) for k in ("baseline", "value", "delta", "threshold", "se_baseline",
                                                              "se_run", "z", "p_value", "p_adjusted")}}
               for c in result.changes]
    return json.dumps({"mode": result.mode, "rule": result.rule, "baseline": result.baseline, "run": result.run,
                       "compared": len(result.changes), "flagged": len(result.flagged), "exit_code": result.exit_code,
                       "metrics": metrics}, indent=1, allow_nan=False) + "\n"


def to_junit(result: RegressResult) -> str:
    """JUnit XML: a test suite of one test case per metric (classname protocol.estimator), a <failure> per flag."""
    cases = []
    for c in result.changes:
        head = f'  <testcase classname={quoteattr(f"{c.protocol}.{c.estimator}")} name={quoteattr(c.metric)}'
        if c.flagged:
            cases.append(f'{head}>\n    <failure message={quoteattr(c.describe())} type="{c.status}">'
                         f'{escape(c.describe())}</failure>\n  </testcase>')
        else:
            cases.append(f"{head}/>")
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name={quoteattr(f"uqbench regress ({result.mode})")} '
            f'tests="{len(result.changes)}" failures="{len(result.flagged)}" errors="0">\n'
            f'  <properties><property name="rule" value={quoteattr(result.rule)}/>'
            f'<property name="baseline" value={quoteattr(result.baseline)}/></properties>\n'
            + "\n".join(cases) + "\n</testsuite>\n")


def to_markdown(result: RegressResult) -> str:
    """A pull-request comment: the verdict, the flagged metrics as a table, the rule."""
    verdict = (f"**{len(result.flagged)} of {len(result.changes)} metrics flagged**" if result.flagged
               else f"**No regression** in {len(result.changes)} metrics")
    lines = [f"### uqbench regress ({result.mode} mode): {verdict}", "",
             f"Run `{result.run}` against baseline `{result.baseline}`.", ""]
    if result.flagged:
        lines += ["| metric | status | baseline | run | Δ | threshold | z | adjusted p |", "|---|---|---|---|---|---|---|---|"]
        for c in result.flagged:
            cells = [f"`{c.name}`", c.status, f"{c.baseline:.4g}", f"{c.value:.4g}", f"{c.delta:+.3g}",
                     f"{c.threshold:.3g}", "–" if math.isnan(c.z) else f"{c.z:.2f}",
                     "–" if math.isnan(c.p_adjusted) else f"{c.p_adjusted:.3g}"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    untested = sum(c.status == "untested" for c in result.changes)
    if untested:
        lines += [f"{untested} metrics without intervals were not tested (see the JSON report).", ""]
    lines += [f"Rule: {result.rule}.", ""]
    return "\n".join(lines)


WRITERS = {"json": to_json, "junit": to_junit, "markdown": to_markdown}
