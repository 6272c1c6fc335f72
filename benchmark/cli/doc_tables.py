"""The generated tables of docs/protocols.md, written from the code so that they cannot drift:

- each protocol: the first paragraph of its module's docstring (benchmark.protocols.catalog) and its config keys with
  their defaults (benchmark.config.PROTOCOL_KEYS, as `python -m benchmark list` prints them);
- each metric of metrics.csv: which direction is better and what its 95 % interval covers (metrics.METRIC_INFO).

    python -m benchmark.cli.doc_tables --write   # regenerate (tests/test_docs_generated.py checks they are current)
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from estimators.cards import generated_block, replace_generated, toml_value

PAGE = Path(__file__).resolve().parents[2] / "docs" / "protocols.md"
#: the names of the generated blocks (`<!-- name:start -->` ... `<!-- name:end -->`)
MARKERS = ("protocol-table", "metric-table")


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def protocol_table() -> str:
    """One row per protocol: config name, what it measures, keys (defaults)."""
    from benchmark.config import PROTOCOL_KEYS
    from benchmark.protocols.catalog import PROTOCOL_MODULES

    rows = ["| protocol | what it measures | keys (defaults) |", "|---|---|---|"]
    for name, module in PROTOCOL_MODULES.items():
        summary = (module.__doc__ or "").strip().split("\n\n")[0]  # its first paragraph
        keys = []
        for key, rule in PROTOCOL_KEYS.get(name, {}).items():
            default = getattr(rule, "default", rule)
            keys.append(key if default is None else f"{key} = {toml_value(rule)}")
        rows.append(f"| `{name}` | {_cell(summary)} | {_cell(', '.join(keys) or '(none)')} |")
    return "\n".join(rows)


def metric_table() -> str:
    """One row per metric name of metrics.csv (without its feature-space suffix)."""
    from metrics import METRIC_INFO

    rows = ["| metric | better | what its 95 % interval covers |", "|---|---|---|"]
    for name, info in METRIC_INFO.items():
        rows.append(f"| `{name}` | {info.direction} | {_cell(info.interval) or '(no interval)'} |")
    return "\n".join(rows)


def generated(name: str) -> str:
    return {"protocol-table": protocol_table, "metric-table": metric_table}[name]()


def current(name: str, page: Path = PAGE) -> str:
    """The block as the page holds it now."""
    return generated_block(page.read_text(encoding="utf-8"), *markers(name))


def write(page: Path = PAGE) -> list[str]:
    """Regenerate every block of the page; the names of those that changed."""
    return [name for name in MARKERS if replace_generated(page, generated(name), *markers(name))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmark.cli.doc_tables", description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help=f"regenerate the tables of docs/{PAGE.name}")
    args = parser.parse_args(argv)
    if args.write:
        changed = write()
        print(f"docs/{PAGE.name}: " + (", ".join(changed) + " updated" if changed else "already current"))
    else:
        print("\n\n".join(generated(name) for name in MARKERS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
