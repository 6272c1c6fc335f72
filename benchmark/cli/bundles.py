"""`python -m benchmark submit RUN --out BUNDLE` and `python -m benchmark verify BUNDLE [--recompute K]`
(benchmark.publish.bundle, benchmark.publish.verify)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmark.errors import ConfigError


def add_parsers(sub) -> None:
    submit = sub.add_parser("submit", help="a valid run folder as a submission bundle (cards, per-sample hashes)")
    submit.add_argument("run", type=Path)
    submit.add_argument("--out", required=True, type=Path, help="the bundle folder to write (must not exist)")
    verify = sub.add_parser("verify", help="check a bundle's integrity and version; re-compute K samples' scores")
    verify.add_argument("bundle", type=Path)
    verify.add_argument("--recompute", type=int, default=0, metavar="K",
                        help="re-compute K random samples' scores from their seeds (0: integrity and version only)")
    verify.add_argument("--pick-seed", type=int, default=None, help="fix the random choice of the K samples")


def submit_command(args: argparse.Namespace) -> int:
    from benchmark.execution.run_dir import check_out_folder
    from benchmark.publish.bundle import submit

    if not Path(args.run).is_dir():
        raise ConfigError("RUN", str(args.run), "a folder that `python -m benchmark run --out DIR` wrote",
                          "give that folder (a file or a missing path is not a run)")
    check_out_folder(args.out)
    done = submit(args.run, args.out)
    print(f"bundle: {done.bundle} ({done.samples} samples; per-sample scores of {', '.join(done.estimators)})")
    return 0


def verify_command(args: argparse.Namespace) -> int:
    from benchmark.publish.verify import verify_bundle

    if args.recompute < 0:
        raise ConfigError("--recompute", args.recompute, "a number of samples >= 0", "e.g. --recompute 8")
    if not Path(args.bundle).is_dir():
        raise ConfigError("BUNDLE", str(args.bundle), "a bundle folder",
                          "give a folder written by `python -m benchmark submit RUN --out BUNDLE`")
    result = verify_bundle(args.bundle, recompute_k=args.recompute, pick_seed=args.pick_seed)
    print(result.describe(), file=sys.stdout if result.ok else sys.stderr)
    return 0 if result.ok else 2
