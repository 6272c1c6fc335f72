"""The run folder: whether `--out` can hold this run, its lock, and what a resumed run must match.

Checks are read-only and come before any work (`check_run_dir`); `prepare_run_dir` creates the folder, takes
its lock and saves config.json; `start_run_dir` also records the fingerprint of what the results depend on
besides the config (the model's weights, the Laplace posterior file, plug-in files, data files, the suite's source),
which a resumed run must match.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from benchmark.config import RunConfig
from benchmark.errors import ConfigError
from benchmark.execution import lock

FINISHED_MARKER = "manifest.json"
FINGERPRINT = "fingerprint.json"


def check_run_dir(out: Path, config: RunConfig, *, overwrite: bool) -> bool:
    """Whether `out` can hold this run, without leaving anything behind. True when it holds an unfinished run
    of the same config (resume); raises ConfigError when it is a file or below one, cannot be written, is locked
    by a live run, is a foreign folder, a finished run (without `overwrite`) or an unfinished run of another
    config (without `overwrite`)."""
    check_out_folder(out)
    saved = out / "config.json"
    if not out.is_dir() or not any(not p.name.startswith(".") for p in out.iterdir()):
        return False  # new or empty (a hidden temporary file of a write killed half-way does not count)
    lock.check_unlocked(out)
    if not saved.is_file():
        raise ConfigError("--out", str(out), "an empty or run directory, but it holds other files",
                          "choose a new --out folder")
    if (out / FINISHED_MARKER).is_file() and not overwrite:
        raise ConfigError("--out", str(out), "a new folder: it holds a finished run",
                          "pass --overwrite to replace it, or choose another --out")
    if overwrite:
        return False
    try:
        before = json.loads(saved.read_text())
    except (OSError, ValueError):
        before = {"config.json": "unreadable"}
    changed = differences(before, config.to_dict())
    if changed:
        raise ConfigError("--out", str(out), f"the folder of an unfinished run with a different config "
                          f"({'; '.join(changed[:3])}{'; ...' if len(changed) > 3 else ''})",
                          "pass --overwrite to start over, or use the same config to resume")
    return True


def check_out_folder(out: Path, field: str = "--out") -> None:
    """`out` can become (or is) a folder this process writes: not a file, not a dangling symbolic link, not below a
    file, writable (ConfigError naming `field`, read-only: nothing is left behind)."""
    if out.is_symlink() and not out.exists():
        raise ConfigError(field, str(out), f"a folder path, but it is a symbolic link to {out.readlink()}, which does "
                          "not exist", "remove the link, create the folder it points to, or choose another " + field)
    if out.exists() and not out.is_dir():
        raise ConfigError(field, str(out), "a directory path, but a file of that name exists",
                          f"choose another {field} or remove the file")
    _check_writable(out, field)


def _check_writable(out: Path, field: str = "--out") -> None:
    """`out` (or the folder it would be created in) must be a folder this process can write: probed by
    creating and removing a hidden temporary folder, so nothing is left."""
    anchor = out
    while not anchor.exists() and anchor != anchor.parent:
        if anchor.is_symlink():  # a dangling link on the way: mkdir would fail with "File exists"
            raise ConfigError(field, str(out), f"a folder path, but {anchor} is a symbolic link to "
                              f"{anchor.readlink()}, which does not exist", f"remove the link or choose another {field}")
        anchor = anchor.parent
    if not anchor.is_dir():
        raise ConfigError(field, str(out), f"a folder path, but {anchor} is a file", f"choose another {field}")
    try:
        probe = tempfile.mkdtemp(prefix=".uqbench-probe-", dir=anchor)
    except OSError as err:
        raise ConfigError(field, str(out), f"a folder this process can write ({anchor}: {err.strerror})",
                          f"choose a writable {field} (a read-only or protected file system cannot hold it)") from None
    Path(probe).rmdir()


def differences(before: Any, now: Any, prefix: str = "") -> list[str]:
    """Readable `field: old -> new` lines for the leaves in which two nested dicts differ."""
    if isinstance(before, dict) and isinstance(now, dict):
        lines = []
        for key in sorted(set(before) | set(now), key=str):
            where = f"{prefix}.{key}" if prefix else str(key)
            if key not in before:
                lines.append(f"{where}: (absent) -> {now[key]!r}")
            elif key not in now:
                lines.append(f"{where}: {before[key]!r} -> (absent)")
            else:
                lines += differences(before[key], now[key], where)
        return lines
    return [] if before == now else [f"{prefix}: {before!r} -> {now!r}"]


def prepare_run_dir(out: Path, config: RunConfig, *, overwrite: bool) -> bool:
    """Create or reuse `out` and take its lock. Returns True when resuming an unfinished run of the same config.

    A finished run (its manifest.json exists) is never overwritten without `overwrite`; an unfinished one
    with the same config resumes from its shards; a folder that is not a run directory is never deleted.
    """
    resume = check_run_dir(out, config, overwrite=overwrite)
    if not resume and overwrite and (out / "config.json").is_file():  # a run directory replaced under --overwrite
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    lock.acquire(out)
    if not resume:
        from benchmark.execution.io import save_json

        save_json(config.to_dict(), out / "config.json")
    return resume


def fingerprint(model, posterior_path: Path | None, config: RunConfig | None = None) -> dict:
    """What a run's results depend on besides its config: the model's weights (sha256 of the state dict), the
    Laplace posterior file that served bayesdiff (sha256 of the file; None without one) and, given the config,
    the plug-in files, the data files and the suite's own source (benchmark.execution.inputs_digest)."""
    from benchmark.execution.checksums import file_sha256
    from benchmark.execution.inputs_digest import inputs_fingerprint
    from benchmark.models.digest import weights_digest

    out = {"model_weights_sha256": weights_digest(model),
           "posterior_sha256": file_sha256(posterior_path) if posterior_path is not None else None}
    return {**out, **inputs_fingerprint(config)} if config is not None else out


#: what each fingerprint key is, for the refusal message
FINGERPRINT_LABELS = {"model_weights_sha256": "the model's weights", "posterior_sha256": "the fitted last-layer posterior",
                      "plugins_sha256": "a plug-in file", "data_sha256": "the data files",
                      "data_files_sha256": "the data's",
                      "model_files_sha256": "the model factory's file",
                      "suite_source_sha256": "the suite's own source code"}


def fingerprint_changes(saved: dict, current: dict) -> list[str]:
    """`what (key: old -> new)` for every fingerprint entry that differs; an entry absent from `saved` (a run
    started by an older version) or a posterior that the run had not fitted yet is not a change."""
    changes = []
    per_file = "data_files_sha256" in saved and "data_files_sha256" in current  # names the data file that changed
    for key, now in current.items():
        before = saved.get(key)
        if key not in FINGERPRINT_LABELS or key not in saved or (key == "posterior_sha256" and before is None) or (
                key == "data_sha256" and per_file):
            continue
        if isinstance(now, dict) and isinstance(before, dict):
            for name in sorted(set(now) | set(before)):
                if before.get(name) != now.get(name):
                    changes.append(f"{FINGERPRINT_LABELS[key]} {name} ({str(before.get(name))[:12]} -> "
                                   f"{str(now.get(name))[:12]})")
        elif before != now:
            changes.append(f"{FINGERPRINT_LABELS.get(key, key)} ({str(before)[:12]} -> {str(now)[:12]})")
    return changes


def check_fingerprint(out: Path, current: dict[str, str | None]) -> None:
    """A resumed run must use the model weights and posterior its shards were made with (ConfigError, exit 2)."""
    path = out / FINGERPRINT
    if not path.is_file():
        return
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        saved = {}
    changed = fingerprint_changes(saved, current)
    if changed:
        raise ConfigError("--out", str(out), f"an unfinished run made with the same inputs, but "
                          f"{'; '.join(changed[:3])}{'; ...' if len(changed) > 3 else ''} changed since it started",
                          "pass --overwrite to start over with the current inputs, or use a new --out (or restore "
                          "the old inputs to resume)")


def start_run_dir(out: Path, config: RunConfig, *, overwrite: bool, model, factory, cache: Path) -> bool:
    """Everything rank 0 does to the run folder before generation: refuse a resume whose model or posterior
    changed, create / lock the folder, save the in-memory posterior to `cache`, record the fingerprint."""
    resuming = check_run_dir(out, config, overwrite=overwrite)
    current = fingerprint(model, factory.posterior_path, config)
    if resuming:
        check_fingerprint(out, current)
    resume = prepare_run_dir(out, config, overwrite=overwrite)
    factory.persist(cache)
    from benchmark.execution.io import save_json

    save_json(fingerprint(model, factory.posterior_path, config), out / FINGERPRINT)
    return resume
