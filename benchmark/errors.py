"""Error types of the suite. Every user-facing error names the field and the fix."""
from __future__ import annotations


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
