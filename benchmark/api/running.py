"""`benchmark.run(config, out)`: a run from Python through the path `python -m benchmark run` takes.

`execute` is that path, shared with the CLI (benchmark.cli `_run` calls it): the same config checks, run folder,
resume, lock and refusals. What the CLI turns into an exit code reaches the caller as the exception itself: bad
input as a `benchmark.errors.UQBenchError` (ConfigError, CapabilityError, ...: exit 2), a fault as `RunFault` (3),
Ctrl-C as `RunInterrupted` (130) saying whether the folder resumes.
"""
from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from benchmark.errors import ConfigError, RunInterrupted

if TYPE_CHECKING:
    from benchmark.config import RunConfig

#: a TOML path, a dict with the TOML's structure, or a parsed RunConfig
ConfigLike = Union[str, os.PathLike, Mapping[str, Any], "RunConfig"]


def as_config(config: ConfigLike, *, preset: str | None = None, seeds: Sequence[int] | None = None):
    """A checked `RunConfig` from a TOML path (as `run --config`), a dict with the TOML's structure (relative paths
    in it are taken from the current folder), or a RunConfig; `preset` and `seeds` as `run --preset` / `--seeds`."""
    from benchmark.config import RunConfig, load_config, parse_config
    from benchmark.config.seeds import check_seeds, with_seeds

    checked = check_seeds(list(seeds), "seeds") if seeds is not None else None  # before the config: no work yet
    if isinstance(config, RunConfig):
        if preset is not None:
            raise ConfigError("preset", preset, "only with a TOML path or a dict (a RunConfig is already parsed)",
                              "set run.preset in the config instead")
        parsed = config
    elif isinstance(config, Mapping):
        parsed = parse_config(copy.deepcopy(dict(config)), preset=preset)
    elif isinstance(config, (str, os.PathLike)):
        parsed = load_config(Path(config), preset=preset)
    else:
        raise ConfigError("config", type(config).__name__, "a path of a TOML file, a dict with its structure or a "
                          "benchmark.config.RunConfig", "e.g. benchmark.run('configs/smoke.toml')")
    return with_seeds(parsed, checked) if checked else parsed


def execute(config, out: str | os.PathLike | None = None, *, overwrite: bool = False, progress: bool = True
            ) -> tuple[Path, Path | None]:
    """Run a checked RunConfig into `out` (default results/runs/<run.name>, under $UQBENCH_RESULTS): a single run,
    or one per seed with run.seeds. Returns (the folder, its report: report.md, seeds.md for replicates, None on
    the ranks other than 0 of a torchrun launch)."""
    from benchmark.runner.replicates import run_replicates
    from benchmark.runner.run import default_out_dir, run_benchmark

    folder = Path(out) if out is not None else default_out_dir(config)
    runner = run_replicates if config.seeds else run_benchmark
    try:
        report = runner(config, folder, overwrite=overwrite, progress=progress)
    except KeyboardInterrupt:
        resumable = (folder / "config.json").is_file() or any(folder.glob("seed_*/config.json"))
        raise RunInterrupted(f"{folder} keeps its finished shards; run the same command to resume" if resumable
                             else f"nothing was written to {folder}") from None
    return folder, report


def run(config: ConfigLike, out: str | os.PathLike | None = None, *, overwrite: bool = False, progress: bool = True,
        preset: str | None = None, seeds: Sequence[int] | None = None):
    """Run `config` (a TOML path, a dict with the TOML's structure, or a RunConfig) into `out` as `python -m
    benchmark run --config FILE --out DIR` does, and return the finished run: a `benchmark.Run`, or a
    `benchmark.Replicates` for several seeds (None on torchrun ranks other than 0).

    A folder with finished shards resumes; a finished one is refused unless `overwrite`. Warnings of the code the
    run calls go to the folder's warnings.log, as on the command line (UQBENCH_DEBUG=1 shows them). The run just
    written is read back with its checksums checked (`load(..., check_weights=False)`: the run itself recorded
    the weights it loaded)."""
    from benchmark import warnings_log
    from benchmark.api.results import load

    checked = as_config(config, preset=preset, seeds=seeds)
    with warnings_log.collecting(os.environ.get("UQBENCH_DEBUG", "") not in ("", "0")):
        folder, report = execute(checked, out, overwrite=overwrite, progress=progress)
    return None if report is None else load(folder, check_weights=False)
