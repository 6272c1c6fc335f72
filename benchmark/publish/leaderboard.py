"""`python -m benchmark leaderboard RUN_DIR... --out DIR`: boards of estimators across validated runs.

- Runs are grouped into *tracks* (preset or model, data, sampler, steps, N, K, protocol settings, suite
  version: `manifest.track`); estimators are ranked only against rows of the same track, and a track whose
  runs record different protocol versions is refused.
- Only valid runs are accepted, by the rule `validate` applies (`benchmark.publish.validity.check_run`, weights
  included): unfinished or changed run folders are refused with the problem `validate` names.
- Per quality metric, the CI-aware rank of a row is 1 + the number of ranked rows *significantly* better
  (whole 95 % interval on the better side); overlapping intervals share a rank. Ranks use only the quality
  metrics every ranked row of the track has; the *quality rank* orders rows by the mean of those ranks.
  Cost (extra NFEs, time ratio) is shown in its own columns and never ranked.
- Reference rows (the `random` floor, trivial baselines, oracles: class attribute `reference_row`, recorded in the
  manifest with a one-line explanation) are shown apart, with their values in every column, and never ranked; the
  runner's own rows ((all), (random K), ...) are not on the board.
Writes DIR/leaderboard.md and a static site (DIR/index.html, one page per run; see benchmark.publish.site).
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from benchmark.publish.validity import RunValidationError, check_run
from benchmark.report import metric_info, verdicts
from benchmark.report.manifest import record_explanation
from benchmark.report.ranking import ci_aware_ranks, explain_reference, is_reference, is_runner_row
from benchmark.report.tables import FLOOR, headline_columns

__all__ = ["Board", "BoardRow", "RunInfo", "build_boards", "ci_aware_ranks", "leaderboard_table", "load_runs",
           "rank_track", "write_leaderboard"]
COST_METRICS = (("cost", "extra_nfe_per_sample"), ("cost", "time_ratio"))
#: the mark of a cell whose test against the floor is significant after the run's multiplicity adjustment
FLOOR_MARKS = {1: " ✓", -1: " ✗"}
#: how to read a board (the markdown and the site say the same)
READING = ("Values: point estimate [95 % interval]. ✓ / ✗: beats / is worse than the floor on that metric's test: the "
           "`random` floor, and on sparsification (AUSE) the best trivial baseline of the run (a reference row such as "
           "`local_variance`: a 0-NFE map of the sample that any estimator must beat), with the error rate controlled "
           "over the run's family of tests (run.multiplicity: Holm, family-wise, unless the run says otherwise; see the "
           "run's report); a row without a mark is not distinguishable at the run's size. Reference rows (the floor, "
           "trivial baselines, oracles) are listed apart with what each is, and never ranked. #rank: CI-aware rank, 1 + the number of ranked rows "
           "whose 95 % interval lies wholly on the better side (two non-overlapping 95 % intervals: a pairwise "
           "comparison at well under 5 % each, not adjusted across pairs). Quality rank = order of the mean rank over "
           "the metrics every ranked row has; cost is shown, not ranked; reference rows are never ranked.")


@dataclass
class RunInfo:
    """One validated run folder."""

    path: Path
    name: str  # shown on the board (the folder name; parent/name where two runs share one)
    slug: str  # URL-safe, unique within the site
    frame: pd.DataFrame
    manifest: dict
    references: frozenset[str] = frozenset({FLOOR})
    date: str = ""  # a bundle's submission date (a run folder: empty)
    verification: str = "validated run folder"  # a bundle: intact / verified (K samples re-computed)

    @property
    def track(self) -> dict:
        return self.manifest["track"]

    @property
    def track_id(self) -> str:
        return hashlib.sha256(json.dumps(self.track, sort_keys=True, default=str).encode()).hexdigest()[:10]


@dataclass
class BoardRow:
    run: str
    estimator: str
    reference: bool
    values: dict[str, tuple[float, float, float]] = field(default_factory=dict)  # quality label -> entry
    ranks: dict[str, int] = field(default_factory=dict)  # quality label -> CI-aware rank (ranked rows only)
    cost: dict[str, float] = field(default_factory=dict)
    mean_rank: float = math.nan
    quality_rank: int | None = None
    #: quality label -> +1 beats / -1 worse than the floor on that metric's test, adjusted over the run's family
    floor: dict[str, int] = field(default_factory=dict)


@dataclass
class Board:
    """One track: ranked rows (sorted by quality rank) and reference rows, the metrics ranked and left out."""

    track_id: str
    track: dict
    runs: list[RunInfo]
    metrics: list[tuple[str, str]]  # (label, full metric name) of the ranked quality metrics
    rows: list[BoardRow]
    left_out: list[str] = field(default_factory=list)  # quality metrics not every ranked row has
    cost_labels: list[str] = field(default_factory=list)

    @property
    def ranked(self) -> list[BoardRow]:
        return [r for r in self.rows if not r.reference]

    @property
    def title(self) -> str:
        """A readable name: preset or model · sampler · steps · N/K (the hash stays as the anchor)."""
        return track_title(self.track)

    @property
    def reference_rows(self) -> list[BoardRow]:
        return [r for r in self.rows if r.reference]


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-") or "run"


def load_runs(run_dirs: list[Path], *, check_weights: bool = True, recompute: int = 0) -> list[RunInfo]:
    """Check (`check_run`, the rule of `validate`, with the same `check_weights` relaxation as `validate
    --skip-weights`) and read every run folder; refuse (RunValidationError, exit 2) the first invalid one with the
    problem `validate` names first. A submission bundle is checked by benchmark.publish.entries (integrity; with
    `recompute` K, K samples re-computed); all entries must share one suite and protocol version."""
    from benchmark.publish.entries import check_one_version, is_bundle, load_bundle

    runs, names, slugs, weights = [], {}, set(), {}
    dirs = [Path(d) for d in run_dirs]
    counts = pd.Series([d.resolve().name for d in dirs]).value_counts()
    for run_dir in dirs:
        extra = {}
        if is_bundle(run_dir):
            entry = load_bundle(run_dir, recompute=recompute)
            manifest, frame = entry.manifest, entry.frame
            extra = {"date": entry.date, "verification": entry.verification}
        else:
            check = check_run(run_dir, check_weights=check_weights, weights_cache=weights)
            check.raise_if_invalid("put on a leaderboard")
            manifest, frame = check.manifest, check.frame
        name = run_dir.resolve().name
        if counts[name] > 1:
            name = f"{run_dir.resolve().parent.name}/{name}"
        if name in names:
            raise RunValidationError(f"{run_dir} is given twice (also as {names[name]}): give each run once")
        names[name] = run_dir
        slug = slugify(name)
        while slug in slugs:
            slug += "-x"
        slugs.add(slug)
        refs = {n for n, rec in manifest["estimators"].items() if rec.get("reference_row")} | {FLOOR}
        path = run_dir / "run" if extra else run_dir  # a bundle's run files
        runs.append(RunInfo(path, name, slug, frame, manifest, frozenset(refs), **extra))
    check_one_version([(r.name, r.manifest) for r in runs])
    return runs


def _check_protocol_versions(runs: list[RunInfo]) -> None:
    seen: dict[str, tuple[int, str]] = {}
    for run in runs:
        for protocol, version in run.manifest["protocol_versions"].items():
            if protocol in seen and seen[protocol][0] != version:
                other_version, other = seen[protocol]
                raise RunValidationError(
                    f"runs {other} and {run.name} share a track but record protocol {protocol} versions "
                    f"{other_version} and {version}: re-run the older one so both use one protocol version")
            seen.setdefault(protocol, (version, run.name))


def _spaces(frame: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(s for s in map(lambda m: metric_info.parse(m).space, frame.metric) if s))


def track_title(track: dict) -> str:
    run = track.get("run", {})
    model = track.get("model") or {}
    source = run.get("preset") or model.get("path") or model.get("factory") or "model"
    return (f"{source} · {run.get('sampler', '?')} · {run.get('steps', '?')} steps · "
            f"N/K {run.get('num_samples', '?')}/{run.get('keep', '?')}")


def floor_outcomes(frame: pd.DataFrame, references: set[str], methods: dict[str, str] | None = None
                   ) -> dict[tuple[str, str, str], int]:
    """(run, estimator, metric) -> +1 / -1 where the run's family of tests against the floor (adjusted by the run's
    run.multiplicity, Holm by default: benchmark.report.verdicts) gives a verdict on that metric's test."""
    out = {}
    for run, part in frame.groupby("run", sort=False):
        fam = verdicts.family(part, lambda name: is_reference(name, references), (methods or {}).get(run, "holm"))
        for v in fam.verdicts:
            if v.outcome:
                out[(run, v.estimator, v.metric)] = v.outcome
    return out


def rank_track(frame: pd.DataFrame, references: set[str] = frozenset({FLOOR}),
               estimators: set[str] | None = None, methods: dict[str, str] | None = None
               ) -> tuple[list[BoardRow], list, list]:
    """(rows, ranked metrics, left-out metric labels) of one track; `frame` has a `run` column. Rows are the
    configured `estimators` (every row but the runner's own when None); `methods`: run -> its multiplicity method."""
    rows: dict[tuple[str, str], BoardRow] = {}
    for run, part in frame.groupby("run", sort=False):
        for est in dict.fromkeys(part.estimator):
            if is_runner_row(est) or estimators is not None and est not in estimators:
                continue  # the runner's rows ((all), (sampler), plain, ...) and protocols' baselines are no estimators
            rows[(run, est)] = BoardRow(run, est, is_reference(est, references))
    spaces = _spaces(frame)
    outcomes = floor_outcomes(frame, set(references), methods)
    candidates = [c for c in headline_columns(frame, spaces)
                  if metric_info.direction(c.metric) != 0 and not metric_info.is_cost(c.metric)]
    ranked_keys = [k for k, r in rows.items() if not r.reference]
    metrics, left_out = [], []
    for column in candidates:
        label = metric_info.label(column.metric)
        proto = _protocol_of(frame, column.metric)
        part = frame[(frame.protocol == proto) & (frame.metric == column.metric)].set_index(["run", "estimator"])
        part = part[part.value.notna()]
        for key in rows:
            if key in part.index:
                entry = part.loc[key]
                rows[key].values[label] = (float(entry.value), float(entry.ci_low), float(entry.ci_high))
                tested = next((m for m in verdicts.tested_metrics(column.metric) if (*key, m) in outcomes), None)
                if tested is not None:
                    rows[key].floor[label] = outcomes[(*key, tested)]
        have = [k for k in ranked_keys if k in part.index]
        if len(have) < len(ranked_keys) or not have:
            left_out.append(label)
            continue
        metrics.append((label, column.metric))
        sub = part.loc[have]
        ranks = ci_aware_ranks(sub.value, sub.ci_low, sub.ci_high, metric_info.direction(column.metric) > 0)
        for key, rank in ranks.items():
            rows[key].ranks[label] = int(rank)
    for protocol, metric in COST_METRICS:
        part = frame[(frame.protocol == protocol) & (frame.metric == metric)].set_index(["run", "estimator"])
        for key in rows:
            if key in part.index:
                rows[key].cost[metric_info.label(metric)] = float(part.loc[key].value)
    ranked = [rows[k] for k in ranked_keys]
    for row in ranked:
        row.mean_rank = sum(row.ranks.values()) / len(row.ranks) if row.ranks else math.nan
    means = pd.Series([r.mean_rank for r in ranked], dtype=float)
    for row, rank in zip(ranked, means.rank(method="min").tolist()):
        row.quality_rank = None if math.isnan(rank) else int(rank)
    order = sorted(ranked, key=lambda r: (r.quality_rank or math.inf, r.run, r.estimator))
    return order + [r for r in rows.values() if r.reference], metrics, left_out


def _protocol_of(frame: pd.DataFrame, metric: str) -> str:
    return frame.protocol[frame.metric == metric].iloc[0]


def leaderboard_table(frame: pd.DataFrame, references: set[str] = frozenset({FLOOR}),
                      estimators: set[str] | None = None) -> pd.DataFrame:
    """The ranked rows of one track as a table: quality rank, mean rank, each metric with its rank, cost."""
    rows, metrics, _ = rank_track(frame, references, estimators)
    records = []
    for row in rows:
        rec = {"run": row.run, "estimator": row.estimator,
               "quality rank": "reference" if row.reference else (row.quality_rank or "–"),
               "mean rank": "–" if row.reference or math.isnan(row.mean_rank) else round(row.mean_rank, 2)}
        for label, _metric in metrics:
            cell = metric_info.format_value(*row.values[label]) if label in row.values else "–"
            cell += FLOOR_MARKS.get(row.floor.get(label, 0), "")
            rank = row.ranks.get(label)
            rec[label] = f"{cell} (#{rank})" if rank is not None else cell
        rec.update({label: f"{value:.4g}" for label, value in row.cost.items()})
        records.append(rec)
    return pd.DataFrame(records)


def build_boards(runs: list[RunInfo]) -> list[Board]:
    tracks: dict[str, list[RunInfo]] = {}
    for run in runs:
        tracks.setdefault(run.track_id, []).append(run)
    boards = []
    for track_id, members in tracks.items():
        _check_protocol_versions(members)
        frame = pd.concat([r.frame.assign(run=r.name) for r in members], ignore_index=True)
        references = set().union(*(r.references for r in members))
        configured = set().union(*(r.manifest["estimators"] for r in members)) | {FLOOR}
        methods = {r.name: r.manifest.get("config", {}).get("run", {}).get("multiplicity", "holm") for r in members}
        rows, metrics, left_out = rank_track(frame, references, configured, methods)
        cost = list(dict.fromkeys(label for r in rows for label in r.cost))
        boards.append(Board(track_id, members[0].track, members, metrics, rows, left_out, cost))
    return boards


def entries_table(runs: list[RunInfo]) -> pd.DataFrame:
    """Each entry of a board: its date (a bundle's submission date), suite version and verification status."""
    return pd.DataFrame([{"entry": r.name, "date": r.date or "–", "suite": r.manifest.get("suite_version", "?"),
                          "verification": r.verification} for r in runs])


def describe_track(track: dict) -> str:
    run = track.get("run", {})
    parts = [f"{k} `{v}`" for k, v in run.items() if v not in ("", None)]  # no empty preset beside [model]
    for section in ("model", "data"):
        if track.get(section):
            parts.append(f"{section} " + ", ".join(f"{k}={v}" for k, v in track[section].items()))
    parts.append("protocols " + ", ".join(track.get("protocols", {})))
    parts.append(f"suite {track.get('suite_version')}")
    return " · ".join(parts)


def board_markdown(board: Board) -> str:
    frame = pd.concat([r.frame.assign(run=r.name) for r in board.runs], ignore_index=True)
    refs = set().union(*(r.references for r in board.runs))
    table = leaderboard_table(frame, refs, {r.estimator for r in board.rows})
    lines = [f"## {board.title} (track {board.track_id})", "", describe_track(board.track), "",
             table.to_markdown(index=False) if not table.empty else "(no estimator rows)", "",
             entries_table(board.runs).to_markdown(index=False), ""]
    if board.left_out:
        lines += [f"Not ranked (missing for some ranked row): {', '.join(board.left_out)}.", ""]
    if board.reference_rows:
        records = {name: rec for run in board.runs for name, rec in run.manifest["estimators"].items()}
        said = [f"*{r.estimator}* = " + explain_reference(r.estimator, records.get(r.estimator, {}).get("kind"),
                                                          explanation=record_explanation(records.get(r.estimator, {})))
                for r in board.reference_rows]
        lines += ["Reference rows (never ranked): " + "; ".join(dict.fromkeys(said)) + ".", ""]
    return "\n".join(lines)
