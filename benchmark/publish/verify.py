"""`python -m benchmark verify BUNDLE [--recompute K]`: is a submission bundle intact, and are its scores what the
named model and estimators give?

1. Integrity: bundle.json names a known format; every file it lists has its recorded sha256; the run's manifest
   records the same sha256 for metrics.csv and config.json as the copies have; every per-sample score hash and
   every estimator digest is recomputed from the scores.
2. Version: the bundle's suite version is this suite's, and its protocol versions are this suite's (a bundle of
   another version is verified by that version).
3. Recompute (K > 0): K sample indices drawn at random (`pick_seed` fixes the draw); for each, the initial noise
   from (seed, index) must hash to the bundle's `noise_sha256`, the model must have the weights of the model card,
   and every per-sample estimator's score, re-computed from the seed with the named model and estimator, must match
   the bundle's within the tolerance of its kind (`SCORE_TOLERANCE`). A failure names the differing samples.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark.errors import ConfigError
from benchmark.execution.checksums import file_sha256
from benchmark.publish.bundle import (BUNDLE_JSON, FORMAT, FORMAT_VERSION, SAMPLES, SCORES, estimator_digest,
                                      noise_hash, score_hash)

#: (abs, rel) tolerance of a re-computed score by estimator kind. Scores are seeded per (seed, index), so a re-run
#: differs only by float rounding: another batch composition or CPU kernel changes float32 sums in the 6th-7th digit
#: (measured on the toy run: max relative difference below 1e-5 when one sample is recomputed alone); Monte-Carlo
#: estimators sum many such terms, hence 1e-3 relative. An oracle is exact arithmetic on the analytic model.
SCORE_TOLERANCE: dict[str, tuple[float, float]] = {
    "aleatoric": (1e-6, 1e-3), "epistemic": (1e-6, 1e-3), "heuristic": (1e-6, 1e-3), "oracle": (1e-6, 1e-4)}
DEFAULT_TOLERANCE = (1e-6, 1e-3)


@dataclass
class Verification:
    """The verdict on one bundle: `problems` one line each (empty: verified), what was re-computed."""

    bundle: Path
    problems: list[str] = field(default_factory=list)
    record: dict[str, Any] | None = None
    recomputed: list[int] = field(default_factory=list)  # the sample indices re-computed

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def status(self) -> str:
        """What a leaderboard shows: 'verified (K samples re-computed)', 'intact (not re-computed)' or 'failed'."""
        if not self.ok:
            return "failed"
        return f"verified ({len(self.recomputed)} samples re-computed)" if self.recomputed else "intact (not re-computed)"

    def describe(self) -> str:
        if self.ok:
            return f"{self.bundle}: {self.status}; suite {self.record['suite']['version']}"
        return "\n".join(f"{self.bundle}: {p}" for p in self.problems)


def read_bundle(bundle: Path) -> dict[str, Any]:
    """bundle.json of a bundle folder (ConfigError, exit 2, when it is not one)."""
    bundle = Path(bundle)
    fix = "give a folder written by `python -m benchmark submit RUN --out BUNDLE`"
    path = bundle / BUNDLE_JSON
    if not path.is_file():
        raise ConfigError("BUNDLE", str(bundle), f"a bundle folder with {BUNDLE_JSON}", fix)
    try:
        record = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise ConfigError("BUNDLE", str(bundle), f"a readable {BUNDLE_JSON} ({err})", fix) from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ConfigError("BUNDLE", str(bundle), f"{BUNDLE_JSON} of format {FORMAT!r}", fix)
    if record.get("format_version") != FORMAT_VERSION:
        raise ConfigError("BUNDLE", str(bundle), f"bundle format version {FORMAT_VERSION}, but it is "
                          f"{record.get('format_version')!r}", "verify it with the suite version that wrote it")
    return record


def check_integrity(bundle: Path, record: dict[str, Any]) -> list[str]:
    """Problems of the files: recorded sha256, the run manifest's own checksums, the per-sample hashes."""
    problems = []
    for name, digest in record.get("files", {}).items():
        path = bundle / name
        if not path.is_file():
            problems.append(f"{name} is missing (bundle.json lists it)")
        elif file_sha256(path) != digest:
            problems.append(f"{name} was changed after submission: its sha256 differs from bundle.json's")
    manifest_path = bundle / "run" / "manifest.json"
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        for name in ("metrics.csv", "config.json"):
            copy = bundle / "run" / name
            if copy.is_file() and manifest.get("sha256", {}).get(name) != file_sha256(copy):
                problems.append(f"run/{name} differs from what the run's manifest records")
    if (bundle / SCORES).is_file():
        problems += _check_score_hashes(pd.read_csv(bundle / SCORES), record)
    return problems


def _check_score_hashes(scores: pd.DataFrame, record: dict[str, Any]) -> list[str]:
    problems = []
    for name, part in scores.groupby("estimator", sort=False):
        values = [float.fromhex(h) for h in part.score_hex]
        hashes = [score_hash(i, v) for i, v in zip(part["index"], values)]
        wrong = [int(i) for i, h, kept in zip(part["index"], hashes, part.score_sha256) if h != kept]
        if wrong:
            problems.append(f"scores.csv: {name}'s score hashes do not match its scores at samples {_few(wrong)}")
        if record.get("scores_sha256", {}).get(name) != estimator_digest(list(part.score_sha256)):
            problems.append(f"scores.csv: {name}'s per-sample hashes do not give the digest bundle.json records")
    return problems


def check_versions(record: dict[str, Any]) -> list[str]:
    """The bundle's suite and protocol versions against this suite's."""
    from benchmark.protocols.catalog import PROTOCOL_MODULES
    from benchmark.report.manifest import suite_version

    problems = []
    mine = suite_version()
    if record["suite"]["version"] != mine:
        problems.append(f"made by suite {record['suite']['version']}, this is suite {mine}: verify it with "
                        f"diffusion-uq-bench=={record['suite']['version']}")
    for protocol, version in record.get("protocol_versions", {}).items():
        module = PROTOCOL_MODULES.get(protocol)
        have = getattr(module, "VERSION", 1) if module is not None else None
        if have != version:
            problems.append(f"protocol {protocol} version {version} in the bundle, {have} in this suite")
    return problems


def recompute(bundle: Path, record: dict[str, Any], k: int, pick_seed: int | None = None) -> tuple[list[int], list[str]]:
    """(re-computed indices, problems) of K random samples: noise hashes, model weights, scores within tolerance."""
    import torch

    from benchmark.publish.bundle import load_model
    from benchmark.publish.validity import saved_config
    from benchmark.report.manifest import model_sha256
    from benchmark.runner.resources import estimator_factory
    from benchmark.sampling import condition_labels, initial_noise, sample

    manifest = json.loads((bundle / "run" / "manifest.json").read_text())
    config, problem = saved_config(manifest)
    if problem:
        return [], [problem]
    samples = pd.read_csv(bundle / SAMPLES)
    scores = pd.read_csv(bundle / SCORES)
    chosen = sorted(np.random.default_rng(pick_seed).choice(samples["index"].to_numpy(), size=min(k, len(samples)),
                                                            replace=False).tolist())
    model, preset = load_model(config)
    digest = model_sha256(model)
    if digest != record["model_card"]["weights_sha256"]:
        return chosen, [f"the model {record['model_card']['source']!r} loads with weights sha256 {str(digest)[:12]}…, "
                        f"the model card records {str(record['model_card']['weights_sha256'])[:12]}…"]
    idx = torch.tensor(chosen, dtype=torch.long)
    x_T = initial_noise(config.seed, idx, model.sample_shape)
    kept = samples.set_index("index").noise_sha256
    problems = [f"the initial noise of samples {_few(bad)} does not hash to samples.csv's noise_sha256"
                for bad in [[i for i, x in zip(chosen, x_T) if noise_hash(x) != kept[i]]] if bad]
    y = condition_labels(model, config.seed, idx)
    names = list(dict.fromkeys(scores.estimator))
    with torch.no_grad():
        made = [e for e in estimator_factory(config, model, preset, progress=False)() if e.name in names]
        result = sample(model, x_T, sampler=config.sampler, steps=config.steps, estimators=made, y=y,
                        seed=config.seed, indices=idx)
    table = scores.set_index(["estimator", "index"])
    for name in names:
        kind = record["estimator_cards"].get(name, {}).get("kind")
        atol, rtol = SCORE_TOLERANCE.get(kind, DEFAULT_TOLERANCE)
        fresh = result.uncertainty[name].score.detach().cpu().float().tolist()
        differ = []
        for i, value in zip(chosen, fresh):
            kept_value = float.fromhex(table.loc[(name, i), "score_hex"])
            if not math.isclose(value, kept_value, rel_tol=rtol, abs_tol=atol):
                differ.append(f"{i} ({value:.6g} vs {kept_value:.6g})")
        if differ:
            problems.append(f"{name} ({kind}) re-computed scores differ beyond the {kind} tolerance (abs {atol:g}, rel "
                            f"{rtol:g}) at samples {', '.join(differ[:5])}{' …' if len(differ) > 5 else ''}")
    return chosen, problems


def verify_bundle(bundle: Path, *, recompute_k: int = 0, pick_seed: int | None = None) -> Verification:
    """The module's three checks; recomputation only of an intact bundle of this suite's version."""
    bundle = Path(bundle)
    record = read_bundle(bundle)
    result = Verification(bundle, record=record)
    result.problems += check_integrity(bundle, record)
    result.problems += check_versions(record)
    if recompute_k > 0 and result.ok:
        result.recomputed, problems = recompute(bundle, record, recompute_k, pick_seed)
        result.problems += problems
    return result


def _few(indices: list[int], most: int = 10) -> str:
    shown = ", ".join(str(i) for i in indices[:most])
    return shown + (f" and {len(indices) - most} more" if len(indices) > most else "")
