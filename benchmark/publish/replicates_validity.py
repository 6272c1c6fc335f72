"""What makes a replicate folder (`run --seeds`) valid: `validate OUT` of a folder with seed_<s>/ folders.

It is valid when
- replicates.json (written last) is there, readable, complete and says the replicates finished;
- every seed it lists has its folder, and that folder is a valid run (benchmark.publish.validity.check_run, the
  rule of a single run) of the replicates' config with run.seed = that seed;
- the pooled files (seeds.csv, pooled_verdicts.csv, seeds.md) and each seed folder's manifest still have the
  sha256 replicates.json records (the pooled results are those of these seed runs).
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.execution.checksums import file_sha256
from benchmark.publish.validity import RunValidationError, RunValidity, check_run
from benchmark.report.manifest import MANIFEST
from benchmark.report.seeds_document import REPLICATES

REQUIRED_KEYS = ("status", "config", "seeds", "folders", "sha256")


@dataclass
class ReplicatesValidity:
    """The verdict on a replicate folder: its own problems and each seed folder's verdict."""

    run_dir: Path
    problems: list[str] = field(default_factory=list)
    seeds: dict[int, RunValidity] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems and all(v.ok for v in self.seeds.values())

    def all_problems(self) -> list[str]:
        return [*self.problems, *(f"{v.run_dir.name}: {p}" for v in self.seeds.values() for p in v.problems)]

    def describe(self) -> str:
        if self.ok:
            return (f"{self.run_dir}: valid replicates (seeds {', '.join(map(str, self.seeds))}: every seed folder "
                    "valid, the pooled files match their checksums)")
        return "\n".join(f"{self.run_dir}: {p}" for p in self.all_problems())

    def raise_if_invalid(self, purpose: str = "used") -> None:
        problems = self.all_problems()
        if problems:
            raise RunValidationError(f"{self.run_dir} cannot be {purpose}: {problems[0]}"
                                     + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))


def is_replicates_folder(run_dir: Path) -> bool:
    """A folder `run --seeds` wrote (finished or not), rather than a single run's."""
    run_dir = Path(run_dir)
    return (run_dir / REPLICATES).is_file() or (
        not (run_dir / "config.json").is_file() and any(p.is_dir() for p in run_dir.glob("seed_*")))


def check_replicates(run_dir: Path, *, check_weights: bool = True) -> ReplicatesValidity:
    """The rule of the module docstring; the model is reloaded once for all seeds (`check_weights`)."""
    run_dir = Path(run_dir)
    result = ReplicatesValidity(run_dir)
    record = _read_record(run_dir, result.problems)
    if record is None:
        return result
    cache: dict[str, Any] = {}
    for seed in record["seeds"]:
        folder = run_dir / str(record["folders"].get(str(seed), f"seed_{seed}"))
        verdict = check_run(folder, check_weights=check_weights, weights_cache=cache)
        result.seeds[int(seed)] = verdict
        if verdict.manifest is not None and verdict.manifest.get("config") != seed_config(record["config"], seed):
            result.problems.append(f"{folder.name} holds a run of another config than the replicates' (with "
                                   f"run.seed = {seed})")
    for name, digest in record["sha256"].items():
        path = run_dir / name
        if not path.is_file():
            result.problems.append(f"{name} is missing ({REPLICATES} records it)")
        elif file_sha256(path) != digest:
            result.problems.append(f"{name} was changed after the replicates ran: its sha256 differs from "
                                   f"{REPLICATES}'s")
    return result


def seed_config(config: dict[str, Any], seed: int) -> dict[str, Any]:
    """The config dict of one replicate's run: run.seed = `seed`, no run.seeds (benchmark.config.seeds.for_seed)."""
    single = copy.deepcopy(config)
    single["run"].pop("seeds", None)
    single["run"]["seed"] = seed
    return single


def _read_record(run_dir: Path, problems: list[str]) -> dict[str, Any] | None:
    path = run_dir / REPLICATES
    if not path.is_file():
        problems.append(f"unfinished replicates: no {REPLICATES} (written last; resume with the same `run --seeds` "
                        "command)")
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError) as err:
        problems.append(f"{REPLICATES} is not valid JSON ({err})")
        return None
    missing = [k for k in REQUIRED_KEYS if k not in record] if isinstance(record, dict) else list(REQUIRED_KEYS)
    if missing or not isinstance(record.get("config", {}).get("run"), dict):
        problems.append(f"{REPLICATES} lacks {', '.join(missing) or 'config.run'} (edited or truncated: re-run)")
        return None
    if record["status"] != "finished":
        problems.append(f"{REPLICATES} status is {record['status']!r}, not 'finished'")
    return record
