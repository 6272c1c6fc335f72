"""`python -m benchmark validate RUN_DIR`: is a run folder complete and untouched since the run wrote it?

The manifest (written last by the run) records the sha256 of every result file, a checksum of the model
weights, and the suite and protocol versions. A run is valid when the manifest is there and complete,
every recorded file exists with its recorded checksum, config.json equals the manifest's config,
metrics.csv has the tidy columns and only the recorded protocols, and (unless skipped) the weights the
config names still hash to the recorded value. Every problem is reported in one line naming the file.
Exit code 0 when valid, 2 otherwise.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.errors import UQBenchError
from benchmark.execution.checksums import file_sha256
from benchmark.protocols.table import COLUMNS
from benchmark.report.manifest import MANIFEST, model_sha256

REQUIRED_KEYS = ("status", "config", "suite_version", "protocol_versions", "sha256", "estimators", "track")
REQUIRED_FILES = ("metrics.csv", "config.json")


class RunValidationError(UQBenchError):
    """A run folder is unfinished or was changed after its run (exit code 2 in the CLI)."""


@dataclass
class Validation:
    run_dir: Path
    problems: list[str] = field(default_factory=list)
    manifest: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def describe(self) -> str:
        if self.ok:
            return f"{self.run_dir}: valid (suite {self.manifest['suite_version']}, {len(self.manifest['sha256'])} " \
                   "files match their checksums)"
        return "\n".join(f"{self.run_dir}: {p}" for p in self.problems)

    def raise_if_invalid(self, purpose: str = "used") -> None:
        if not self.ok:
            more = f" (and {len(self.problems) - 1} more: run `python -m benchmark validate {self.run_dir}`)" \
                if len(self.problems) > 1 else ""
            raise RunValidationError(f"{self.run_dir} cannot be {purpose}: {self.problems[0]}{more}")


def validate_run(run_dir: Path, *, check_weights: bool = True) -> Validation:
    run_dir = Path(run_dir)
    result = Validation(run_dir)
    if not run_dir.is_dir():
        result.problems.append("not a directory (give the folder a run wrote: python -m benchmark run --out DIR)")
        return result
    path = run_dir / MANIFEST
    if not path.is_file():
        result.problems.append(f"unfinished: no {MANIFEST} (a run writes it last; resume the run with the "
                               "command that started it)")
        return result
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        result.problems.append(f"{MANIFEST} is not valid JSON ({err})")
        return result
    missing = [key for key in REQUIRED_KEYS if key not in manifest]
    if missing:
        result.problems.append(f"{MANIFEST} lacks {', '.join(missing)} (written by an older suite version or "
                               "edited; re-run to get a checkable run)")
        return result
    result.manifest = manifest
    if manifest["status"] != "finished":
        result.problems.append(f"{MANIFEST} status is {manifest['status']!r}, not 'finished'")
    result.problems += _check_files(run_dir, manifest["sha256"])
    result.problems += _check_config(run_dir, manifest)
    result.problems += _check_metrics(run_dir, manifest)
    if check_weights and manifest.get("model_sha256"):
        result.problems += _check_weights(manifest)
    result.problems += _check_inputs(run_dir)
    return result


def _check_inputs(run_dir: Path) -> list[str]:
    """The plug-in files and data the run read (fingerprint.json) must still hash to what the run recorded."""
    from benchmark.execution.inputs_digest import input_changes

    path = run_dir / "fingerprint.json"
    if not path.is_file():
        return []
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return ["fingerprint.json is not valid JSON (the run's record of its inputs)"]
    return [f"inputs: {change} (re-run the config, into a new --out or with --overwrite)"
            for change in input_changes(saved)]


def _check_files(run_dir: Path, recorded: dict[str, str]) -> list[str]:
    problems = [f"{name} is not listed in the manifest's checksums" for name in REQUIRED_FILES if name not in recorded]
    for name, digest in recorded.items():
        target = run_dir / name
        if not target.is_file():
            problems.append(f"{name} is missing (the manifest records it)")
        elif file_sha256(target) != digest:
            problems.append(f"{name} was changed after the run: its sha256 differs from the manifest's")
    return problems


def _check_config(run_dir: Path, manifest: dict[str, Any]) -> list[str]:
    path = run_dir / "config.json"
    if not path.is_file():
        return []  # reported by _check_files
    try:
        saved = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        return [f"config.json is not valid JSON ({err})"]
    return [] if saved == manifest["config"] else ["config.json differs from the config recorded in the manifest"]


def _check_metrics(run_dir: Path, manifest: dict[str, Any]) -> list[str]:
    import pandas as pd

    path = run_dir / "metrics.csv"
    if not path.is_file():
        return []
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        return [f"metrics.csv cannot be read as CSV ({err})"]
    if list(frame.columns) != COLUMNS:
        return [f"metrics.csv has columns {list(frame.columns)}, expected {COLUMNS}"]
    unknown = sorted(set(frame.protocol) - set(manifest["protocol_versions"]))
    if unknown:
        return [f"metrics.csv has rows of protocols without a recorded version: {', '.join(unknown)}"]
    return []


def _check_weights(manifest: dict[str, Any]) -> list[str]:
    """Reload the model the run's config names (as the run did: run.preset with [model] / [data] in its place)."""
    from benchmark import presets
    from benchmark.config import parse_config
    from benchmark.runner import setup

    name = manifest["config"].get("run", {}).get("preset") or "[model]"
    try:
        config = parse_config(manifest["config"])
        base = setup.load_preset(config.preset) if config.preset else None
        model = presets.for_run(base, config.model, config.data).load_model()
    except UQBenchError as err:
        return [f"model weights: cannot load the model of preset {name!r} to check them ({err})"]
    if model_sha256(model) != manifest["model_sha256"]:
        return [f"model weights: preset {name!r} now loads weights whose sha256 differs from the run's "
                "(retrained or replaced after the run)"]
    return []
