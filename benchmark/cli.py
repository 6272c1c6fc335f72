"""Command line: run, leaderboard, regress, train, list. Bad input exits with code 2 and a one-paragraph error."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmark.errors import UQBenchError

TIMING_METRICS = ("seconds_per_sample", "time_ratio")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="uqbench", description="Benchmark pixel-wise uncertainty estimators "
                                     "of diffusion models.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a config: generation, protocols, report")
    run.add_argument("--config", required=True, type=Path)
    run.add_argument("--preset", default=None, help="override [run].preset")
    run.add_argument("--out", type=Path, default=None, help="run directory (default results/runs/<name>)")
    run.add_argument("--overwrite", action="store_true", help="replace a finished run directory")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    board = sub.add_parser("leaderboard", help="one table across runs (Markdown + HTML)")
    board.add_argument("runs", nargs="+", type=Path)
    board.add_argument("--out", type=Path, default=Path("results"))
    reg = sub.add_parser("regress", help="compare a run with a committed baseline")
    reg.add_argument("--baseline", required=True, type=Path)
    reg.add_argument("--run", required=True, type=Path)
    reg.add_argument("--write-baseline", action="store_true",
                     help="write the baseline from the run instead of comparing (timing metrics left out)")
    reg.add_argument("--abs-tol", type=float, default=0.05)
    reg.add_argument("--rel-tol", type=float, default=0.05)
    listing = sub.add_parser("list", help="presets and estimators")
    listing.add_argument("--estimators", action="store_true",
                         help="estimator cards: paper, kind, needs, extra NFEs per sample, parameters")
    sub.add_parser("train", help="train a preset's model or classifier (see `train --help`)", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train"]:
        from benchmark.training import train_main

        return _guard(lambda: train_main(argv[1:]))
    args = _parser().parse_args(argv)
    return _guard(lambda: COMMANDS[args.command](args))


def _guard(action) -> int:
    try:
        return int(action() or 0)
    except UQBenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _run(args) -> int:
    from benchmark.config import load_config
    from benchmark.runner.run import default_out_dir, run_benchmark

    config = load_config(args.config, preset=args.preset)
    out = args.out or default_out_dir(config)
    report = run_benchmark(config, out, overwrite=args.overwrite, progress=not args.quiet)
    if report is not None:
        print(f"report: {report}\nmetrics: {out / 'metrics.csv'}")
    return 0


def _leaderboard(args) -> int:
    from benchmark.leaderboard import write_leaderboard

    md, page = write_leaderboard(args.runs, args.out)
    print(f"leaderboard: {md}\nhtml: {page}")
    return 0


def _regress(args) -> int:
    import pandas as pd

    from benchmark.regression import make_baseline, regress
    from benchmark.runner.io import save_text

    if args.write_baseline:
        run = pd.read_csv(args.run / "metrics.csv")
        run = run[~run.metric.isin(TIMING_METRICS)]
        frame = make_baseline(run, {}, (args.abs_tol, args.rel_tol))
        save_text(frame.to_csv(index=False, float_format="%.6g"), args.baseline)
        print(f"baseline written: {args.baseline} ({len(frame)} metrics)")
        return 0
    code, text = regress(args.baseline, args.run)
    print(text)
    return code


def _list(args) -> int:
    import estimators
    from benchmark import presets

    if args.estimators:
        print(_estimator_cards())
        return 0
    print("presets:")
    text = presets.list_presets_text() if hasattr(presets, "list_presets_text") else "\n".join(presets.names())
    print(text)
    from benchmark.runner.setup import EXTRA_PRESETS_ENV, extra_presets

    for name, preset in extra_presets().items():
        print(f"  {name}  (from ${EXTRA_PRESETS_ENV}) {getattr(preset, 'description', '')}")
    print("\nestimators:")
    for name in estimators.available():
        print(f"  {name:<12} parameters: {', '.join(estimators.parameters(name)) or '(none)'}")
    return 0


def _estimator_cards() -> str:
    """Every registered estimator's card (built-ins and plug-ins), generated from the registry."""
    import estimators
    from estimators.cards import cards, cards_text

    return cards_text(cards(estimators.available()))


COMMANDS = {"run": _run, "leaderboard": _leaderboard, "regress": _regress, "list": _list}
