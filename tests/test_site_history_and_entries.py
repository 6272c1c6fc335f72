"""The site's history per track (each quality metric over the entries' submission dates) and its entry pages
(verification status, model card, estimator cards), from bundles and a run folder (issue 34, item 5)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from benchmark.cli import main
from tests.report_runs import toy_run
from tests.test_site import Page, _check_links, _chromium, needs_chromium

DATES = {"b_late": "2025-03-04T10:00:00+00:00", "b_early": "2024-01-02T09:30:00+00:00"}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("entries")
    for name, variant in (("b_late", "base"), ("b_early", "seed1")):
        assert main(["submit", str(toy_run(variant)), "--out", str(root / name)]) == 0
        record = json.loads((root / name / "bundle.json").read_text())
        record["created"] = DATES[name]  # two submission dates, the later bundle given first
        (root / name / "bundle.json").write_text(json.dumps(record))
    out = root / "site"
    assert main(["leaderboard", str(root / "b_late"), str(root / "b_early"), str(toy_run("other_track")),
                 "--recompute", "2", "--out", str(out)]) == 0
    return out


def _history_of(site: Path, entry: str) -> Path:
    index = (site / "index.html").read_text()
    track = re.search(rf"<h2 id='track-(\w+)'>((?!<h2).)*?{entry}", index, re.S).group(1)
    return site / "history" / f"{track}.html"


def test_a_history_holds_each_ranked_metric_over_the_entries_dates(site):
    page_path = _history_of(site, "b_late")
    page = Page(page_path.read_text())
    _check_links(page_path, page, site)
    tables = {k: v for k, v in page.tables.items() if k.startswith("history-")}
    assert len(tables) >= 3  # the board's ranked quality metrics (ΔFID, Δprecision, AUSE, ...)
    bundles = {name: pd.read_csv(site.parent / name / "run" / "metrics.csv") for name in DATES}
    text = page_path.read_text()
    for table_id, rows in tables.items():
        dates = [r[0][1] for r in rows]
        assert dates == sorted(dates) and set(dates) == set(DATES.values()), table_id  # earliest first
        assert len(rows) == 2 * 2  # two entries x the two ranked estimators, the floor left out
        for row in rows:
            entry, estimator, value = row[1][1], row[2][1], float(row[3][0])
            frame = bundles[entry]
            assert any(abs(value - v) <= 1e-9 * max(1, abs(v)) for v in frame[frame.estimator == estimator].value), row
    charts = re.findall(r"<svg .*?</svg>", text, re.S)
    assert len(charts) == len(tables)
    for chart in charts:  # one point per entry and estimator, one line per estimator through its two dates
        assert chart.count("<circle") == 4 and chart.count("class='series'") == 2
        assert set(re.findall(r"data-estimator='(\w+)'", chart)) == {"sensitivity", "mc_dropout"}
    other = Page(_history_of(site, "other_track").read_text())
    assert all(len(rows) == 2 for k, rows in other.tables.items() if k.startswith("history-"))  # one entry


def _cards(page: Page) -> dict[str, list[str]]:
    return {row[0][1]: [c[1] for c in row] for row in page.tables["estimator-cards"]}


def test_an_entry_page_shows_its_verification_and_cards(site):
    record = json.loads((site.parent / "b_late" / "bundle.json").read_text())
    bundle_page = next(p for p in (site / "runs").glob("*/index.html") if "b_late" in p.parent.name)
    text = bundle_page.read_text()
    assert "data-status='verified (2 samples re-computed)'" in text
    page = Page(text)
    model = {r[0][1]: r[1][1] for r in page.tables["model-card"]}
    assert model["weights_sha256"] == record["model_card"]["weights_sha256"] and model["prediction_type"] == "epsilon"
    status = {r[0][1]: r[1][1] for r in page.tables["entry-status"]}
    assert status["date"] == DATES["b_late"] and status["entry"] == "submission bundle"
    cards = _cards(page)
    assert set(cards) == set(record["estimator_cards"])
    assert record["estimator_cards"]["sensitivity"]["source_sha256"][:16] in cards["sensitivity"]
    assert any("De Vita" in cell for cell in cards["sensitivity"])  # the registry's card beside the bundle's

    folder_page = next(p for p in (site / "runs").glob("*/index.html") if "other_track" in p.parent.name)
    page = Page(folder_page.read_text())
    assert "data-status='validated run folder'" in folder_page.read_text()
    assert {r[0][1]: r[1][1] for r in page.tables["entry-status"]}["entry"] == "run folder"
    manifest = json.loads((toy_run("other_track") / "manifest.json").read_text())
    assert {r[0][1]: r[1][1] for r in page.tables["model-card"]}["weights_sha256"] == manifest["model_sha256"]
    assert set(_cards(page)) == set(manifest["estimators"])


@needs_chromium
def test_the_history_renders_its_charts_in_chromium(site, tmp_path):
    path = _history_of(site, "b_late")
    dom = _chromium(site, tmp_path, path.as_uri(), "--dump-dom")
    assert dom.count("<circle") == path.read_text().count("<circle") > 0  # the inline SVG survives parsing
    shot = tmp_path / "history.png"
    _chromium(site, tmp_path, path.as_uri(), f"--screenshot={shot}", "--window-size=900,1200")
    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=int)
    coloured = (abs(pixels[..., 0] - pixels[..., 2]) > 60).sum()  # the series' colours, not only black on white
    assert coloured > 50
