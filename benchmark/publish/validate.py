"""`python -m benchmark validate RUN_DIR`: is a run folder complete and untouched since the run wrote it?

The rule lives in `benchmark.publish.validity.check_run`, which `leaderboard` applies too: a run is valid for one
exactly when it is valid for the other. The manifest (written last by the run) records the sha256 of every result
file, a checksum of the model weights, and the suite and protocol versions. A run is valid when the manifest is
there and complete, every recorded file exists with its recorded checksum, config.json equals the manifest's
config and reads back as a run config, metrics.csv is a complete tidy table of only the recorded protocols, the
input files the run read are unchanged and (unless `--skip-weights`) the weights the config names still hash to
the recorded value. Every problem is reported in one line naming the file. Exit code 0 when valid, 2 otherwise.
"""
from __future__ import annotations

from pathlib import Path

from benchmark.publish.replicates_validity import ReplicatesValidity, check_replicates, is_replicates_folder
from benchmark.publish.validity import (REQUIRED_FILES, REQUIRED_KEYS, RunValidationError,  # noqa: F401 (re-exported)
                                        RunValidity, check_run, saved_config)

#: the verdict on one run folder (the name this module has always given it)
Validation = RunValidity


def validate_run(run_dir: Path, *, check_weights: bool = True) -> RunValidity | ReplicatesValidity:
    """`check_run` of the folder: its problems, one line each (empty when valid); a replicate folder (`run
    --seeds`): `check_replicates`, every seed folder by the same rule."""
    if is_replicates_folder(Path(run_dir)):
        return check_replicates(Path(run_dir), check_weights=check_weights)
    return check_run(Path(run_dir), check_weights=check_weights)
