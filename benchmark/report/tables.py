"""Markdown tables of a run's report: the headline table, compact per-protocol tables, settings, timings.

Every table lists ranked estimators first and reference rows (in italics, never ranked) after them. In the
headline, an entry is in bold when it beats the `random` floor on that column's test after the run's multiplicity
adjustment (benchmark.report.verdicts); compact tables and columns without a test have no bold entry.
"""
from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field

import pandas as pd

from benchmark.report import metric_info, ranking

FLOOR = ranking.FLOOR
#: (protocol, pattern on the metric's base name, every feature space or the first only): the headline columns
HEADLINE = (
    ("filtered_fid", "delta_vs_random", True),
    ("filtered_fid", "delta_vs_random_stratified", False),
    ("precision_recall", "precision", False),
    ("sparsification", "ause", False),
    ("sparsification", "aurg", False),
    ("sparsification", "partial_spearman_given_trivial", False),
    ("ground_truth", "spearman_score_vs_neg_log_density", False),
    ("ground_truth", "auroc_lowest_*pct_density", False),
    ("ground_truth", "auroc_between_mode", False),
    ("ground_truth", "auroc_off_mode", False),
    ("cost", "extra_nfe_per_sample", False),
    ("cost", "time_ratio", False),
)
CURVE_PARAMETERS = {"keep": "the fraction of samples kept (lowest scores first)"}
Entry = tuple[float, float, float]  # value, ci_low, ci_high


@dataclass(frozen=True)
class Roles:
    """Which rows are references (never ranked) and the kind of each estimator (from the registry)."""

    references: frozenset[str] = frozenset({FLOOR})
    kinds: dict[str, str | None] = field(default_factory=dict)
    estimators: frozenset[str] | None = None  # the configured instances (None: every row not a reference is one)
    explanations: dict[str, str] = field(default_factory=dict)  # reference row -> what it is (from its class)

    def is_reference(self, name: str) -> bool:
        """References: `random`, oracles, the runner's rows, and rows that are no configured estimator (a
        protocol's own baselines such as `redraw` or `rejection|random_trigger`)."""
        return ranking.is_reference(name, self.references) or (self.estimators is not None
                                                               and name not in self.estimators)

    def order(self, names) -> list[str]:
        names = list(dict.fromkeys(names))
        return [n for n in names if not self.is_reference(n)] + [n for n in names if self.is_reference(n)]

    def display(self, name: str) -> str:
        return f"*{name}*" if self.is_reference(name) else f"`{name}`"


@dataclass
class Column:
    header: str
    metric: str  # the full metric name (its direction decides the bold entry)
    values: dict[str, Entry]


def entries(frame: pd.DataFrame, protocol: str, metric: str) -> dict[str, Entry]:
    part = frame[(frame.protocol == protocol) & (frame.metric == metric)]
    return {est: (float(v), float(lo), float(hi)) for est, v, lo, hi in
            zip(part.estimator, part.value, part.ci_low, part.ci_high) if not math.isnan(float(v))}


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(":--" if i == 0 else "--:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def winner(column: Column, roles: Roles, fam=None) -> set[str]:
    """The ranked entries in bold: those whose test against the floor is significant on the better side after the
    family's multiplicity adjustment (benchmark.report.verdicts; the column's own test, or the test that stands for
    a raw headline value such as precision). No bold without a family or in a column without a test."""
    if fam is None or metric_info.direction(column.metric) == 0:
        return set()
    return {name for name in column.values if not roles.is_reference(name) and fam.outcome(name, column.metric) > 0}


def render(columns: list[Column], rows: list[str], roles: Roles, first: str = "estimator", fam=None) -> str:
    bold = {id(c): winner(c, roles, fam) for c in columns}
    body = []
    for name in rows:
        cells = [roles.display(name)]
        for column in columns:
            text = metric_info.format_value(*column.values[name]) if name in column.values else "–"
            cells.append(f"**{text}**" if name in bold[id(column)] else text)
        body.append(cells)
    return markdown_table([first, *[c.header for c in columns]], body)


def headline_columns(frame: pd.DataFrame, spaces: list[str]) -> list[Column]:
    columns = []
    for protocol, pattern, every_space in HEADLINE:
        metrics = list(dict.fromkeys(frame.metric[frame.protocol == protocol]))
        wanted_spaces = spaces if every_space else spaces[:1]
        for space in ([None] if not any(metric_info.parse(m).space for m in metrics) else wanted_spaces):
            match = [m for m in metrics if fnmatch.fnmatch(metric_info.parse(m).base, pattern)
                     and metric_info.parse(m).space == space]
            if match:
                columns.append(Column(metric_info.label(match[0]), match[0], entries(frame, protocol, match[0])))
    return columns


def headline_table(frame: pd.DataFrame, roles: Roles, spaces: list[str], fam=None) -> tuple[str, list[str]]:
    """(Markdown table, its row names): one row per estimator, the protocols' key metrics as columns; bold from
    the family of tests against the floor `fam` (benchmark.report.verdicts.Family)."""
    columns = [c for c in headline_columns(frame, spaces) if c.values]
    rows = roles.order(n for c in columns for n in c.values if not n.startswith("("))  # estimators only
    return (render(columns, rows, roles, fam=fam) if columns else ""), rows


def reference_note(names, roles: Roles) -> str:
    """One line explaining the reference rows that appear in the report."""
    present = [n for n in dict.fromkeys(names) if roles.is_reference(n)]
    if not present:
        return ""
    parts = [f"*{n}* = " + ranking.explain_reference(n, roles.kinds.get(n), configured=roles.estimators,
                                                     explanation=roles.explanations.get(n, ""))
             for n in present]
    return "Reference rows (italic, never ranked): " + "; ".join(parts) + "."


@dataclass
class TableGroup:
    title: str
    columns: list[Column]
    note: str = ""


def protocol_groups(frame: pd.DataFrame, protocol: str) -> list[TableGroup]:
    """Metrics of one protocol split by feature space; curve points (`*_at_keep_0.50`) get a table per curve."""
    part = frame[(frame.protocol == protocol) & ~frame.metric.map(metric_info.is_setting)]
    groups: dict[tuple[str | None, str | None], list[str]] = {}
    for metric in dict.fromkeys(part.metric):
        parsed = metric_info.parse(metric)
        groups.setdefault((parsed.family, parsed.space), []).append(metric)
    out = []
    for (family, space), metrics in groups.items():
        where = f" · {space}" if space else ""
        if family is None:
            columns = [Column(metric_info.label(m, with_space=False), m, entries(part, protocol, m)) for m in metrics]
            out.append(TableGroup(f"{protocol}{where}", columns))
        elif metric_info.parse(metrics[0]).dotted:
            columns = [Column(metric_info.label(m, with_space=False), m, entries(part, protocol, m)) for m in metrics]
            out.append(TableGroup(f"{protocol}{where}: {family}", columns))
        else:
            columns = [Column(metric_info.parse(m).point, m, entries(part, protocol, m)) for m in metrics]
            title = metric_info.LABELS.get(family, family) + metric_info.arrow(metrics[0])
            out.append(TableGroup(f"{protocol}{where}: {title}", columns,
                                  note=f"Columns: {CURVE_PARAMETERS.get(family.rsplit('_', 1)[-1], family)}."))
    return out


def compact_table(group: TableGroup, roles: Roles) -> tuple[str, str]:
    """(table, reference line): no column that is empty for every ranked row; values only reference rows have
    are listed in one line under the table instead."""
    names = roles.order(n for c in group.columns for n in c.values)
    ranked = [n for n in names if not roles.is_reference(n)]
    if ranked:
        kept = [c for c in group.columns if any(n in c.values for n in ranked)]
        dropped = [c for c in group.columns if c not in kept]
    else:
        kept, dropped = [c for c in group.columns if c.values], []
    rows = [n for n in names if any(n in c.values for c in kept)]
    extra = [f"*{n}* {c.header} = {metric_info.format_value(*c.values[n])}" for c in dropped for n in c.values]
    table = render(kept, rows, roles) if kept and rows else ""
    return table, ("Reference values: " + "; ".join(extra) + ".") if extra else ""


def source_label(config) -> str:
    """What the run sampled and compared with: "Preset `digits`", or for a run without a preset the model
    path and data ("Model `path/to/unet` · data `fashion`"); a [model] / [data] section beside a preset is named
    after it."""
    parts = [f"preset `{config.preset}`"] if config.preset else []
    if config.model is not None:
        parts.append(f"model `{getattr(config.model, 'path', config.model)}`")
    if config.data is not None:
        parts.append(f"data `{getattr(config.data, 'label', config.data)}`")
    text = " · ".join(parts) or "model of the config"
    return text[0].upper() + text[1:]


def settings_table(config, frame: pd.DataFrame) -> str:
    run = config.to_dict()
    rows = [[key, _plain(value)] for key, value in run["run"].items()
            if key != "name" and not (key == "preset" and not value)]  # no preset: [model] / [data] rows below
    for section in ("model", "data"):
        for key, value in (run.get(section) or {}).items():
            rows.append([f"{section}.{key}", _plain(value)])
    for name, params in run.get("protocols", {}).items():
        rows.append([f"protocol {name}", ", ".join(f"{k} = {_plain(v)}" for k, v in params.items()) or "defaults"])
    settings = frame[frame.metric.map(metric_info.is_setting)]
    for protocol, metric, value in zip(settings.protocol, settings.metric, settings.value):
        if not math.isnan(float(value)):
            rows.append([f"{protocol} {metric}", f"{float(value):g}"])
    return markdown_table(["setting", "value"], rows)


def estimator_table(records: dict, roles: Roles) -> str:
    rows = []
    for name in roles.order(records):
        rec = records[name]
        params = ", ".join(f"{k} = {_plain(v)}" for k, v in rec.params.items()) or "defaults"
        rows.append([roles.display(name), f"`{rec.type}`", str(rec.kind or "–"),
                     "reference" if roles.is_reference(name) else "ranked", params])
    return markdown_table(["estimator", "type", "kind", "row", "parameters"], rows)


def top_level(timings: dict[str, float]) -> dict[str, float]:
    """The stages that are not sub-stages: `a.b.c` is a sub-stage when `a` or `a.b` is itself listed. The
    top-level stages of a run are wall-clock and add up to its duration."""
    def is_sub(key: str) -> bool:
        parts = key.split(".")
        return any(".".join(parts[:i]) in timings for i in range(1, len(parts)))

    return {k: v for k, v in timings.items() if not is_sub(k)}


def time_table(timings: dict[str, float]) -> str:
    """Seconds per stage and share of the total, each stage followed by its sub-stages (see `top_level`), which
    are marked ↳ and not added to the total again. A sub-stage is work summed over the items and processes that did it, so with several processes
    the sub-stages of a stage can add up to more than the stage's wall-clock."""
    top = top_level(timings)
    total = sum(top.values()) or 1.0
    under = {stage: [k for k in timings if k not in top and k.startswith(stage + ".")] for stage in top}
    placed = {k for subs in under.values() for k in subs}
    rows = []
    for stage in top:  # each stage, then its sub-stages
        for key in (stage, *under[stage]):
            rows.append([("↳ " if key != stage else "") + key, f"{timings[key]:.2f}",
                         f"{100 * timings[key] / total:.0f} %"])
    rows += [["↳ " + k, f"{timings[k]:.2f}", f"{100 * timings[k] / total:.0f} %"]
             for k in timings if k not in top and k not in placed]
    rows.append(["total", f"{sum(top.values()):.2f}", "100 %"])
    return markdown_table(["stage", "seconds", "share"], rows)


def _plain(value) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_plain(v) for v in value) + "]"
    return f"`{value}`" if isinstance(value, str) else str(value)
