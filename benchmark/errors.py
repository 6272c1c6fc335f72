"""Error types of the suite. Every user-facing error names the field and the fix."""
from __future__ import annotations

import argparse
import sys


class UQBenchError(Exception):
    """Base class of errors caused by bad input; the CLI prints them and exits with code 2."""


class ConfigError(UQBenchError, ValueError):
    """A parameter or config field has an invalid value."""

    def __init__(self, field: str, value: object, allowed: str, fix: str | None = None) -> None:
        msg = f"{field} = {value!r} is invalid: {allowed}."
        if fix:
            msg += f" Fix: {fix}"
        super().__init__(msg)
        self.field = field


class CapabilityError(UQBenchError, TypeError):
    """A model lacks a capability an estimator needs (last layer, dropout, ...)."""


class NonFiniteError(UQBenchError, FloatingPointError):
    """A network returned NaN or Inf."""


class MissingAssetError(UQBenchError, FileNotFoundError):
    """Weights, data or a fitted posterior are not where they are looked for."""


class RunFault(Exception):
    """A fault during a run that is not the user's input: an I/O failure, a corrupt or truncated file in the
    run folder. The CLI prints one line and exits with code 3 (the folder stays resumable)."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) during a command, with the line to print (e.g. how to resume); the CLI exits with 130."""


#: the CLI's exit codes (a contract, documented in docs/ci_and_regress.md): success, `regress` found a regression,
#: bad input (config, CLI arguments, files given), a fault during the run, interrupted by the user
EXIT_OK, EXIT_REGRESSION, EXIT_BAD_INPUT, EXIT_FAULT, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class OneLineParser(argparse.ArgumentParser):
    """argparse with a one-line error (exit 2) that names the fix, instead of the usage block."""

    def error(self, message: str):  # type: ignore[override]
        print(f"error: {self.prog}: {message}. Fix: see `{self.prog} --help`", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)
