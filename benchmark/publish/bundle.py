"""`python -m benchmark submit RUN --out BUNDLE`: a finished, valid run as a submission bundle anyone can verify.

A bundle is a folder:
- `run/`: the run's config.json, metrics.csv, manifest.json and fingerprint.json, byte for byte;
- `samples.csv`: per sample index its seed, the sha256 of its initial noise x_T (derived from (seed, index)) and its
  condition: two bundles with equal hashes were computed on the same items;
- `scores.csv`: per (sample, estimator) the score, exactly (float32 hex and decimal), and its sha256 — the per-sample
  hashes of every estimator's scores (estimators that score from the whole set's features, e.g. realism_oracle,
  have no per-sample score: `bundle.json` lists them under `set_level_estimators`);
- `bundle.json`: the format version, the date, suite version and commit, the machine, protocol versions and track,
  the model card (weights sha256, source, license, parameter count, prediction type), one estimator card per
  configured instance (type, kind, parameters, its plug-in source file's sha256), the sha256 of every other file of
  the bundle, and per estimator one digest over its per-sample hashes.
`python -m benchmark verify BUNDLE` checks it (benchmark.publish.verify).
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import inspect
import platform
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.errors import ConfigError
from benchmark.execution.checksums import file_sha256

FORMAT = "uqbench-bundle"
FORMAT_VERSION = 1
BUNDLE_JSON = "bundle.json"
RUN_FILES = ("config.json", "metrics.csv", "manifest.json", "fingerprint.json")
SAMPLES, SCORES = "samples.csv", "scores.csv"


@dataclass(frozen=True)
class Submitted:
    bundle: Path
    samples: int
    estimators: list[str]


def score_hash(index: int, score: float) -> str:
    """The per-sample hash of one score: sha256 of (index, float32 bytes), 16 hex digits."""
    return hashlib.sha256(struct.pack("<qf", int(index), float(score))).hexdigest()[:16]


def noise_hash(x_T) -> str:
    """sha256 of one sample's initial noise (float32 bytes, C-contiguous), 16 hex digits."""
    return hashlib.sha256(x_T.detach().cpu().float().contiguous().numpy().tobytes()).hexdigest()[:16]


def estimator_digest(hashes: list[str]) -> str:
    """One digest over an estimator's per-sample hashes in index order (equal digests: equal scores, same items)."""
    return hashlib.sha256("\n".join(hashes).encode()).hexdigest()


def submit(run_dir: Path, out: Path) -> Submitted:
    """Write the bundle of a valid run folder (refused with the reason `validate` gives, before anything is
    written); `out` must not exist yet (a bundle is never overwritten)."""
    from benchmark.execution.generation import load_generation
    from benchmark.execution.io import save_json, save_text
    from benchmark.publish.replicates_validity import is_replicates_folder
    from benchmark.publish.validity import check_run, saved_config

    run_dir, out = Path(run_dir), Path(out)
    if is_replicates_folder(run_dir):
        raise ConfigError("RUN", str(run_dir), "one run folder, but it holds replicates (run --seeds)",
                          f"submit one seed's folder, e.g. {run_dir / 'seed_0'}")
    if out.exists():
        raise ConfigError("--out", str(out), "a new bundle folder, but it exists", "give a new path or remove it")
    check = check_run(run_dir)
    check.raise_if_invalid("submitted")
    manifest = check.manifest
    config, problem = saved_config(manifest)
    if problem:
        raise ConfigError("RUN", str(run_dir), problem, "re-run the config")
    gen = load_generation(run_dir, config.num_samples, config.batch_size)
    model, preset = load_model(config)
    set_level = set_level_estimators(config)
    names = [n for n in manifest["estimators"] if n in gen.scores and n not in set_level]
    samples, scores, digests = _tables(config, model, gen, names)
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "run").mkdir(parents=True)
    for name in RUN_FILES:
        if (run_dir / name).is_file():
            shutil.copy2(run_dir / name, staging / "run" / name)
    save_text(samples.to_csv(index=False), staging / SAMPLES)
    save_text(scores.to_csv(index=False), staging / SCORES)
    files = {p.relative_to(staging).as_posix(): file_sha256(p) for p in sorted(staging.rglob("*")) if p.is_file()}
    record = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "suite": {"version": manifest["suite_version"], "commit": manifest.get("git_revision")},
        "machine": {"platform": manifest.get("platform") or platform.platform(), "python": manifest.get("python"),
                    "processor": platform.processor() or platform.machine(), "versions": manifest.get("versions", {})},
        "run": {"name": config.name, "seed": config.seed, "num_samples": config.num_samples},
        "protocol_versions": manifest["protocol_versions"], "track": manifest["track"],
        "model_card": model_card(config, model, preset, manifest),
        "estimator_cards": {n: estimator_card(n, rec) for n, rec in manifest["estimators"].items()},
        "set_level_estimators": sorted(set_level & set(manifest["estimators"])),
        "scores_sha256": digests, "files": files,
    }
    save_json(record, staging / BUNDLE_JSON)
    staging.rename(out)
    return Submitted(out, int(gen.size), names)


def load_model(config):
    """The run's model (its preset or [model]) on the CPU with the run's settings, and its preset."""
    from benchmark import presets
    from benchmark.models.run_settings import apply_run_settings
    from benchmark.presets.loading import load_preset

    preset = presets.for_run(load_preset(config.preset) if config.preset else None, config.model, config.data)
    model = preset.load_model().to("cpu")
    apply_run_settings(model, guidance_scale=config.guidance_scale, prompts=config.prompts,
                       pixel_maps=config.pixel_maps, decoder_mc_samples=config.decoder_mc_samples,
                       autocast=config.autocast)
    return model, preset


def set_level_estimators(config) -> set[str]:
    """Instances that score from the whole set's features after generation (no per-sample recomputation)."""
    from benchmark.execution.feature_scores import scorer_reads

    return set(scorer_reads(config))


def _tables(config, model, gen, names: list[str]) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    from benchmark.sampling import initial_noise

    idx = gen.indices
    noise = initial_noise(config.seed, idx, model.sample_shape)
    samples = pd.DataFrame({"index": idx.tolist(), "seed": config.seed,
                            "noise_sha256": [noise_hash(x) for x in noise],
                            "condition": [""] * len(idx) if gen.y is None else gen.y.tolist()})
    rows, digests = [], {}
    for name in names:
        values = gen.scores[name].float().tolist()
        hashes = [score_hash(i, v) for i, v in zip(idx.tolist(), values)]
        digests[name] = estimator_digest(hashes)
        rows += [(i, name, float(v).hex(), repr(float(v)), h) for i, v, h in zip(idx.tolist(), values, hashes)]
    scores = pd.DataFrame(rows, columns=["index", "estimator", "score_hex", "score", "score_sha256"])
    return samples, scores, digests


def model_card(config, model, preset, manifest: dict[str, Any]) -> dict[str, Any]:
    """Weights sha256, source, license, parameter count and prediction type of the run's model."""
    spec = getattr(preset, "model", None)
    source = config.preset or (config.model.path if config.model is not None else None) or ""
    if config.model is not None and getattr(config.model, "factory", None):
        source = f"factory {config.model.factory}"
    network = getattr(model, "unet", None) or getattr(model, "net", None) or model
    count = sum(p.numel() for p in network.parameters()) if hasattr(network, "parameters") else None
    prediction = getattr(model, "prediction_type", None) or getattr(config.model, "prediction_type", None) or "epsilon"
    return {"weights_sha256": manifest.get("model_sha256"), "source": str(source),
            "path": str(getattr(spec, "path", "") or ""), "license": _license(spec), "parameters": count,
            "prediction_type": str(prediction)}


def _license(spec) -> str:
    """The `License:` line of the model folder's model_card.md or README.md, else the suite's for a model that
    ships inside the package, else "not stated"."""
    folder = Path(str(getattr(spec, "path", "") or ""))
    for name in ("model_card.md", "README.md", "LICENSE"):
        path = folder / name
        if folder.parts and path.is_file():
            for line in path.read_text(errors="replace").splitlines():
                if line.lower().lstrip("-* ").startswith("license"):
                    return line.split(":", 1)[-1].strip() or line.strip()
    package = Path(__file__).resolve().parents[1]
    if folder.parts and folder.resolve().is_relative_to(package):
        return "MIT (trained by and shipped with the suite)"
    return "not stated"


def estimator_card(name: str, record: dict[str, Any]) -> dict[str, Any]:
    """What an estimator instance is: its registered type, kind, parameters and its source file's sha256."""
    import estimators

    type_name = record.get("type") or name
    card = {"type": type_name, "kind": record.get("kind"), "reference_row": bool(record.get("reference_row")),
            "params": record.get("params", {}), "module": None, "source_sha256": None}
    try:
        cls = estimators.get_class(type_name)
        path = inspect.getsourcefile(cls)
        card.update(module=cls.__module__, source_sha256=file_sha256(Path(path)) if path else None)
    except Exception:  # an estimator no longer importable here: its card says so
        card["module"] = "(not importable on the submitting machine)"
    return card
