"""Name -> estimator class. A user adds an estimator by decorating a class with `register(name)`."""
from __future__ import annotations

import contextlib
import inspect
from typing import Callable, Iterator, TypeVar

from benchmark.errors import ConfigError
from estimators.base import COMMON_PARAMETERS, UncertaintyEstimator

_REGISTRY: dict[str, type[UncertaintyEstimator]] = {}
_ORIGIN: dict[str, str] = {}  # name -> where it came from ("built-in", "plug-in <file>", "entry point <dist>")
_LOADING: list[str] = []  # the origin of the plug-in being imported now (benchmark.config.plugins sets it)
BUILTIN = "built-in"
T = TypeVar("T", bound=type)


class RegistrationError(ValueError):
    """A class cannot be registered: it is not an estimator, or its name is taken."""


def register(name: str) -> Callable[[T], T]:
    """Class decorator: make the estimator available as `create(name, ...)`.

    The class must subclass `UncertaintyEstimator`, and `name` must not be taken by another class
    (a plug-in cannot replace a built-in estimator: give it a name of its own).
    """

    def decorate(cls: T) -> T:
        if not (isinstance(cls, type) and issubclass(cls, UncertaintyEstimator)):
            raise RegistrationError(f"register({name!r}) was applied to {getattr(cls, '__name__', cls)!r}, "
                                    "which is not a subclass of estimators.UncertaintyEstimator")
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise RegistrationError(f"an estimator named {name!r} is already registered "
                                    f"({_REGISTRY[name].__module__}.{_REGISTRY[name].__name__}, {origin(name)})")
        cls.name = name  # type: ignore[attr-defined]
        _REGISTRY[name] = cls  # type: ignore[assignment]
        _ORIGIN.setdefault(name, _LOADING[-1] if _LOADING else _module_origin(cls.__module__))
        return cls

    return decorate


def origin(name: str) -> str:
    """Where the estimator `name` was registered from: "built-in", "plug-in <name>", "entry point <...>"."""
    get_class(name)
    return _ORIGIN.get(name, BUILTIN)


@contextlib.contextmanager
def registering_from(label: str) -> Iterator[None]:
    """Estimators registered inside this block are recorded as coming from `label` (a plug-in)."""
    _LOADING.append(label)
    try:
        yield
    finally:
        _LOADING.pop()


def _module_origin(module: str) -> str:
    return BUILTIN if module.split(".")[0] == "estimators" else f"module {module}"


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
