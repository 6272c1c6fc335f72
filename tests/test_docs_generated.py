"""docs/protocols.md's generated tables are the ones the code writes (regenerate with
`python -m benchmark.cli.doc_tables --write` when a protocol, its keys or a metric change)."""
from __future__ import annotations

from benchmark.cli import doc_tables
from benchmark.config import PROTOCOL_KEYS
from metrics import METRIC_INFO


def test_the_protocol_and_metric_tables_are_current():
    for name in doc_tables.MARKERS:
        assert doc_tables.current(name) == doc_tables.generated(name), f"{name}: run python -m benchmark.cli.doc_tables --write"


def test_every_protocol_and_metric_has_its_row():
    protocols = doc_tables.current("protocol-table")
    for name, keys in PROTOCOL_KEYS.items():
        row = next(line for line in protocols.splitlines() if line.startswith(f"| `{name}` |"))
        assert all(key in row for key in keys), (name, row)
    metrics = doc_tables.current("metric-table").splitlines()
    assert len(metrics) == 2 + len(METRIC_INFO)
    assert "| `precision` | higher | Wilson score interval" in "\n".join(metrics)


def test_write_fills_a_page_with_empty_blocks(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# t\n\n" + "\n\n".join("\n".join(doc_tables.markers(n)) for n in doc_tables.MARKERS) + "\n\ntail\n")
    assert doc_tables.write(page) == list(doc_tables.MARKERS)
    assert doc_tables.current("metric-table", page) == doc_tables.metric_table()
    assert page.read_text().endswith("\n\ntail\n") and doc_tables.write(page) == []
