"""The packaged suite (issue 34): the wheel `pip wheel --no-deps` builds installs into a fresh environment (no editable
install, nothing downloaded: the dependencies come from this environment's site-packages as a plain path) and, from
a folder outside the checkout, lists the presets and runs a small config on the `digits` preset, whose weights and
classifier, like the Inception weights, are found as installed package data. The version comes from one place.

Skipped only where a wheel cannot be built here (no setuptools or pip to build offline; setuptools >= 70 builds wheels itself), with that reason.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "benchmark", "estimators", "metrics")
CONFIG = """
[run]
name = "wheel"
preset = "digits"
steps = 10
num_samples = 20
keep = 16
batch_size = 20
bootstrap = 20
threads = 1
[estimators.sensitivity]
m = 2
window = [40, 49]
[protocols.filtered_fid]
curve_fractions = [0.5, 1.0]
[protocols.cost]
"""


def _buildable() -> str | None:
    missing = [m for m in ("setuptools", "pip") if importlib.util.find_spec(m) is None]
    return f"cannot build a wheel offline: {', '.join(missing)} not installed in {sys.prefix}" if missing else None


@pytest.mark.slow
@pytest.mark.skipif(_buildable() is not None, reason=str(_buildable()))
def test_the_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    source = tmp_path / "src"  # a copy: building writes build/ and *.egg-info, never into the shared checkout
    source.mkdir()
    for name in SOURCES:
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(ROOT / name, source / name, **({"ignore": shutil.ignore_patterns("__pycache__", "*.pyc")}
                                            if (ROOT / name).is_dir() else {}))
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "OMP_NUM_THREADS": "1"}
    env.pop("UQBENCH_EXTRA_PRESETS", None)
    env.pop("PYTHONPATH", None)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(source)], check=True, env=env, capture_output=True, timeout=300)
    wheel = next((tmp_path / "dist").glob("diffusion_uq_bench-*.whl"))

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    # this environment's packages as a plain path (its .pth files, the editable install among them, are not read)
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(site),
                    str(wheel)], check=True, env=env, capture_output=True, timeout=300)

    outside = tmp_path / "elsewhere"
    outside.mkdir()

    def run(*args: str, timeout: int = 300) -> str:
        done = subprocess.run([python, *args], cwd=outside, env=env, capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    where = json.loads(run("-c", "import json, importlib.metadata as m, benchmark, metrics; "
                                 "from benchmark.presets.loading import load_preset; "
                                 "from metrics.features import resolve_inception_weights; p = load_preset('digits'); "
                                 "print(json.dumps([benchmark.__file__, str(p.model.path), str(p.classifier), "
                                 "str(resolve_inception_weights()), m.version('diffusion-uq-bench')]))"))
    package, weights, classifier, inception, version = where
    assert Path(package).is_relative_to(site), package  # the wheel's copy, not the checkout
    assert Path(weights).is_relative_to(site) and (Path(weights) / "unet").is_dir(), weights
    assert Path(classifier).is_relative_to(site) and Path(classifier).is_file(), classifier
    assert Path(inception).is_file() and ("site-packages" in inception or inception.startswith("/tmp")), inception
    assert version == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]

    listing = run("-m", "benchmark", "list")
    assert "digits" in listing and "sensitivity" in listing
    (outside / "small.toml").write_text(CONFIG)
    run("-m", "benchmark", "run", "--config", "small.toml", "--out", "run", "--quiet", timeout=400)
    manifest = json.loads((outside / "run" / "manifest.json").read_text())
    assert manifest["status"] == "finished" and manifest["suite_version"] == version
    assert "sensitivity" in (outside / "run" / "metrics.csv").read_text()


def test_the_version_is_written_in_one_place():
    """pyproject.toml's [project] version; the code reads the installed metadata (benchmark.report.manifest)."""
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    pattern = re.compile(r"""(__version__\s*=|\bversion\s*=\s*["']\d+\.\d+\.\d+)""")
    written = [str(p.relative_to(ROOT)) for package in ("benchmark", "estimators", "metrics")
               for p in (ROOT / package).rglob("*.py") if pattern.search(p.read_text()) or f'"{version}"' in p.read_text()]
    assert written == [], written
    from benchmark.report.manifest import suite_version
    assert suite_version() == version
