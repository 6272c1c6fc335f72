"""The head of an entry's page on the leaderboard site: its verification status and its cards.

A submission bundle brings its own cards (`bundle.json`: the model card and one estimator card per configured
instance, made on the submitting machine); a run folder's cards come from its manifest (the model's weights sha256,
each instance's type, kind and parameters). Either way each estimator's registry card (paper, needs, extra NFEs per
sample: estimators.cards) is added where its type is registered here.
"""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from benchmark.publish.bundle import BUNDLE_JSON
from benchmark.publish.html import Cell, table
from benchmark.publish.leaderboard import RunInfo
from benchmark.publish.site_history import entry_date


def bundle_record(run: RunInfo) -> dict[str, Any] | None:
    """The bundle.json of an entry made from a bundle (its run files live in <bundle>/run), else None."""
    path = run.path.parent / BUNDLE_JSON
    if run.path.name != "run" or not path.is_file():
        return None
    return json.loads(path.read_text())


def model_card(run: RunInfo, record: dict[str, Any] | None) -> dict[str, Any]:
    if record is not None:
        return dict(record.get("model_card", {}))
    track = run.manifest.get("track", {})
    source = track.get("run", {}).get("preset") or (track.get("model") or {}).get("path") or \
        (track.get("model") or {}).get("factory") or ""
    return {"weights_sha256": run.manifest.get("model_sha256"), "source": source}


def estimator_cards(run: RunInfo, record: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Instance name -> its card: the bundle's (or the manifest's record), with the registry's facts added."""
    from estimators.cards import card

    given = record.get("estimator_cards", {}) if record is not None else run.manifest.get("estimators", {})
    out = {}
    for name, rec in given.items():
        entry = {"type": rec.get("type") or name, "kind": rec.get("kind"),
                 "reference row": "yes" if rec.get("reference_row") else "no",
                 "parameters": ", ".join(f"{k} = {v}" for k, v in (rec.get("params") or {}).items()) or "(defaults)"}
        if record is not None:
            entry["source sha256"] = (rec.get("source_sha256") or "")[:16]
        try:
            registered = card(entry["type"])
            entry.update({"paper": registered.paper, "needs": registered.needs, "extra NFEs": registered.extra_nfe})
        except Exception:  # a plug-in not importable here: the entry's own card is all there is
            entry.update({"paper": "(not registered here)", "needs": "", "extra NFEs": ""})
        out[name] = entry
    return out


def entry_head(run: RunInfo) -> str:
    """Verification status, date, suite version, the model card and the estimator cards, as HTML."""
    record = bundle_record(run)
    kind = "submission bundle" if record is not None else "run folder"
    suite = run.manifest.get("suite_version", "?")
    commit = (record or {}).get("suite", {}).get("commit") or run.manifest.get("git_revision") or ""
    status = [("verification", run.verification), ("entry", kind), ("date", entry_date(run) or "–"),
              ("suite version", f"{suite}" + (f" (commit {commit[:12]})" if commit else ""))]
    if record is not None:
        status.append(("machine", str(record.get("machine", {}).get("platform", ""))))
    parts = ["<section id='entry'><h2>Entry</h2>",
             f"<p class='verification' data-status='{html.escape(run.verification, quote=True)}'>"
             f"<strong>{html.escape(run.verification)}</strong></p>",
             _pairs(status, "entry-status"), "<h3>Model card</h3>",
             _pairs([(k, "" if v is None else str(v)) for k, v in model_card(run, record).items()], "model-card")]
    cards = estimator_cards(run, record)
    if cards:
        header = ["estimator", *next(iter(cards.values())).keys()]
        rows = [[Cell(name), *(Cell(str(v)) for v in entry.values())] for name, entry in cards.items()]
        parts += ["<h3>Estimator cards</h3>", table(header, rows, sortable=False, table_id="estimator-cards")]
    return "".join(parts) + "</section>"


def _pairs(items: list[tuple[str, str]], table_id: str) -> str:
    return table(["field", "value"], [[Cell(k), Cell(v)] for k, v in items], sortable=False, table_id=table_id)


def history_link(run: RunInfo) -> str:
    """The entry page's link to its track's history (relative to runs/<slug>/)."""
    href = Path("..") / ".." / "history" / f"{run.track_id}.html"
    return f"<a href='{html.escape(href.as_posix(), quote=True)}'>track history</a>"
