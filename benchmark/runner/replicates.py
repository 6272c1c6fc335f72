"""`run` of a config with `run.seeds` (or `--seeds`): one complete run per seed, then the pooled results.

OUT/seed_<s>/ is a normal run folder of the config with run.seed = s (the same code path as a single run: its own
lock, fingerprint, resume and manifest); OUT/ then gets seeds.csv, pooled_verdicts.csv, seeds.md and, last,
replicates.json (benchmark.report.seeds_document). The same command resumes: finished seed folders of this config
are kept (refused when the inputs they were made with changed since: a resume never mixes inputs), an unfinished
one resumes from its shards, the rest run. `--overwrite` re-runs every seed and replaces what OUT held before (a
single run, or earlier replicates) once the first seed has passed its checks.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from benchmark.config import RunConfig
from benchmark.config.seeds import for_seed
from benchmark.errors import ConfigError
from benchmark.execution import distributed, lock
from benchmark.execution.inputs_digest import inputs_fingerprint
from benchmark.execution.run_dir import FINGERPRINT, FINISHED_MARKER, check_out_folder, check_run_dir, \
    fingerprint_changes
from benchmark.report.metrics_file import read_metrics
from benchmark.report.seeds_document import POOLED_FILES, REPLICATES, seed_folder, write_pooled
from benchmark.runner.run import run_benchmark

#: fingerprint entries that may differ between seeds (the posterior fit draws with the run's seed)
PER_SEED_INPUTS = ("posterior_sha256",)


def run_replicates(config: RunConfig, out: Path, *, overwrite: bool = False, progress: bool = True) -> Path | None:
    """Run every seed of `config.seeds` into OUT/seed_<s>/, then write the pooled results; returns seeds.md (None
    on ranks other than 0 of a torchrun launch). Bad input is refused (exit 2) before anything is written."""
    out = Path(out)
    replacing = check_replicates_dir(out, config, overwrite=overwrite)
    todo = [s for s in config.seeds if overwrite or not finished_seed(out, config, s)]
    for seed in config.seeds:  # read-only, before any work: every seed folder can hold its run
        if seed in todo:
            check_run_dir(seed_folder(out, seed), for_seed(config, seed), overwrite=overwrite)
        else:
            check_kept_inputs(out, config, seed)
    with distributed.keep_group():  # torchrun: one process group for every seed's run
        for index, seed in enumerate(todo):
            run_benchmark(for_seed(config, seed), seed_folder(out, seed), overwrite=overwrite, progress=progress)
            if index == 0 and replacing and _rank() == 0:
                remove_stale(out, config)
    if _rank() != 0:
        return None
    check_same_inputs(out, config)
    frames = {s: read_metrics(seed_folder(out, s), "--out") for s in config.seeds}
    return write_pooled(out, config, frames)


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def _is_ours(out: Path, name: str) -> bool:
    return name in (REPLICATES, *POOLED_FILES) or name.startswith("seed_") and (out / name).is_dir()


def check_replicates_dir(out: Path, config: RunConfig, *, overwrite: bool) -> bool:
    """Whether `out` can hold these replicates (read-only); True when `overwrite` will replace what it holds.
    Refused: a file, a foreign folder, finished replicates or a single run (those two unless `overwrite`)."""
    check_out_folder(out)
    entries = [p.name for p in out.iterdir() if not p.name.startswith(".")] if out.is_dir() else []
    if not entries:
        return False
    if (out / "config.json").is_file():  # a single run's folder
        lock.check_unlocked(out)
        if not overwrite:
            raise ConfigError("--out", str(out), "a new folder or replicates of this config: it holds a single run",
                              "pass --overwrite to replace it, or choose another --out")
        return True
    foreign = [name for name in entries if not _is_ours(out, name)]
    if foreign:
        raise ConfigError("--out", str(out), f"an empty folder or one that `run --seeds` wrote, but it holds "
                          f"{foreign[0]!r}", "choose a new --out folder")
    if (out / REPLICATES).is_file() and not overwrite:
        raise ConfigError("--out", str(out), "a new folder: it holds finished replicates",
                          "pass --overwrite to replace them, or choose another --out")
    return overwrite


def finished_seed(out: Path, config: RunConfig, seed: int) -> bool:
    """The seed's folder holds a finished run of this config's replicate for `seed` (kept on a resume)."""
    folder = seed_folder(out, seed)
    try:
        saved = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return (folder / FINISHED_MARKER).is_file() and saved == for_seed(config, seed).to_dict()


def check_kept_inputs(out: Path, config: RunConfig, seed: int) -> None:
    """A finished seed folder kept on a resume must have read the plug-ins, data and suite source of now."""
    changes = fingerprint_changes(_fingerprint(seed_folder(out, seed)), inputs_fingerprint(for_seed(config, seed)))
    if changes:
        raise ConfigError("--out", str(seed_folder(out, seed)), f"a finished seed made with today's inputs, but "
                          f"{'; '.join(changes[:3])} changed since", "pass --overwrite to re-run every seed (or "
                          "restore the old inputs to resume)")


def check_same_inputs(out: Path, config: RunConfig) -> None:
    """Every seed's fingerprint (model weights, plug-ins, data, suite source) equals the first seed's."""
    first = config.seeds[0]
    reference = {k: v for k, v in _fingerprint(seed_folder(out, first)).items() if k not in PER_SEED_INPUTS}
    for seed in config.seeds[1:]:
        current = {k: v for k, v in _fingerprint(seed_folder(out, seed)).items() if k not in PER_SEED_INPUTS}
        changes = fingerprint_changes(reference, current)
        if changes:
            raise ConfigError("--out", str(out), f"seeds run on the same inputs, but seed {seed} differs from seed "
                              f"{first} in {'; '.join(changes[:3])}", "pass --overwrite to re-run every seed")


def _fingerprint(folder: Path) -> dict:
    try:
        return json.loads((folder / FINGERPRINT).read_text())
    except (OSError, ValueError):
        return {}


def remove_stale(out: Path, config: RunConfig) -> None:
    """What OUT held before an `--overwrite` (a single run's files, earlier pooled files, other seeds' folders)."""
    keep = {seed_folder(out, s).name for s in config.seeds}
    for path in out.iterdir():
        if path.name in keep or path.name.startswith("."):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
