"""`python -m benchmark train --what ensemble --members K`: the members of a deep ensemble (Lakshminarayanan et al.
2017), the epistemic gold standard of the `ensemble` estimator (estimators/ensemble.py).

Each member is an independently initialised diffusers UNet2DModel trained with the diffusion objective of
`benchmark.training` (Ho et al. 2020, eq. 14) on the same data, member k with its own seed
derive_seed(seed, "ensemble-member", k): its own initialisation, batch order, timesteps and noise. Members are
saved as pipeline folders OUT/member_<k>/ (unet/, scheduler/, model_card.md, training_summary.json); the
`ensemble` estimator finds them there when OUT is <model folder>/ensemble (the shipped digits members live in
benchmark/presets/digits/ensemble/). OUT/ensemble.json lists the members and their training times.

Members are small (MEMBER_ARCHITECTURE, about a quarter of the preset UNet's parameters, no dropout) so that five
of them train in minutes on a CPU; a finished member (its training_summary.json exists) is not trained again, so
an interrupted command resumes member by member (a member that was cut short resumes from its checkpoint.pt).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from benchmark.errors import ConfigError
from benchmark.seeding import derive_seed
from benchmark.training import CHECKPOINT, TrainConfig, train_diffusion

DEFAULT_MEMBERS = 5
#: a member's UNet: the preset architecture at half the width (16x16 and 32x32 images alike)
MEMBER_ARCHITECTURE: dict = dict(block_out_channels=(8, 16, 32), layers_per_block=1, norm_num_groups=4,
                                 add_attention=False, down_block_types=("DownBlock2D",) * 3,
                                 up_block_types=("UpBlock2D",) * 3)
SUMMARY = "ensemble.json"


@dataclass
class EnsembleTrainConfig:
    """Settings of `train --what ensemble` (each member is a TrainConfig with these values and its own seed)."""

    dataset: str
    out: str
    members: int = DEFAULT_MEMBERS
    steps: int = 1500
    batch_size: int = 64
    lr: float = 2e-3
    seed: int = 0
    threads: int = 2
    max_minutes: float | None = None  # per member
    conditional: bool = True
    data_dir: str | None = None
    keep_checkpoints: bool = False  # a finished member's checkpoint.pt (optimiser state) is deleted by default

    def __post_init__(self) -> None:
        check_members(self.members)


def check_members(members: object) -> None:
    """--members: an integer >= 2 (full members and class-embedding heads alike)."""
    if not isinstance(members, int) or isinstance(members, bool) or members < 2:
        raise ConfigError("--members", members, "an integer >= 2 (a spread needs two members)", "pass --members 5")


def member_dir(out: str | Path, k: int) -> Path:
    """The folder of member k: OUT/member_<k>."""
    return Path(out) / f"member_{k}"


def member_seed(seed: int, k: int) -> int:
    """Member k's training seed (initialisation, batches, timesteps, noise)."""
    return derive_seed(int(seed), "ensemble-member", int(k))


def train_ensemble(cfg: EnsembleTrainConfig, progress: bool = True) -> dict:
    """Train (or finish) the cfg.members members in turn; returns and writes OUT/ensemble.json."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    summaries = []
    for k in range(cfg.members):
        folder = member_dir(out, k)
        done = folder / "training_summary.json"
        if done.is_file() and not (folder / CHECKPOINT).is_file():
            summaries.append(json.loads(done.read_text()))
            continue
        member = TrainConfig(dataset=cfg.dataset, out=str(folder), steps=cfg.steps, batch_size=cfg.batch_size,
                             lr=cfg.lr, dropout=0.0, conditional=cfg.conditional, max_minutes=cfg.max_minutes,
                             seed=member_seed(cfg.seed, k), threads=cfg.threads, data_dir=cfg.data_dir,
                             arch=dict(MEMBER_ARCHITECTURE))
        summary = train_diffusion(member, progress=progress)
        if not cfg.keep_checkpoints:
            (folder / CHECKPOINT).unlink(missing_ok=True)
        summaries.append(summary)
    record = {"dataset": cfg.dataset, "members": cfg.members, "architecture": _jsonable(MEMBER_ARCHITECTURE),
              "seed": cfg.seed, "threads": cfg.threads,
              "wall_clock_s": round(sum(float(s["wall_clock_s"]) for s in summaries), 1),
              "member_folders": [member_dir(".", k).as_posix() for k in range(cfg.members)],
              "per_member": [{"steps": s["steps"], "wall_clock_s": s["wall_clock_s"], "final_loss": s["final_loss"],
                              "stop_reason": s["stop_reason"], "parameters": s["parameters"]} for s in summaries]}
    (out / SUMMARY).write_text(json.dumps(record, indent=2) + "\n")
    return record


def _jsonable(arch: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in arch.items()}


__all__ = ["DEFAULT_MEMBERS", "EnsembleTrainConfig", "MEMBER_ARCHITECTURE", "check_members", "member_dir",
           "member_seed", "train_ensemble"]
