"""Command line (layer 11, the top): run, leaderboard, regress, validate, train, list.

Exit codes (a contract, see docs/ci_and_regress.md): 0 success, 1 `regress` found a regression, 2 bad input (config, CLI
arguments, files given), 3 a fault during the run (I/O, corrupt state), 130 interrupted (Ctrl-C). For 2, 3 and
130 the user sees one line and no traceback, unless `--debug` (anywhere on the command line) or
UQBENCH_DEBUG=1 asks for it.

May import: every layer.
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

from benchmark.errors import (EXIT_BAD_INPUT, EXIT_FAULT, EXIT_INTERRUPTED, ConfigError, OneLineParser, RunFault,
                              RunInterrupted, UQBenchError)

TIMING_METRICS = ("seconds_per_sample", "time_ratio")


_Parser = OneLineParser  # the CLI's parsers: one-line errors, exit 2


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="uqbench", description="Benchmark pixel-wise uncertainty estimators of diffusion models. "
                     "Exit codes: 0 ok, 1 regression found, 2 bad input, 3 fault during the run, 130 interrupted; "
                     "--debug (anywhere) shows tracebacks.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a config: generation, protocols, report")
    run.add_argument("--config", required=True, type=Path)
    run.add_argument("--preset", default=None, help="override [run].preset")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                     help="override one config value (a TOML literal), e.g. --set run.num_samples=600; repeatable")
    run.add_argument("--out", type=Path, default=None, help="run directory (default results/runs/<name>)")
    run.add_argument("--overwrite", action="store_true", help="replace a finished run directory")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument("--seeds", default=None, help="replicates, e.g. 0,1,2 (replaces run.seed / run.seeds): one run "
                     "per seed in OUT/seed_<s>/, pooled verdicts and spreads in OUT/seeds.md")
    board = sub.add_parser("leaderboard", help="boards across validated runs and submission bundles: a static site "
                           "+ leaderboard.md")
    board.add_argument("runs", nargs="+", type=Path, help="run folders and bundles (python -m benchmark submit)")
    board.add_argument("--out", type=Path, default=Path("results/leaderboard"),
                       help="site folder (index.html, leaderboard.md, runs/)")
    board.add_argument("--skip-weights", action="store_true",
                       help="do not reload each run's model to check its weights (as validate --skip-weights)")
    board.add_argument("--recompute", type=int, default=0, metavar="K",
                       help="re-compute K random samples of each submission bundle (as verify --recompute K)")
    check = sub.add_parser("validate", help="check that a run folder is complete and unchanged since its run")
    check.add_argument("run", type=Path)
    check.add_argument("--skip-weights", action="store_true", help="do not reload the model to check its weights")
    from benchmark.cli import bundles, regress

    regress.add_arguments(sub.add_parser("regress", help="compare a run with a committed baseline (by fixed per-kind "
                                         "tolerances, or by the runs' own errors: --mode errors)"))
    bundles.add_parsers(sub)
    listing = sub.add_parser("list", help="presets, estimators and protocols, with where each comes from")
    listing.add_argument("--plugins", nargs="*", default=[], help="plug-in modules or .py files to import first")
    listing.add_argument("--estimators", action="store_true",
                         help="estimator cards: paper, kind, needs, extra NFEs per sample, parameters")
    sub.add_parser("train", help="train a preset's model or classifier (see `train --help`)", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("UQBENCH_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    if argv[:1] == ["train"]:
        from benchmark.training.command import train_main

        return _guard(lambda: train_main(argv[1:]), debug)
    try:
        args = _parser().parse_args(argv)
    except SystemExit as done:  # argparse: --help (0) or a bad argument (2, its line already printed)
        return int(done.code or 0)
    return _guard(lambda: COMMANDS[args.command](args), debug)


def _guard(action, debug: bool = False) -> int:
    """Run a command; map what it raises onto the exit-code contract with one line on stderr."""
    try:
        return int(action() or 0)
    except UQBenchError as err:
        return _fail("error", err, EXIT_BAD_INPUT, debug)
    except RunFault as err:
        return _fail("fault", err, EXIT_FAULT, debug)
    except KeyboardInterrupt as err:
        text = str(err) if isinstance(err, RunInterrupted) else "stopped by the user (Ctrl-C)"
        return _fail("interrupted", text, EXIT_INTERRUPTED, debug)
    except OSError as err:  # the file system failed under a running command (disk full, permissions, ...)
        where = f" ({err.filename})" if err.filename else ""
        return _fail("fault", f"{err.strerror or err}{where}. Fix: free space or fix permissions there, then run "
                     "the same command again (a run resumes)", EXIT_FAULT, debug)
    except SystemExit as done:  # a command's own argument parser (train): --help is 0, a bad argument 2
        return done.code if isinstance(done.code, int) else (0 if done.code is None else EXIT_BAD_INPUT)
    except Exception as err:  # a bug: still one line (and exit 3, never 1, which means a regression)
        return _fail("fault", f"unexpected {type(err).__name__}: {err}. Fix: rerun with --debug for the traceback "
                     "and report it", EXIT_FAULT, debug)


def _fail(label: str, what: object, code: int, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    print(f"{label}: {' '.join(str(what).split())}", file=sys.stderr)
    return code


def _run(args) -> int:
    from benchmark.api.running import execute
    from benchmark.config import load_config
    from benchmark.config.seeds import parse_cli_seeds, with_seeds

    seeds = parse_cli_seeds(args.seeds) if args.seeds is not None else None  # before the config: no work yet
    config = load_config(args.config, preset=args.preset, overrides=args.overrides)
    config = with_seeds(config, seeds) if seeds else config
    out, report = execute(config, args.out, overwrite=args.overwrite, progress=not args.quiet)  # = benchmark.run's
    if report is not None:
        print(f"report: {report}\nmetrics: {out / ('seeds.csv' if config.seeds else 'metrics.csv')}")
        _print_published(args.config, out, config)
    return 0


def _print_published(config_path, out: Path, config) -> None:
    """The run's numbers beside a paper's, when `published/<config stem>.toml` sits beside the config."""
    from benchmark.publish.published import comparison_lines, published_file
    from benchmark.report.metrics_file import read_metrics

    values = published_file(Path(config_path)) if config_path else None
    if values is not None and not config.seeds:
        print("\n".join(comparison_lines(read_metrics(out), values)))


def _leaderboard(args) -> int:
    from benchmark.execution.run_dir import check_out_folder
    from benchmark.publish.site import write_leaderboard

    check_out_folder(args.out)  # a file, a dangling link or a read-only place: exit 2 before any run is read
    for run in args.runs:
        _check_run_folder(run)
    if args.recompute < 0:
        raise ConfigError("--recompute", args.recompute, "a number of samples >= 0", "e.g. --recompute 4")
    md, page = write_leaderboard(args.runs, args.out, check_weights=not args.skip_weights, recompute=args.recompute)
    print(f"leaderboard: {md}\nsite: {page}")
    return 0


def _check_run_folder(run: Path) -> None:
    """A run argument of validate / leaderboard must be a folder (exit 2 with the fix, before anything is read)."""
    if not Path(run).is_dir():
        raise ConfigError("run folder", str(run), "a folder that `python -m benchmark run --out DIR` wrote",
                          "give that folder (a file or a missing path is not a run)")


def _validate(args) -> int:
    from benchmark.publish.validate import validate_run

    _check_run_folder(args.run)
    result = validate_run(args.run, check_weights=not args.skip_weights)
    print(result.describe(), file=sys.stdout if result.ok else sys.stderr)
    return 0 if result.ok else 2


def _regress(args) -> int:
    from benchmark.cli.regress import regress_command

    return regress_command(args)


def _list(args) -> int:
    from benchmark.cli.listing import listing_text
    from benchmark.config.plugins import load_plugins

    load_plugins(args.plugins, field="--plugins")  # and the entry-point plug-ins
    if args.estimators:
        print(_estimator_cards())
        return 0
    print(listing_text())
    return 0


def _estimator_cards() -> str:
    """Every registered estimator's card (built-ins and plug-ins), generated from the registry."""
    import estimators
    from estimators.cards import cards, cards_text

    return cards_text(cards(estimators.available()))


def _submit(args) -> int:
    from benchmark.cli.bundles import submit_command

    return submit_command(args)


def _verify(args) -> int:
    from benchmark.cli.bundles import verify_command

    return verify_command(args)


COMMANDS = {"run": _run, "leaderboard": _leaderboard, "regress": _regress, "list": _list, "validate": _validate,
            "submit": _submit, "verify": _verify}
