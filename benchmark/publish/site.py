"""The static leaderboard site: index.html with one board per track, one page per run.

Layout under DIR:
    index.html                       boards (sortable), entries, links to the entry pages and track histories
    leaderboard.md                   (written by benchmark.publish.leaderboard)
    history/<track>.html             each quality metric over the entries' dates (benchmark.publish.site_history)
    runs/<slug>/index.html           the entry: verification status and cards (benchmark.publish.site_entry), then
                                     the run's report rendered to HTML, links to its files
    runs/<slug>/{config.json, manifest.json, metrics.csv, report.md}
    runs/<slug>/plots/<url-safe name>.png
All links are relative and every name under runs/ is URL-safe, so the folder can be served from anywhere
or opened from disk.
"""
from __future__ import annotations

import html
import math
import re
import shutil
from pathlib import Path

from benchmark.execution.io import save_bytes, save_text
from benchmark.publish.html import Cell, link, page, table
from benchmark.publish.site_entry import entry_head, history_link
from benchmark.publish.site_history import history_body
from benchmark.publish.leaderboard import (
    FLOOR_MARKS,
    READING,
    Board,
    BoardRow,
    RunInfo,
    board_markdown,
    build_boards,
    describe_track,
    load_runs,
)
from benchmark.report import metric_info
from benchmark.report.manifest import record_explanation
from benchmark.report.ranking import explain_reference

RUN_FILES = ("config.json", "manifest.json", "metrics.csv", "report.md")


def url_safe(name: str) -> str:
    """Letters, digits, `_`, `-` and `.` only (a `#`, `?`, `%` or space in a file name breaks a URL)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def build_site(boards: list[Board], runs: list[RunInfo], out: Path) -> Path:
    """Write the site into `out`; run pages of an earlier build of this site that no longer list are removed."""
    _remove_stale_pages(out, {run.slug for run in runs}, {board.track_id for board in boards})
    for run in runs:
        write_run_page(run, out / "runs" / run.slug)
    for board in boards:
        save_text(page(f"history of track {board.track_id} · diffusion-uq-bench", history_body(board)),
                  out / "history" / f"{board.track_id}.html")
    path = out / "index.html"
    save_text(page("diffusion-uq-bench leaderboard", index_body(boards)), path)
    return path


def index_body(boards: list[Board]) -> str:
    parts = ["<h1>diffusion-uq-bench leaderboard</h1>",
             "<p class='note'>Estimators are ranked only against rows of the same <em>track</em> (same preset or "
             "model, data, sampler, steps, N, K, protocol settings and suite version). "
             + html.escape(READING) + " Click a column header to sort.</p>"]
    for board in boards:
        parts.append(board_html(board))
    return "".join(parts)


def board_html(board: Board) -> str:
    slug_of = {run.name: run.slug for run in board.runs}
    labels = [label for label, _ in board.metrics]
    header = ["quality rank", "run", "estimator", "mean rank", *labels, *board.cost_labels]
    rows = [_row(r, labels, board.cost_labels, slug_of, ranked=True) for r in board.ranked]
    runs = ", ".join(link(f"runs/{run.slug}/index.html", run.name) + html.escape(
        f" ({run.date + ', ' if run.date else ''}suite {run.manifest.get('suite_version', '?')}, {run.verification})")
        for run in board.runs)
    parts = [f"<h2 id='track-{board.track_id}'>{html.escape(board.title)} <small>track {board.track_id}</small></h2>",
             f"<p class='note'>{_inline_code(describe_track(board.track))}</p>", f"<p>Runs: {runs}</p>",
             f"<p>{link(f'history/{board.track_id}.html', 'History of this track')}: each metric over the "
             "entries' dates.</p>",
             table(header, rows, table_id=f"board-{board.track_id}") if rows else "<p>No ranked estimator.</p>"]
    if board.left_out:
        parts.append("<p class='note'>Not ranked (missing for some ranked row): "
                     + html.escape(", ".join(board.left_out)) + "</p>")
    if board.reference_rows:
        ref_labels = list(dict.fromkeys([*labels, *(lab for r in board.reference_rows for lab in r.values)]))
        ref_header = ["run", "estimator", "what it is", *ref_labels, *board.cost_labels]
        records = {name: rec for run in board.runs for name, rec in run.manifest["estimators"].items()}
        ref_rows = [_row(r, ref_labels, board.cost_labels, slug_of, ranked=False,
                         kind=records.get(r.estimator, {}).get("kind"),
                         explanation=record_explanation(records.get(r.estimator, {})))
                    for r in board.reference_rows]
        parts += ["<h3>Reference rows (never ranked)</h3>",
                  table(ref_header, ref_rows, row_class="reference", table_id=f"reference-{board.track_id}")]
    return "".join(parts)


def _row(row: BoardRow, labels: list[str], cost_labels: list[str], slug_of: dict[str, str], *, ranked: bool,
         kind: str | None = None, explanation: str = ""):
    run_cell = Cell(row.run, raw_html=link(f"runs/{slug_of[row.run]}/index.html", row.run))
    if ranked:
        mean = "–" if math.isnan(row.mean_rank) else f"{row.mean_rank:.2f}"
        cells = [Cell(str(row.quality_rank or "–"), float(row.quality_rank or "nan")), run_cell, Cell(row.estimator),
                 Cell(mean, row.mean_rank)]
    else:
        cells = [run_cell, Cell(row.estimator), Cell(explain_reference(row.estimator, kind, explanation=explanation))]
    for label in labels:
        if label not in row.values:
            cells.append(Cell("–"))
            continue
        text = metric_info.format_value(*row.values[label]) + FLOOR_MARKS.get(row.floor.get(label, 0), "")
        rank = row.ranks.get(label)
        raw = html.escape(text) + (f" <span class='rank'>#{rank}</span>" if rank is not None else "")
        cells.append(Cell(text, row.values[label][0], raw_html=raw))
    cells += [Cell(f"{row.cost[lab]:.4g}", row.cost[lab]) if lab in row.cost else Cell("–") for lab in cost_labels]
    return cells


def write_run_page(run: RunInfo, folder: Path) -> Path:
    """Copy the run's files and plots (URL-safe names) and render its report to folder/index.html."""
    for name in RUN_FILES:
        source = run.path / name
        if source.is_file():
            save_bytes(source.read_bytes(), folder / name)
    renames = {}
    plots = run.path / "plots"
    for png in sorted(plots.iterdir()) if plots.is_dir() else []:
        if png.is_file() and not png.name.startswith("."):
            renames[f"plots/{png.name}"] = f"plots/{url_safe(png.name)}"
            save_bytes(png.read_bytes(), folder / renames[f"plots/{png.name}"])
    report = (run.path / "report.md").read_text() if (run.path / "report.md").is_file() else "(no report.md)"
    nav = "<nav>" + link("../../index.html", "← leaderboard") + "".join(
        link(name, name) for name in RUN_FILES if (folder / name).is_file()) + "</nav>"
    body = nav + f"<p class='note'>Run folder <code>{html.escape(run.name)}</code> · track " \
        f"{link(f'../../index.html#track-{run.track_id}', run.track_id)} · {history_link(run)}</p>" + \
        entry_head(run) + "<h2>Report</h2>" + render_markdown(report, renames)
    path = folder / "index.html"
    save_text(page(f"{run.name} · diffusion-uq-bench", body), path)
    return path


def render_markdown(text: str, renames: dict[str, str]) -> str:
    """The report as HTML (Python-Markdown with tables), image paths mapped to the copied names."""
    import markdown

    for old, new in renames.items():
        text = text.replace(f"]({old})", f"]({new})")
    rendered = markdown.markdown(text, extensions=["tables"], output_format="html")
    return rendered.replace("<img ", "<img onerror=\"this.classList.add('broken')\" ")


def _remove_stale_pages(out: Path, keep: set[str], tracks: set[str]) -> None:
    if not (out / "index.html").is_file():
        return  # not a site this command wrote: touch nothing
    for folder in (out / "runs").iterdir() if (out / "runs").is_dir() else []:
        if folder.is_dir() and folder.name not in keep and (folder / "index.html").is_file():
            shutil.rmtree(folder)
    for history in (out / "history").glob("*.html"):
        if history.stem not in tracks:
            history.unlink()


def _inline_code(text: str) -> str:
    return re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(text))


def write_leaderboard(run_dirs: list[Path], out: Path, *, check_weights: bool = True,
                      recompute: int = 0) -> tuple[Path, Path]:
    """DIR/leaderboard.md and the static site DIR/index.html (+ run pages); returns both paths. `check_weights`:
    False skips reloading each run's model (as `validate --skip-weights`); `recompute`: K samples re-computed per
    submission bundle (as `verify --recompute K`)."""
    runs = load_runs(run_dirs, check_weights=check_weights, recompute=recompute)
    boards = build_boards(runs)
    md = ["# Leaderboard", "", "Rows are ranked only within a track (same preset/model, data, sampler, steps, N, "
          "K, protocol settings and suite version). " + READING, ""]
    md += [board_markdown(board) for board in boards]
    md_path = Path(out) / "leaderboard.md"
    save_text("\n".join(md), md_path)
    return md_path, build_site(boards, runs, Path(out))
