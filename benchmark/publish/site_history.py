"""A track's history on the leaderboard site: each ranked quality metric over the entries' submission dates.

`history/<track>.html` holds, per quality metric of the board, an inline SVG chart (one line per estimator, one
point per entry with its 95 % interval as a vertical bar; no script, no external file) and the same numbers as a
table. An entry's date is a bundle's submission date (`bundle.json` `created`), or for a run folder the time its
manifest.json was written (the run's end), in UTC.
"""
from __future__ import annotations

import datetime as _dt
import html
import math
from dataclasses import dataclass

from benchmark.publish.html import Cell, link, table
from benchmark.publish.leaderboard import Board, RunInfo
from benchmark.report import metric_info

WIDTH, HEIGHT, PAD = 640, 240, 48
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")


@dataclass(frozen=True)
class Point:
    date: str
    entry: str
    value: float
    low: float
    high: float


def entry_date(run: RunInfo) -> str:
    """A bundle's submission date, else when the run folder's manifest was written (ISO 8601, UTC, seconds)."""
    if run.date:
        return run.date
    manifest = run.path / "manifest.json"
    if not manifest.is_file():
        return ""
    stamp = _dt.datetime.fromtimestamp(manifest.stat().st_mtime, tz=_dt.timezone.utc).replace(microsecond=0)
    return stamp.isoformat()


def history(board: Board) -> dict[str, dict[str, list[Point]]]:
    """Quality metric label -> estimator -> its points, in date order (ranked rows of the board only)."""
    dates = {run.name: entry_date(run) for run in board.runs}
    out: dict[str, dict[str, list[Point]]] = {}
    for label, _metric in board.metrics:
        series: dict[str, list[Point]] = {}
        for row in board.ranked:
            if label in row.values:
                series.setdefault(row.estimator, []).append(Point(dates[row.run], row.run, *row.values[label]))
        out[label] = {name: sorted(points, key=lambda p: (p.date, p.entry)) for name, points in sorted(series.items())}
    return out


def svg_chart(series: dict[str, list[Point]], title: str) -> str:
    """Points placed by date rank on x (equal spacing: dates are labels, not a scale), value on y."""
    dates = sorted({p.date for points in series.values() for p in points})
    ys = [v for points in series.values() for p in points for v in (p.value, p.low, p.high) if math.isfinite(v)]
    if not dates or not ys:
        return ""
    low, high = min(ys), max(ys)
    span = (high - low) or (abs(high) or 1.0)

    def x(date: str) -> float:
        return PAD + (WIDTH - 2 * PAD) * ((dates.index(date) + 0.5) / len(dates))

    def y(value: float) -> float:
        return HEIGHT - PAD / 2 - (HEIGHT - PAD) * (value - low) / span

    parts = [f"<svg class='history' width='{WIDTH}' height='{HEIGHT}' "
             f"viewBox='0 0 {WIDTH} {HEIGHT}' role='img' aria-label='{html.escape(title, quote=True)}'>",
             f"<line x1='{PAD}' y1='{HEIGHT - PAD / 2}' x2='{WIDTH - PAD / 2}' y2='{HEIGHT - PAD / 2}' stroke='#999'/>",
             f"<text x='4' y='{y(high) + 4:.1f}' font-size='10'>{metric_info.format_value(high)}</text>",
             f"<text x='4' y='{y(low) + 4:.1f}' font-size='10'>{metric_info.format_value(low)}</text>"]
    parts += [f"<text x='{x(d):.1f}' y='{HEIGHT - 4}' font-size='9' text-anchor='middle'>{html.escape(d[:10])}</text>"
              for d in dates]
    for i, (name, points) in enumerate(series.items()):
        colour = COLOURS[i % len(COLOURS)]
        shown = [p for p in points if math.isfinite(p.value)]
        if len(shown) > 1:
            path = " ".join(f"{x(p.date):.1f},{y(p.value):.1f}" for p in shown)
            parts.append(f"<polyline class='series' data-estimator='{html.escape(name, quote=True)}' points='{path}' "
                         f"fill='none' stroke='{colour}' stroke-width='1.5'/>")
        for p in shown:
            if math.isfinite(p.low) and math.isfinite(p.high):
                parts.append(f"<line x1='{x(p.date):.1f}' x2='{x(p.date):.1f}' y1='{y(p.low):.1f}' "
                             f"y2='{y(p.high):.1f}' stroke='{colour}' stroke-opacity='0.5'/>")
            tip = html.escape(f"{name} · {p.entry} · {p.date}: {metric_info.format_value(p.value, p.low, p.high)}")
            parts.append(f"<circle class='point' cx='{x(p.date):.1f}' cy='{y(p.value):.1f}' r='3' fill='{colour}'>"
                         f"<title>{tip}</title></circle>")
        parts.append(f"<text x='{WIDTH - PAD / 2}' y='{14 + 12 * i}' font-size='10' text-anchor='end' "
                     f"fill='{colour}'>{html.escape(name)}</text>")
    return "".join(parts) + "</svg>"


def history_body(board: Board) -> str:
    """The body of `history/<track>.html` (links relative to that folder)."""
    slug_of = {run.name: run.slug for run in board.runs}
    parts = [f"<nav>{link('../index.html#track-' + board.track_id, '← leaderboard')}</nav>",
             f"<h1>History of track {html.escape(board.track_id)}</h1>",
             f"<p class='note'>{html.escape(board.title)}. Each ranked quality metric over the entries' submission "
             "dates (a bundle's date; a run folder: when its run finished), one line per estimator, the bars its 95 % "
             "intervals. Entries of one track are comparable by construction (same settings and suite version).</p>"]
    for label, series in history(board).items():
        rows = [[Cell(p.date, None), Cell(p.entry, raw_html=link(f"../runs/{slug_of[p.entry]}/index.html", p.entry)),
                 Cell(name), Cell(metric_info.format_value(p.value, p.low, p.high), p.value)]
                for name, points in series.items() for p in points]
        rows.sort(key=lambda r: (r[0].text, r[1].text, r[2].text))
        parts += [f"<h2>{html.escape(label)}</h2>", svg_chart(series, label),
                  table(["date", "entry", "estimator", label], rows, table_id=f"history-{_anchor(label)}")]
    if not board.metrics:
        parts.append("<p>No quality metric is ranked on this track.</p>")
    return "".join(parts)


def _anchor(label: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in label).strip("-").lower()
