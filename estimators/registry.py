"""Name -> estimator class. A user adds an estimator by decorating a class with `register(name)`."""
from __future__ import annotations

import inspect
from typing import Callable, TypeVar

from benchmark.errors import ConfigError
from estimators.base import COMMON_PARAMETERS, UncertaintyEstimator

_REGISTRY: dict[str, type[UncertaintyEstimator]] = {}
T = TypeVar("T", bound=type)


def register(name: str) -> Callable[[T], T]:
    """Class decorator: make the estimator available as `create(name, ...)`."""

    def decorate(cls: T) -> T:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"an estimator named {name!r} is already registered ({_REGISTRY[name].__name__})")
        cls.name = name  # type: ignore[attr-defined]
        _REGISTRY[name] = cls  # type: ignore[assignment]
        return cls

    return decorate


def available() -> list[str]:
    """Names of all registered estimators, sorted."""
    return sorted(_REGISTRY)


def parameters(name: str) -> list[str]:
    """The parameters `create(name, ...)` accepts: the constructor's, then the common ones (`negate`)."""
    sig = inspect.signature(get_class(name).__init__)
    own = [p for p in sig.parameters if p != "self" and sig.parameters[p].kind is not inspect.Parameter.VAR_KEYWORD]
    return own + [p for p in COMMON_PARAMETERS if p not in own]


def get_class(name: str) -> type[UncertaintyEstimator]:
    if name not in _REGISTRY:
        raise ConfigError("estimator", name, f"one of {', '.join(available())}",
                          "use a registered name (python -m benchmark list)")
    return _REGISTRY[name]


def create(name: str, **params: object) -> UncertaintyEstimator:
    """Instantiate a registered estimator; unknown parameters are refused with the valid ones listed."""
    valid = parameters(name)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ConfigError(f"estimator {name!r} parameter", unknown[0],
                          f"valid parameters are: {', '.join(valid) or '(none)'}")
    common = {k: params.pop(k) for k in COMMON_PARAMETERS if k in params}
    estimator = get_class(name)(**params)
    estimator._params = {**params, **common}  # type: ignore[attr-defined]
    estimator.name = name
    return estimator.set_common(**common)
