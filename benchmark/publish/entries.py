"""Leaderboard entries from submission bundles, and the one-version rule of a board.

`leaderboard` accepts run folders and bundles (benchmark.publish.bundle) side by side. A bundle is checked for
integrity (benchmark.publish.verify.check_integrity: its files, the run manifest's checksums, the per-sample hashes),
and with `recompute > 0` its K random samples are re-computed as `verify --recompute K` does; a board then shows its
submission date, suite version and verification status. All entries of one board must share one suite version and,
per protocol, one protocol version: a mix is refused with one line (`check_one_version`), whichever track they are on.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.publish.bundle import BUNDLE_JSON
from benchmark.publish.validity import RunValidationError


@dataclass(frozen=True)
class BundleEntry:
    path: Path  # the bundle's run/ folder (config.json, metrics.csv, manifest.json)
    frame: pd.DataFrame
    manifest: dict[str, Any]
    date: str
    verification: str


def is_bundle(path: Path) -> bool:
    return (Path(path) / BUNDLE_JSON).is_file()


def load_bundle(bundle: Path, *, recompute: int = 0) -> BundleEntry:
    """A bundle as a board entry; refused (RunValidationError, exit 2) with its first problem."""
    from benchmark.publish.verify import check_integrity, read_bundle, recompute as recompute_scores
    from benchmark.report.metrics_file import read_metrics

    bundle = Path(bundle)
    record = read_bundle(bundle)
    problems = check_integrity(bundle, record)
    recomputed: list[int] = []
    if not problems and recompute > 0:
        recomputed, problems = recompute_scores(bundle, record, recompute)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise RunValidationError(f"bundle {bundle} cannot be put on a leaderboard: {problems[0]}{more}. Fix: run "
                                 f"`python -m benchmark verify {bundle}` and ask its submitter for an intact bundle")
    status = f"verified ({len(recomputed)} samples re-computed)" if recomputed else "intact (not re-computed)"
    manifest = json.loads((bundle / "run" / "manifest.json").read_text())
    frame = read_metrics(bundle / "run", field="bundle")
    return BundleEntry(bundle / "run", frame, manifest, str(record.get("created", "")), status)


def check_one_version(entries: list[tuple[str, dict[str, Any]]]) -> None:
    """(name, manifest) of every entry: one suite version and one version per protocol, else RunValidationError."""
    suites: dict[str, str] = {}
    protocols: dict[str, tuple[int, str]] = {}
    for name, manifest in entries:
        suites.setdefault(str(manifest.get("suite_version")), name)
        for protocol, version in manifest.get("protocol_versions", {}).items():
            other = protocols.setdefault(protocol, (version, name))
            if other[0] != version:
                raise RunValidationError(
                    f"entries {other[1]} and {name} record protocol {protocol} versions {other[0]} and {version}: "
                    "a board holds one protocol version. Fix: re-run (and re-submit) the older one with this suite")
    if len(suites) > 1:
        (first, a), (second, b) = list(suites.items())[:2]
        raise RunValidationError(f"entries {a} and {b} were made by suite versions {first} and {second}: a board "
                                 "holds one suite version. Fix: re-run (and re-submit) the older one with this suite, "
                                 "or build one board per version")
