"""`python -m benchmark regress`: a run against a committed baseline, in one of two modes.

- `--mode tolerance` (default, the cross-machine mode): fixed per-kind tolerances (benchmark.publish.regression);
- `--mode errors`: each change tested by the two runs' own standard errors, adjusted over the metrics, flagged only
  beyond the practical threshold (benchmark.publish.regress_errors).
`--json`, `--junit`, `--markdown` write the finding as files (for scripts, CI annotations, a pull-request comment).
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from benchmark.errors import ConfigError

REPORTS = ("json", "junit", "markdown")
SUFFIXES = {"json": "json", "junit": "xml", "markdown": "md"}


def add_arguments(reg: argparse.ArgumentParser) -> None:
    reg.add_argument("--baseline", required=True, type=Path)
    reg.add_argument("--run", required=True, type=Path)
    reg.add_argument("--write-baseline", action="store_true",
                     help="write the baseline from the run instead of comparing (timing metrics left out)")
    reg.add_argument("--abs-tol", type=float, default=0.05)
    reg.add_argument("--rel-tol", type=float, default=0.05)
    reg.add_argument("--mode", choices=("tolerance", "errors"), default="tolerance",
                     help="tolerance: fixed per-kind tolerances (across machines); errors: z-tests by the runs' own "
                     "intervals, adjusted over the metrics, beyond the per-kind tolerance (--baseline may be a run)")
    reg.add_argument("--alpha", type=float, default=0.05, help="errors mode: the family's error rate")
    reg.add_argument("--multiplicity", choices=("holm", "bh"), default="holm",
                     help="errors mode: Holm (family-wise, default) or Benjamini-Hochberg (false discovery rate)")
    for kind in REPORTS:
        reg.add_argument(f"--{kind}", type=Path, default=None, metavar="FILE", help=f"write the finding as {kind}")


def check_output_file(flag: str, path: Path | None) -> None:
    """A report path must be a file name in a folder (exit 2 before anything is compared or written)."""
    if path is None:
        return
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if path.is_dir() or not parent.is_dir():
        raise ConfigError(flag, str(path), "the path of a file to write, but "
                          f"{path if path.is_dir() else parent} is {'a folder' if path.is_dir() else 'a file'}",
                          f"give a file name, e.g. {flag} reports/regress.{SUFFIXES[flag[2:]]}")


def regress_command(args) -> int:
    from benchmark.execution.io import save_text

    for flag, tol in (("--abs-tol", args.abs_tol), ("--rel-tol", args.rel_tol)):
        if not (math.isfinite(tol) and tol >= 0):
            raise ConfigError(flag, tol, "a finite tolerance >= 0", f"e.g. {flag} 0.05")
    if not 0 < args.alpha < 1:
        raise ConfigError("--alpha", args.alpha, "an error rate in (0, 1)", "e.g. --alpha 0.05")
    for kind in REPORTS:
        check_output_file(f"--{kind}", getattr(args, kind))
    if args.write_baseline:
        return _write_baseline(args)
    if args.mode == "errors":
        from benchmark.publish.regress_errors import regress_by_errors

        result = regress_by_errors(args.baseline, args.run, alpha=args.alpha, method=args.multiplicity,
                                   default_tolerance=(args.abs_tol, args.rel_tol))
    else:
        from benchmark.publish.regression import regress_by_tolerance

        result = regress_by_tolerance(args.baseline, args.run)
    from benchmark.publish.regress_report import WRITERS

    for kind in REPORTS:
        if getattr(args, kind) is not None:
            save_text(WRITERS[kind](result), getattr(args, kind))
    print(result.text())
    return result.exit_code


def _write_baseline(args) -> int:
    from benchmark.execution.io import save_text
    from benchmark.publish.regression import TIMING_METRICS, make_baseline
    from benchmark.report.metrics_file import REGRESS_COLUMNS, read_metrics

    if args.baseline.is_dir() or args.baseline.parent.exists() and not args.baseline.parent.is_dir():
        raise ConfigError("--baseline", str(args.baseline), "the path of a CSV file to write, but "
                          f"{args.baseline if args.baseline.is_dir() else args.baseline.parent} is "
                          f"{'a folder' if args.baseline.is_dir() else 'a file'}",
                          "give a file name, e.g. --baseline results/baselines/mine.csv")
    run = read_metrics(args.run, columns=REGRESS_COLUMNS)
    run = run[~run.metric.isin(TIMING_METRICS)]
    frame = make_baseline(run, {}, (args.abs_tol, args.rel_tol))
    save_text(frame.to_csv(index=False, float_format="%.6g"), args.baseline)
    print(f"baseline written: {args.baseline} ({len(frame)} metrics)")
    return 0
