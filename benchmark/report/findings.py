"""The report's "findings": which estimators beat the floor, which are worse, at a stated error rate.

Generated from the run's family of verdict tests (benchmark.report.verdicts): every headline test of every ranked
estimator, against the `random` floor or, on sparsification, the best trivial baseline, adjusted together by
`run.multiplicity` (Holm by default). An estimator is
- *better than the floor* on a metric when its adjusted p-value is <= 5 % and the effect is on the better side;
- *worse than the floor* in the mirror case;
- not distinguishable otherwise, which is a statement about the run's size as much as about the estimator: the line
  quotes the smallest effect the test could have seen (80 % power at the family's strictest level).
The text names the family, its size and the method, and reports the `random` row's own tests as a check of the
null (each is one draw of a no-information score). Cost metrics are not verdicts and are left out.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from benchmark.report import metric_info
from benchmark.report.verdicts import ALPHA, Family, Verdict
from metrics.significance import adjust


def _evidence(v: Verdict) -> str:
    return f"{metric_info.format_value(v.value, v.ci_low, v.ci_high)}, adjusted p = {v.adjusted_p:.2g}"


def _label(v: Verdict) -> str:
    return metric_info.label(v.metric)


def _unseen(fam: Family, v: Verdict) -> str:
    """"label (could not see |Δ| < MDE)", the MDE at the family's strictest level (plain label without one)."""
    mde = fam.detectable(v)
    return f"{_label(v)} (could not see |Δ| < {mde:.3g})" if math.isfinite(mde) else _label(v)


def findings_lines(fam: Family, order: list[str], negatable: set[str] = frozenset()) -> list[str]:
    """Markdown bullet lines, one per ranked estimator (in `order`), plus how to read them."""
    by_name: dict[str, list[Verdict]] = {}
    for v in fam.verdicts:
        by_name.setdefault(v.estimator, []).append(v)
    names = [n for n in order if n in by_name] + [n for n in by_name if n not in order]
    if not names:
        return ["No ranked estimator has a test against the `random` floor in this run."]
    lines = []
    for name in names:
        better = [v for v in by_name[name] if v.outcome > 0]
        worse = [v for v in by_name[name] if v.outcome < 0]
        unclear = [v for v in by_name[name] if v.outcome == 0]
        head = ("**beats the floor**" if better and not worse else "**worse than the floor**" if worse and not better
                else "mixed" if better else "not distinguishable from the floor")
        parts = []
        if better:
            parts.append("better on " + "; ".join(f"{_label(v)}: {_evidence(v)}" for v in better))
        if worse:
            parts.append("worse on " + "; ".join(f"{_label(v)}: {_evidence(v)}" for v in worse))
        if unclear:
            parts.append("no significant difference on " + ", ".join(_unseen(fam, v) for v in unclear))
        line = f"- `{name}` {head} — " + "; ".join(parts) + "."
        if worse and not better and name in negatable:
            line += (" Its score may be ordered the other way round from what the protocols assume: test the "
                     "inverted score as its own row (`negate = true` in a separate `[estimators.<name>]` table).")
        lines.append(line)
    lines += ["", f"Verdicts: the family is {fam.description()}. Each test compares with the floor's expectation "
                  "(the mean over random K-subsets, a map or score without information, or the best trivial map on "
                  "the same images), not with one random draw; the 95 % intervals shown are not adjusted. \"could not "
                  "see |Δ| < x\": the effect the test detects with 80 % power at the family's strictest level "
                  "(metrics.significance.detectable_effect)."]
    if fam.floor_checks:
        hits = sum(v.p_value <= ALPHA for v in fam.floor_checks)
        lines.append(f"Check of the null: the `random` row's own {len(fam.floor_checks)} tests give {hits} "
                     f"significant at the raw {ALPHA:.0%} (each is one no-information draw: about one in twenty is "
                     "expected by chance).")
    return lines


def class_confound_lines(frame: pd.DataFrame, fam: Family, is_reference, method: str = "holm") -> list[str]:
    """The class confound of filtering (metrics.class_balance), one line per ranked estimator that
    - keeps a class histogram significantly unlike all samples' (chi-square p of `kept_class_tvd`, adjusted over the
      ranked estimators by `method`), or
    - whose ΔFID verdict against random K (the family's, adjusted) changes when the filter is applied within each
      class in proportion to its size (`delta_vs_random_stratified`: significant at the raw 5 % with the same sign,
      or not): "removes bad samples" and "removes a class" are then told apart."""
    rows = frame[frame.protocol == "filtered_fid"]
    ranked = np.array([not is_reference(n) for n in rows.estimator], dtype=bool)
    part = rows[(rows.metric == "kept_class_tvd").to_numpy() & ranked]
    imbalanced = {}
    if not part.empty and "p_value" in part.columns:
        for row, p in zip(part.itertuples(), adjust(part.p_value.astype(float).to_numpy(), method)):
            if math.isfinite(p) and p <= ALPHA:
                imbalanced[row.estimator] = f"keeps a class histogram {row.value:.2f} (TVD) from all samples', adjusted p = {p:.2g}"
    changed = {}
    for row in rows[rows.metric.str.startswith("delta_vs_random_stratified[")].itertuples():
        if is_reference(row.estimator):
            continue
        plain_metric = row.metric.replace("delta_vs_random_stratified", "delta_vs_random", 1)
        plain = fam.outcome(row.estimator, plain_metric)
        raw = float(getattr(row, "p_value", math.nan))
        stratified = 0 if not (math.isfinite(raw) and raw <= ALPHA) else (-1 if row.value > 0 else 1)
        if plain != stratified:
            words = {1: "better than random", -1: "worse than random", 0: "not distinguishable"}
            changed.setdefault(row.estimator, []).append(
                f"{metric_info.label(plain_metric)}: {words[plain]}, filtered within classes "
                f"{metric_info.format_value(row.value, row.ci_low, row.ci_high)} -> {words[stratified]}")
    lines = []
    for name in dict.fromkeys([*imbalanced, *changed]):
        parts = ([imbalanced[name]] if name in imbalanced else []) + changed.get(name, [])
        lines.append(f"- `{name}` " + "; ".join(parts) + ".")
    if lines:
        lines.insert(0, "Class confound (a filter that removes a class changes FID whatever the sample quality; the "
                        "stratified filter keeps each class's share):")
    return lines


def best_trivial_lines(frame: pd.DataFrame, is_reference) -> list[str]:
    """Which trivial baseline the sparsification verdicts were taken against: the one with the lowest mean AUSE
    among the rows that the ranked estimators' `ause_delta_vs_<name>` compare with."""
    part = frame[frame.protocol == "sparsification"]
    compared = {m.partition("_delta_vs_")[2] for m in part.metric if m.startswith("ause_delta_vs_")} - {
        "trivial", "random"}
    ause = part[(part.metric == "ause") & part.estimator.isin(compared)]
    if ause.empty or not (part.metric == "ause_delta_vs_trivial").any():
        return []
    best = ause.loc[ause.value.astype(float).idxmin()]
    others = ", ".join(f"`{r.estimator}` {float(r.value):.4g}" for r in ause.itertuples() if r.estimator != best.estimator)
    return [f"- Sparsification verdicts are taken against the best trivial baseline on these images: `{best.estimator}` "
            f"(AUSE {metric_info.format_value(float(best.value), float(best.ci_low), float(best.ci_high))}"
            + (f"; the others: {others}" if others else "") + ")."]


def baseline_lines(frame: pd.DataFrame, is_reference, method: str = "holm") -> list[str]:
    """Per comparison baseline other than the floor (rows `<metric>_delta_vs_<baseline>`, e.g. the trivial
    `local_variance` edge baseline on AUSE): which ranked estimators beat it, adjusted over those estimators."""
    lines = best_trivial_lines(frame, is_reference)
    rows = frame[frame.metric.str.contains("_delta_vs_", regex=False) & ~frame.metric.str.endswith("_vs_random")
                 & ~frame.metric.str.contains("_vs_random[", regex=False)
                 & ~frame.metric.str.endswith("_delta_vs_trivial")]  # the verdicts (Findings above)
    for metric, part in rows.groupby("metric", sort=False):
        ranked = part[np.array([not is_reference(n) for n in part.estimator], dtype=bool)]
        if ranked.empty or "p_value" not in ranked.columns:
            continue
        baseline = metric.partition("_delta_vs_")[2]
        direction = metric_info.direction(metric)
        adjusted = adjust(ranked.p_value.astype(float).to_numpy(), method)
        groups: dict[str, list[str]] = {"beat it": [], "are worse": [], "are not distinguishable": []}
        for row, p in zip(ranked.itertuples(), adjusted):
            better = (row.value > 0) == (direction > 0)
            key = "are not distinguishable" if not (math.isfinite(p) and p <= ALPHA) else (
                "beat it" if better else "are worse")
            groups[key].append(f"`{row.estimator}`")
        said = "; ".join(f"{k}: {', '.join(v)}" for k, v in groups.items() if v)
        lines.append(f"- Against the baseline `{baseline}` on {metric_info.label(metric)} (paired over images, "
                     f"{method} over {len(ranked)} estimators): {said}.")
    return lines
