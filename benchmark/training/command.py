"""`python -m benchmark train`: the command line of the trainers (diffusion, latent, domain classifier)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmark.data.datasets import DATASETS
from benchmark.data.value_range import VALUE_RANGES
from benchmark.errors import ConfigError, MissingAssetError, OneLineParser
from benchmark.training import CHECKPOINT, TrainConfig, train_diffusion


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m benchmark train",
                                description="Train a diffusion UNet or a domain classifier on a built-in dataset, "
                                            "or a domain classifier on your own labelled images (--data).")
    p.add_argument("--what", choices=("diffusion", "classifier", "latent", "ensemble"), default="diffusion",
                   help="latent: AutoencoderKL + class-conditional DiT (benchmark/training/latent.py); ensemble: "
                        "--members independently seeded small UNets in OUT/member_<k> (benchmark/training/ensemble.py)")
    p.add_argument("--members", type=int, default=None, help="ensemble: number of members (default 5)")
    p.add_argument("--heads", choices=("class-embedding",), default=None,
                   help="ensemble: DECU members that share the dataset's preset network (frozen) and differ only in "
                        "a fresh class-embedding table; OUT/head_<k>.safetensors (benchmark/training/ensemble_heads.py)")
    p.add_argument("--dataset", choices=DATASETS + ("gmm", "grid25"), default=None,
                   help="digits, fashion, gmm (samples of the gmm preset's mixture; diffusion only) or grid25 "
                        "(the hallucination preset's MLP, benchmark/training/grid.py)")
    p.add_argument("--data", default=None, help="classifier only: your labelled images, a folder with one subfolder "
                   "per class or an .npz with labels, any size >= 8 px (instead of --dataset)")
    p.add_argument("--range", dest="value_range", choices=tuple(VALUE_RANGES), default=None,
                   help="with --data: the value range of a float array (as [data] range)")
    p.add_argument("--out", default=None, help="output folder (diffusion) or file (classifier, e.g. classifier.pt); "
                   "with --data the default is where runs on that data look (FOLDER/domain_classifier.pt, or "
                   "NAME.domain_classifier.pt beside NAME.npz)")
    p.add_argument("--steps", type=int, default=None, help="diffusion: total optimiser steps (default 20000); "
                                                           "classifier: cap on steps")
    p.add_argument("--epochs", type=int, default=None, help="classifier epochs (default 4; with --data also at "
                                                            "least 300 steps)")
    p.add_argument("--width", type=int, default=32, help="classifier base width (channels of its first conv)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--max-minutes", type=float, default=None, help="stop this run after so many minutes")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt (required if it exists)")
    p.add_argument("--unconditional", action="store_true", help="ignore class labels")
    p.add_argument("--hflip", action="store_true", help="random horizontal flips (off by default: Fashion-MNIST shoes all face one way)")
    p.add_argument("--checkpoint-every", type=int, default=250)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None, help="folder with the dataset files (Fashion-MNIST .gz)")
    p.add_argument("--download", action="store_true", help="download a missing dataset from its official location")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--ae-steps", type=int, default=None, help="latent: autoencoder steps (default 1500)")
    p.add_argument("--ae-minutes", type=float, default=None, help="latent: autoencoder time budget (default 12)")
    p.add_argument("--dit-steps", type=int, default=None, help="latent: DiT steps (default 8000)")
    p.add_argument("--dit-minutes", type=float, default=None, help="latent: DiT time budget (default 25)")
    return p


def train_main(argv: list[str]) -> int:
    """Entry point of `python -m benchmark train`; returns the exit code."""
    args = build_parser().parse_args(argv)
    progress = not args.no_progress
    _check_sources(args)
    if args.what == "classifier" and args.data is not None:
        from benchmark.training.classifier import train_data_classifier

        summary = train_data_classifier(args.data, args.out, epochs=args.epochs, batch_size=args.batch_size or 128,
                                        lr=args.lr or 2e-3, width=args.width, max_steps=args.steps, seed=args.seed,
                                        threads=args.threads, value_range=args.value_range, progress=progress)
        print(json.dumps(summary))
        return 0
    if args.what == "classifier":
        if args.dataset == "gmm":
            raise ConfigError("--dataset", "gmm", "digits or fashion for a classifier", "the gmm preset uses the "
                              "digits classifier (its components are digit prototypes)")
        from benchmark.training.classifier import train_classifier

        summary = train_classifier(args.dataset, args.out, epochs=args.epochs or 4, batch_size=args.batch_size or 128,
                                   lr=args.lr or 2e-3, width=args.width, max_steps=args.steps, seed=args.seed, threads=args.threads,
                                   data_dir=args.data_dir, download=args.download, progress=progress)
        print(json.dumps(summary))
        return 0
    out = Path(args.out)
    _check_resume(out, args.resume)
    if args.what == "latent":
        return _train_latent_main(args, progress)
    if args.what == "ensemble":
        return _train_ensemble_main(args, progress)
    if args.dataset == "grid25":
        return _train_grid_main(args, progress)
    cfg = TrainConfig(dataset=args.dataset, out=str(out), steps=args.steps or 20000,
                      batch_size=args.batch_size or 64, lr=args.lr or 1e-3, dropout=0.1,
                      conditional=not args.unconditional, hflip=args.hflip,
                      max_minutes=args.max_minutes, checkpoint_every=args.checkpoint_every, seed=args.seed,
                      threads=args.threads, data_dir=args.data_dir, download=args.download)
    summary = train_diffusion(cfg, progress=progress)
    print(json.dumps({k: v for k, v in summary.items() if k != "config"}))
    return 0


def _check_sources(args: argparse.Namespace) -> None:
    """Exactly one of --dataset / --data (--data only for a classifier); --out unless --data gives its default."""
    if args.data is not None and args.what != "classifier":
        raise ConfigError("--data", args.data, "only with --what classifier (the diffusion and latent trainers take "
                          "a built-in --dataset)", "pass --dataset digits|fashion, or --what classifier")
    if (args.data is None) == (args.dataset is None):
        raise ConfigError("--dataset / --data", args.data or args.dataset, "exactly one of them",
                          "pass --dataset NAME (built-in) or --data PATH (your labelled images, classifier only)")
    if args.heads is not None and args.what != "ensemble":
        raise ConfigError("--heads", args.heads, "only with --what ensemble", "add --what ensemble, or drop --heads")
    if args.value_range is not None and args.data is None:
        raise ConfigError("--range", args.value_range, "only with --data", "remove --range")
    if args.out is None and args.data is None:
        raise ConfigError("--out", None, "an output folder or file", "pass --out PATH")
    for flag in ("epochs", "steps", "width"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise ConfigError(f"--{flag}", getattr(args, flag), "an integer >= 1", f"e.g. --{flag} 4")


def _check_resume(out: Path, resume: bool) -> None:
    """A folder with a checkpoint needs --resume; --resume needs a checkpoint."""
    if (out / CHECKPOINT).is_file() and not resume:
        raise ConfigError("--out", str(out), "a folder without a checkpoint.pt",
                          "pass --resume to continue that run, or choose a new --out folder")
    if resume and not (out / CHECKPOINT).is_file():
        raise MissingAssetError(f"--resume: no {CHECKPOINT} in {out}. Fix: drop --resume to start a new run.")


def _train_grid_main(args: argparse.Namespace, progress: bool) -> int:
    from benchmark.training.grid import GridTrainConfig, train_grid

    cfg = GridTrainConfig(out=args.out, steps=args.steps or 20000, batch_size=args.batch_size or 512,
                          lr=args.lr or 2e-3, max_minutes=args.max_minutes, seed=args.seed, threads=args.threads)
    summary = train_grid(cfg, progress=progress)
    print(json.dumps({k: v for k, v in summary.items() if k != "config"}))
    return 0


def _train_ensemble_main(args: argparse.Namespace, progress: bool) -> int:
    from benchmark.training.ensemble import DEFAULT_MEMBERS, EnsembleTrainConfig, train_ensemble

    if args.dataset not in DATASETS:
        raise ConfigError("--dataset", args.dataset, f"one of {', '.join(DATASETS)} for --what ensemble",
                          "pass --dataset digits")
    members = DEFAULT_MEMBERS if args.members is None else args.members
    if args.heads is not None:
        return _train_heads_main(args, members, progress)
    cfg = EnsembleTrainConfig(dataset=args.dataset, out=args.out, members=members,
                              steps=args.steps or 1500, batch_size=args.batch_size or 64, lr=args.lr or 2e-3,
                              seed=args.seed, threads=args.threads, max_minutes=args.max_minutes,
                              conditional=not args.unconditional, data_dir=args.data_dir)
    print(json.dumps(train_ensemble(cfg, progress=progress)))
    return 0


def _train_heads_main(args: argparse.Namespace, members: int, progress: bool) -> int:
    from benchmark.training.ensemble_heads import DEFAULT_HEAD_STEPS, HeadTrainConfig, train_ensemble_heads

    if args.unconditional:
        raise ConfigError("--unconditional", True, "class labels for --heads class-embedding (a head is a class "
                          "table)", "drop --unconditional, or drop --heads for unconditional full members")
    cfg = HeadTrainConfig(dataset=args.dataset, out=args.out, members=members,
                          steps=args.steps or DEFAULT_HEAD_STEPS, seed=args.seed, threads=args.threads,
                          max_minutes=args.max_minutes, data_dir=args.data_dir)
    for name in ("batch_size", "lr"):
        if getattr(args, name) is not None:
            setattr(cfg, name, getattr(args, name))
    print(json.dumps(train_ensemble_heads(cfg, progress=progress)))
    return 0


def _train_latent_main(args: argparse.Namespace, progress: bool) -> int:
    from benchmark.training.latent import LatentTrainConfig, train_latent

    if args.dataset != "fashion":
        raise ConfigError("--dataset", args.dataset, "fashion for --what latent (32x32 images -> 8x8x4 latents)")
    cfg = LatentTrainConfig(out=args.out, dataset=args.dataset, threads=args.threads, seed=args.seed,
                            data_dir=args.data_dir)
    for name in ("ae_steps", "ae_minutes", "dit_steps", "dit_minutes"):
        if getattr(args, name) is not None:
            setattr(cfg, name, getattr(args, name))
    summary = train_latent(cfg, progress=progress)
    print(json.dumps({k: v for k, v in summary.items() if k != "config"}))
    return 0
