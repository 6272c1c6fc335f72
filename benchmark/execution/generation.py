"""The shared generation pass, sharded by sample index, resumable, and merged in index order.

Every shard is one batch of consecutive sample indices; x_T, labels and every estimator draw derive from
(seed, index), so shards can run in any order, on any rank, and be re-run after an interruption. Each shard
carries a checksum (benchmark.execution.checksums): a corrupt or truncated shard is named, discarded and
regenerated when the run resumes.

The shards that hold the first PER_STEP_SAMPLES sample indices also keep those samples' per-step maps
{timestep: map} of every estimator that can keep them (`keep_steps`): the report's step-wise figure is drawn
from them, so no second sampling pass is needed, and a resumed run still has them.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import torch
from tqdm.auto import tqdm

from benchmark.execution import checksums
from benchmark.execution.io import save_torch
from benchmark.models.pixel_maps import pixel_space_record
from benchmark.sampling import condition_labels, initial_noise, sample

SHARD_DIR = "shards"
PER_STEP_SAMPLES = 2  # leading sample indices whose per-step maps are kept (the report's step-wise figure)


@dataclass
class Generation:
    """Merged output of the generation pass: N samples in index order."""

    indices: torch.Tensor  # [N]
    x0: torch.Tensor  # [N,C,H,W]
    y: torch.Tensor | None  # [N]
    scores: dict[str, torch.Tensor]  # name -> [N]
    pixels: dict[str, torch.Tensor]  # name -> [N,C,H,W]
    nfe: dict[str, float]  # name -> extra NFEs per sample (sampler under "sampler")
    seconds: dict[str, float]  # name -> wall-clock seconds in total (sampler under "sampler")
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    #: name -> {diffusion timestep t: map [n,C,H,W]} of the first n = PER_STEP_SAMPLES samples (the steps each
    #: estimator computes, e.g. its window); only estimators that can keep per-step maps
    per_step: dict[str, dict[int, torch.Tensor]] = field(default_factory=dict)
    #: name -> wall-clock seconds of each shard, in index order (what the cost protocol's intervals are over)
    shard_seconds: dict[str, list[float]] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return int(self.indices.numel())


def shard_ranges(num_samples: int, batch_size: int) -> list[tuple[int, int]]:
    return [(start, min(start + batch_size, num_samples)) for start in range(0, num_samples, batch_size)]


def shard_path(run_dir: Path, start: int, stop: int, tag: str = "gen") -> Path:
    return run_dir / SHARD_DIR / f"{tag}_{start:07d}_{stop:07d}.pt"


def generate(
    model,
    *,
    run_dir: Path,
    num_samples: int,
    batch_size: int,
    seed: int,
    sampler: str,
    steps: int,
    make_estimators: Callable[[], Sequence],
    rank: int = 0,
    world_size: int = 1,
    tag: str = "gen",
    progress: bool = True,
    after_batch: Callable[[torch.Tensor, dict], None] | None = None,
    guidance: object | None = None,
    keep_state_at: int | None = None,
    start_from: Callable[[int, int], tuple[int, torch.Tensor, float] | None] | None = None,
) -> None:
    """Generate the shards of this rank that are not on disk yet (shard i goes to rank i % world_size).

    `keep_state_at`: a grid step index whose state x_t each shard keeps in its extras (`state_key`).
    `start_from(start, stop)`: (grid step index, x_t there, the plain pass's sampler NFEs per sample) to continue
    the shard's samples from, or None to sample from x_T; the shard then counts those NFEs as its sampler's (the
    steps before were computed once, by the pass that kept the state).
    """
    ranges = [r for i, r in enumerate(shard_ranges(num_samples, batch_size)) if i % world_size == rank]
    todo = [r for r in ranges if not usable(shard_path(run_dir, *r, tag=tag))]
    bar = tqdm(todo, desc=f"generate ({tag}) rank {rank}", disable=not progress, unit="shard")
    for start, stop in bar:
        idx = torch.arange(start, stop, device="cpu")  # CPU: seeds derive from the indices
        x_T = initial_noise(seed, idx, model.sample_shape).to(model.device)
        y = condition_labels(model, seed, idx)
        y = None if y is None else y.to(model.device)
        made = list(make_estimators())
        leading = idx < PER_STEP_SAMPLES  # [B] rows whose per-step maps are kept
        if leading.any():
            keep_per_step_maps(made)
        resumed = start_from(start, stop) if start_from is not None else None
        if resumed is not None:
            x_T = resumed[1].to(model.device)
        result = sample(model, x_T, sampler=sampler, steps=steps, estimators=made, y=y, seed=seed, indices=idx,
                        guidance=guidance, start_index=0 if resumed is None else resumed[0],
                        keep_states=() if keep_state_at is None else (keep_state_at,))
        record = {
            "indices": idx, "x0": result.x0.detach().cpu(), "y": None if y is None else y.cpu(),
            "scores": {k: v.score.detach().cpu() for k, v in result.uncertainty.items()},
            "pixels": {k: v.pixel.detach().cpu() for k, v in result.uncertainty.items()},
            "nfe": {"sampler": result.nfe if resumed is None else resumed[2], "guidance": result.guidance_nfe,
                    **{k: v.nfe for k, v in result.uncertainty.items()}},
            "seconds": {"sampler": result.seconds, "guidance": result.guidance_seconds,
                        **{k: v.seconds for k, v in result.uncertainty.items()}},
            "extras": {state_key(i): x.detach().cpu() for i, x in result.states.items()},
            "per_step": {k: {int(t): m[leading.to(m.device)].detach().cpu() for t, m in v.per_step.items()}
                         for k, v in result.uncertainty.items() if v.per_step and leading.any()},
        }
        if after_batch is not None:
            after_batch(result.x0, record)
        pixel_space_record(model, record, seed=seed)  # a latent model: decoded x0 and pixel-space maps
        path = shard_path(run_dir, start, stop, tag=tag)
        save_torch(record, path)
        checksums.record_checksum(path)


def state_key(index: int) -> str:
    """The extras key of the state x_t kept before grid step `index` (generate's `keep_state_at`)."""
    return f"x_before_step_{index}"


def kept_state(run_dir: Path, num_samples: int, batch_size: int, index: int):
    """A `start_from` for `generate`: the generation pass's kept state before step `index` for a shard that is
    one of its shards (the same samples in the same batch, so continuing from it gives the same bits as
    sampling from x_T), when that shard is on disk with the state; None otherwise."""
    shards = set(shard_ranges(num_samples, batch_size))

    def start_from(start: int, stop: int) -> tuple[int, torch.Tensor, float] | None:
        path = shard_path(run_dir, start, stop)
        if (start, stop) not in shards or checksums.problem(path) is not None:
            return None
        record = checksums.load_checked(path)
        state = record["extras"].get(state_key(index))
        return None if state is None else (index, state, float(record["nfe"]["sampler"]))

    return start_from


def keep_per_step_maps(estimators: Sequence) -> None:
    """Switch on `keep_steps` in every estimator that has the option (it only keeps the maps it computes:
    results, draws and NFEs are unchanged)."""
    for estimator in estimators:
        if hasattr(estimator, "keep_steps"):
            estimator.keep_steps = True


def usable(path: Path) -> bool:
    """Whether a shard on disk matches its checksum; a damaged one is named on stderr and discarded."""
    issue = checksums.problem(path)
    if issue is not None and path.is_file():
        print(f"warning: discarding shard {path}: {issue}; it is regenerated", file=sys.stderr)
        checksums.discard(path)
    return issue is None


def load_generation(run_dir: Path, num_samples: int, batch_size: int, tag: str = "gen") -> Generation:
    """Merge all shards (which must all exist) in index order."""
    records = [checksums.load_checked(shard_path(run_dir, *r, tag=tag)) for r in shard_ranges(num_samples, batch_size)]
    names = list(records[0]["scores"])
    weights = [len(r["indices"]) for r in records]
    total = sum(weights)
    return Generation(
        indices=torch.cat([r["indices"] for r in records]),
        x0=torch.cat([r["x0"] for r in records]),
        y=None if records[0]["y"] is None else torch.cat([r["y"] for r in records]),
        scores={n: torch.cat([r["scores"][n] for r in records]) for n in names},
        pixels={n: torch.cat([r["pixels"][n] for r in records]) for n in names},
        nfe={k: sum(r["nfe"][k] * w for r, w in zip(records, weights)) / total for k in records[0]["nfe"]},
        seconds={k: sum(r["seconds"][k] for r in records) for k in records[0]["seconds"]},
        extras={k: torch.cat([r["extras"][k] for r in records]) for k in records[0]["extras"]},
        per_step=_merge_per_step([r.get("per_step", {}) for r in records]),  # (absent in older shards)
        shard_seconds={k: [float(r["seconds"][k]) for r in records] for k in records[0]["seconds"]},
    )


def _merge_per_step(parts: list[dict]) -> dict[str, dict[int, torch.Tensor]]:
    """Per-step maps of the shards that have them, in index order (timesteps every such shard has)."""
    parts = [p for p in parts if p]
    names = [n for n in (parts[0] if parts else {}) if all(n in p for p in parts)]
    merged = {}
    for name in names:
        steps = [t for t in parts[0][name] if all(t in p[name] for p in parts)]
        merged[name] = {t: torch.cat([p[name][t] for p in parts]) for t in steps}
    return merged
