"""What makes a run folder valid: one rule, which `python -m benchmark validate` reports and `leaderboard` enforces.

A run folder is valid when
- its manifest (written last by the run) is there, readable, complete and says the run finished;
- every file the manifest records exists with its recorded sha256 (metrics.csv and config.json among them);
- config.json equals the config the manifest records, and reads back as a run config (the same parse a run
  does: its plug-ins import, its estimators are registered);
- metrics.csv is a complete tidy table (benchmark.report.metrics_file) of only the recorded protocols;
- the plug-in, model and data files the run read (fingerprint.json) still hash to what it recorded;
- the model its config names (its preset: built-in, plug-in or $UQBENCH_EXTRA_PRESETS, or its `[model]`) still
  loads, with the weights whose sha256 the manifest records (`validate --skip-weights` leaves this out).

Every kind of run is read back the same way: a preset (built-in, plug-in or $UQBENCH_EXTRA_PRESETS), a
`[model] path` folder, a `[model] factory`, and plug-ins (the saved config records their resolved paths; a run
saved before that resolves them against the folder of the config file it was run from).
"""
from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.errors import UQBenchError
from benchmark.execution.checksums import file_sha256
from benchmark.protocols.table import COLUMNS, LEGACY_COLUMNS
from benchmark.report.manifest import MANIFEST, model_sha256

REQUIRED_KEYS = ("status", "config", "suite_version", "protocol_versions", "sha256", "estimators", "track")
REQUIRED_FILES = ("metrics.csv", "config.json")


class RunValidationError(UQBenchError):
    """A run folder is unfinished or was changed after its run (exit code 2 in the CLI)."""


@dataclass
class RunValidity:
    """The verdict on one run folder: `problems` (one line each, naming the file), empty when the run is valid."""

    run_dir: Path
    problems: list[str] = field(default_factory=list)
    manifest: dict[str, Any] | None = None
    frame: Any = None  # metrics.csv as a checked pandas DataFrame (None when it could not be read)
    weights_checked: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def describe(self) -> str:
        if self.ok:
            weights = "; model weights match" if self.weights_checked else ""
            return f"{self.run_dir}: valid (suite {self.manifest['suite_version']}, {len(self.manifest['sha256'])} " \
                   f"files match their checksums{weights})"
        return "\n".join(f"{self.run_dir}: {p}" for p in self.problems)

    def raise_if_invalid(self, purpose: str = "used") -> None:
        if not self.ok:
            more = f" (and {len(self.problems) - 1} more: run `python -m benchmark validate {self.run_dir}`)" \
                if len(self.problems) > 1 else ""
            raise RunValidationError(f"{self.run_dir} cannot be {purpose}: {self.problems[0]}{more}. Fix: finish it "
                                     "(the command that started it resumes an unfinished run) or re-run its config, "
                                     "or leave the folder out")


def check_run(run_dir: Path, *, check_weights: bool = True, weights_cache: dict[str, Any] | None = None
              ) -> RunValidity:
    """The one rule (module docstring). `check_weights=False` (validate --skip-weights) leaves out only the
    reload of the model; `weights_cache` (model key -> sha256) spares reloading one model for many runs."""
    run_dir = Path(run_dir)
    result = RunValidity(run_dir)
    manifest = _read_manifest(run_dir, result.problems)
    if manifest is None:
        return result
    result.manifest = manifest
    if manifest["status"] != "finished":
        result.problems.append(f"{MANIFEST} status is {manifest['status']!r}, not 'finished'")
    files = _check_files(run_dir, manifest["sha256"])
    result.problems += files + _check_config_file(run_dir, manifest)
    result.frame, problems = _check_metrics(run_dir, manifest)
    if not any(p.startswith("metrics.csv ") for p in files):  # a changed file: its checksum says it once
        result.problems += problems
    config, problem = saved_config(manifest, model_files=check_weights)
    if problem:
        result.problems.append(problem)
    named = " ".join(result.problems)  # a file a line above already names (a missing plug-in) is not said twice
    result.problems += [p for p in _check_inputs(run_dir, model_files=check_weights)
                        if not any(path in named for path in re.findall(r"\((/[^()]*)\)", p))]
    if config is not None and check_weights and manifest.get("model_sha256"):
        result.problems += _check_weights(config, manifest, weights_cache)
        result.weights_checked = True
    return result


def _read_manifest(run_dir: Path, problems: list[str]) -> dict[str, Any] | None:
    if not run_dir.is_dir():
        problems.append("not a directory (give the folder a run wrote: python -m benchmark run --out DIR)")
        return None
    path = run_dir / MANIFEST
    if not path.is_file():
        problems.append(f"unfinished: no {MANIFEST} (a run writes it last; resume the run with the command that "
                        "started it)")
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        problems.append(f"{MANIFEST} is not valid JSON ({err})")
        return None
    missing = [key for key in REQUIRED_KEYS if key not in manifest] if isinstance(manifest, dict) else REQUIRED_KEYS
    if missing:
        problems.append(f"{MANIFEST} lacks {', '.join(missing)} (written by an older suite version or edited; "
                        "re-run to get a checkable run)")
        return None
    return manifest


def saved_config(manifest: dict[str, Any], *, model_files: bool = True):
    """(RunConfig, None) of the config a manifest records, read back as the run read it, or (None, problem).

    A `[model]` run saves `run.preset = ""` beside its [model] section: that empty preset is no preset. Plug-in
    paths are recorded resolved; older runs' relative ones resolve against the folder of `config_file`. A
    `[model]` whose files are not on this machine (a run copied from another one) is a problem only with
    `model_files` (validate without --skip-weights, which is then suggested)."""
    from benchmark.config import parse_config

    data = copy.deepcopy(manifest["config"])
    run = data.get("run") if isinstance(data, dict) else None
    if isinstance(run, dict) and run.get("preset") in ("", None) and ("model" in data or "data" in data):
        run.pop("preset", None)
    source = manifest.get("config_file") or ""
    try:
        config = parse_config(data, source=str(source))  # its preset is looked up with the weights (_check_weights)
    except UQBenchError as err:
        field = str(getattr(err, "field", ""))
        if field.startswith("model.") and not model_files:
            return None, None
        hint = " (a run from another machine: `validate --skip-weights` checks it without the model's files)" \
            if field.startswith("model.") else ""
        return None, f"config.json cannot be read back as the run's config: {' '.join(str(err).split())}{hint}"
    return config, None


def _check_files(run_dir: Path, recorded: dict[str, str]) -> list[str]:
    problems = [f"{name} is not listed in the manifest's checksums" for name in REQUIRED_FILES if name not in recorded]
    for name, digest in recorded.items():
        target = run_dir / name
        if not target.is_file():
            problems.append(f"{name} is missing (the manifest records it)")
        elif file_sha256(target) != digest:
            problems.append(f"{name} was changed after the run: its sha256 differs from the manifest's")
    return problems


def _check_config_file(run_dir: Path, manifest: dict[str, Any]) -> list[str]:
    path = run_dir / "config.json"
    if not path.is_file():
        return []  # reported by _check_files
    try:
        saved = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        return [f"config.json is not valid JSON ({err})"]
    return [] if saved == manifest["config"] else ["config.json differs from the config recorded in the manifest"]


def _check_metrics(run_dir: Path, manifest: dict[str, Any]):
    """(frame or None, problems): metrics.csv read by the strict reader every command uses, its columns and
    protocols checked."""
    from benchmark.report.metrics_file import read_metrics

    if not (run_dir / "metrics.csv").is_file():
        return None, []  # reported by _check_files
    try:
        frame = read_metrics(run_dir, "RUN_DIR")
    except UQBenchError as err:
        return None, [f"metrics.csv cannot be read: {' '.join(str(err).split())}"]
    header = (run_dir / "metrics.csv").read_text().partition("\n")[0].strip().split(",")  # read: it decodes
    if header not in (COLUMNS, LEGACY_COLUMNS):  # a run written before `detectable_effect` stays valid
        return None, [f"metrics.csv has columns {header}, expected {COLUMNS}"]
    unknown = sorted(set(frame.protocol) - set(manifest["protocol_versions"]))
    if unknown:
        return None, [f"metrics.csv has rows of protocols without a recorded version: {', '.join(unknown)}"]
    return frame, []


def _check_inputs(run_dir: Path, *, model_files: bool = True) -> list[str]:
    """The plug-in files and data the run read (fingerprint.json) must still hash to what the run recorded, and so
    must the model factory's files (with `model_files` False, validate --skip-weights, only those still there)."""
    from benchmark.execution.inputs_digest import input_changes

    path = run_dir / "fingerprint.json"
    if not path.is_file():
        return []
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return ["fingerprint.json is not valid JSON (the run's record of its inputs)"]
    if not model_files:  # a run from another machine: its model's files may be absent, but not changed
        saved = {**saved, "model_files": {name: path for name, path in saved.get("model_files", {}).items()
                                          if Path(path).is_file()}}
    return [f"inputs: {change} (re-run the config, into a new --out or with --overwrite)"
            for change in input_changes(saved)]


def _check_weights(config, manifest: dict[str, Any], cache: dict[str, Any] | None) -> list[str]:
    """Reload the model the run's config names (as the run did: run.preset with [model] / [data] in its place)."""
    from benchmark import presets
    from benchmark.presets.loading import load_preset

    saved = manifest["config"]
    name = config.preset or "[model]"
    key = json.dumps([config.preset, saved.get("model"), saved.get("data")], sort_keys=True, default=str)
    try:
        if cache is not None and key in cache:
            digest = cache[key]
        else:
            base = load_preset(config.preset) if config.preset else None
            digest = model_sha256(presets.for_run(base, config.model, config.data).load_model())
            if cache is not None:
                cache[key] = digest
    except UQBenchError as err:
        return [f"model weights: cannot load the model of {_what(name)} to check them ({' '.join(str(err).split())}; "
                "a run from another machine: `validate --skip-weights` checks everything else)"]
    if digest != manifest["model_sha256"]:
        return [f"model weights: {_what(name)} now loads weights whose sha256 differs from the run's "
                "(retrained or replaced after the run)"]
    return []


def _what(name: str) -> str:
    return "the run's [model]" if name == "[model]" else f"preset {name!r}"
