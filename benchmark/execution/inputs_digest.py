"""Content digests of what a run reads besides its config and model weights: plug-in files, data, the suite's source.

A resumed run reuses its finished shards, so it must refuse when any of these changed since the run started (an
edited plug-in file or data folder would otherwise mix old and new results without a trace; issue 27 measured
ΔFID -20.2 on such a resume against 46.0 for a clean run). Each digest is a sha256:
- plug-ins: of each `run.plugins` entry's file (a .py path resolved as the loader resolves it, or a module's
  source file, found by importlib);
- data: of a `[data] path` file, or of a folder as the sorted (relative path, file sha256) list of its files, plus
  the `reference_stats` file and the data's domain classifier, each also apart (`data_files_sha256`: a refusal
  names the file that changed); a built-in dataset is named, not hashed (it ships with the package or the OS);
- a `[model] factory`: its source file, the files its import loaded from its folder or sys.path additions
  (benchmark.models.import_closure), weights file and schedule file (`FactorySpec.source_files`);
- the suite's own source: the sorted (relative path, file sha256) list of the .py files of the packages
  benchmark, estimators and metrics.
"""
from __future__ import annotations

import hashlib
import importlib.util
from functools import lru_cache
from pathlib import Path

from benchmark.data.user_data import CLASSIFIER_FILE
from benchmark.execution.checksums import file_sha256

PACKAGES = ("benchmark", "estimators", "metrics")
ROOT = Path(__file__).resolve().parents[2]


def tree_sha256(folder: Path, pattern: str = "*", skip: tuple[str, ...] = ()) -> str:
    """sha256 of the sorted (relative path, sha256 of its bytes) list of the files under `folder` matching
    `pattern` (hidden files, __pycache__ and the relative paths in `skip` left out)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob(pattern) if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        if relative.startswith(".") or "/." in relative or "__pycache__" in relative or relative in skip:
            continue
        digest.update(f"{relative}\0{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def path_sha256(path: Path) -> str:
    """A file's sha256, or a folder's tree_sha256 (its domain classifier left out: `data_files` lists it apart, so
    training one into a data folder after a run does not read as a change of that run's data)."""
    path = Path(path)
    return tree_sha256(path, skip=(CLASSIFIER_FILE,)) if path.is_dir() else file_sha256(path)


def plugin_files(config) -> dict[str, str]:
    """{plug-in as written: its resolved source file} for every `run.plugins` entry ("" when a module has no
    source file, e.g. a built-in extension)."""
    from benchmark.config.plugins import _is_file, _resolve_file

    base = Path(config.source).parent if getattr(config, "source", "") else None
    out = {}
    for plugin in getattr(config, "plugins", ()):
        if _is_file(plugin):
            out[plugin] = str(_resolve_file(plugin, base, "run.plugins"))
            continue
        spec = importlib.util.find_spec(plugin)
        origin = getattr(spec, "origin", None)
        out[plugin] = str(origin) if origin and Path(origin).is_file() else ""
    return out


def files_sha256(files: dict[str, str]) -> dict[str, str]:
    """{name: sha256 of the file} ("missing" for a file that is gone or was never found)."""
    return {name: file_sha256(Path(path)) if path and Path(path).is_file() else "missing"
            for name, path in files.items()}


def data_file_roles(config) -> dict[str, str]:
    """{role and file name: resolved path} of the `[data]` files the run reads: the images (`data.path`), the
    `reference_stats` when given, the data's own domain classifier when one exists (`DataSpec.classifier_file`);
    {} for a built-in dataset. A refusal names the file by this key."""
    spec = getattr(config, "data", None)
    if spec is None or getattr(spec, "path", None) is None:
        return {}
    classifier = spec.classifier_file() if callable(getattr(spec, "classifier_file", None)) else None
    roles = {"images": spec.path, "reference_stats": getattr(spec, "reference_stats", None),
             "domain classifier": classifier}
    return {f"{role} {Path(path).name}": str(Path(path).resolve()) for role, path in roles.items() if path is not None}


def data_files(config) -> list[str]:
    """The `[data]` paths the run reads, in the order of `data_file_roles`; [] for a built-in dataset."""
    return list(data_file_roles(config).values())


def data_files_sha256(roles: dict[str, str]) -> dict[str, str]:
    """{role: sha256 of the file, tree digest of a folder, or "missing"}."""
    return {role: path_sha256(Path(path)) if Path(path).exists() else "missing" for role, path in roles.items()}


def data_sha256(paths: list[str]) -> str | None:
    """sha256 of the data files / folders (None when there are none: a built-in dataset)."""
    if not paths:
        return None
    digest = hashlib.sha256()
    for path in paths:
        digest.update((path_sha256(Path(path)) if Path(path).exists() else "missing").encode())
    return digest.hexdigest()


@lru_cache(maxsize=1)
def source_sha256() -> str:
    """sha256 over the .py sources of the suite's packages (computed once per process)."""
    digest = hashlib.sha256()
    for package in PACKAGES:
        digest.update(f"{package}\0{tree_sha256(ROOT / package, '*.py')}\n".encode())
    return digest.hexdigest()


def inputs_fingerprint(config) -> dict:
    """The digests above, keyed as in fingerprint.json, with the files they were read from (`validate` re-reads
    them: a finished run whose plug-in or data changed afterwards no longer matches its inputs)."""
    plugins, roles = plugin_files(config), data_file_roles(config)
    source_files = getattr(getattr(config, "model", None), "source_files", None)
    model = source_files() if callable(source_files) else {}  # a [model] factory: its source, imports, weights, schedule
    return {"plugins_sha256": files_sha256(plugins), "data_sha256": data_sha256(list(roles.values())),
            "data_files_sha256": data_files_sha256(roles), "model_files_sha256": files_sha256(model),
            "suite_source_sha256": source_sha256(), "plugin_files": plugins, "data_files": list(roles.values()),
            "data_file_roles": roles, "model_files": model}


def input_changes(saved: dict) -> list[str]:
    """What changed since a run recorded `saved` (its fingerprint.json): plug-in files, the model factory's files
    and the data, re-read from the recorded paths, one line per file ("changed" or "no longer exists"); [] for a
    fingerprint without those entries (an older run)."""
    changes = _file_changes(saved, "plugin_files", "plugins_sha256", "plug-in {name} ({path})")
    changes += _file_changes(saved, "model_files", "model_files_sha256", "the model factory's file {name} ({path})")
    if "data_file_roles" in saved:
        now = data_files_sha256(saved["data_file_roles"])
        changes += [_changed(f"the data's {role} ({path})", now[role]) for role, path in saved["data_file_roles"].items()
                    if now[role] != saved.get("data_files_sha256", {}).get(role)]
    elif saved.get("data_files") and data_sha256(saved["data_files"]) != saved.get("data_sha256"):
        changes.append(f"the data ({', '.join(saved['data_files'])}) changed after the run")
    return changes


def _file_changes(saved: dict, files_key: str, digest_key: str, what: str) -> list[str]:
    if files_key not in saved:
        return []
    now = files_sha256(saved[files_key])
    return [_changed(what.format(name=name, path=saved[files_key][name]), now[name])
            for name in now if now[name] != saved.get(digest_key, {}).get(name)]


def _changed(what: str, digest: str) -> str:
    return f"{what} no longer exists" if digest == "missing" else f"{what} changed after the run"
