"""What `python -m benchmark list` prints: presets, estimators and protocols, each with where it comes from
(built-in, a plug-in file or module, an entry point, $UQBENCH_EXTRA_PRESETS) and its parameters."""
from __future__ import annotations

import inspect


def presets_text() -> str:
    """Presets (built-in, entry points) and those named by $UQBENCH_EXTRA_PRESETS."""
    from benchmark import presets
    from benchmark.runner.setup import EXTRA_PRESETS_ENV, extra_presets

    lines = [presets.list_presets_text()]
    for name, preset in extra_presets().items():
        lines.append(f"  {name}  [${EXTRA_PRESETS_ENV}]  {getattr(preset, 'description', '')}")
    return "\n".join(lines)


def estimators_text() -> str:
    """One line per registered estimator: name, origin, parameters with their defaults."""
    import estimators

    names = estimators.available()
    width = max(len(n) for n in names)
    lines = []
    for name in names:
        params = ", ".join(_parameter_text(estimators.get_class(name), p) for p in estimators.parameters(name))
        lines.append(f"  {name:<{width}}  [{estimators.registry.origin(name)}]  parameters: {params or '(none)'}")
    return "\n".join(lines)


def protocols_text() -> str:
    """One line per protocol with its parameters and defaults (the keys of [protocols.<name>])."""
    from benchmark.config import PROTOCOL_KEYS

    width = max(len(n) for n in PROTOCOL_KEYS)
    lines = []
    for name, defaults in PROTOCOL_KEYS.items():
        params = ", ".join(f"{key} = {_toml(value)}" for key, value in defaults.items())
        lines.append(f"  {name:<{width}}  {params or '(no parameters)'}")
    return "\n".join(lines)


def listing_text() -> str:
    return (f"presets:\n{presets_text()}\n\nestimators:\n{estimators_text()}\n\n"
            f"protocols ([protocols.<name>] keys and defaults):\n{protocols_text()}")


def _parameter_text(cls: type, name: str) -> str:
    param = inspect.signature(cls.__init__).parameters.get(name)
    if param is None and isinstance(getattr(cls, name, None), (bool, int, float, str)):
        return f"{name} = {_toml(getattr(cls, name))}"  # a common option with a class-level default (negate)
    if param is None or param.default is inspect.Parameter.empty:
        return name
    return f"{name} = {_toml(param.default)}"


def _toml(value: object) -> str:
    """A default as a config would write it (true/false, lists in brackets, strings quoted)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, str):
        return f'"{value}"'
    default = getattr(value, "default", value)  # a typed Field rule carries its default
    return repr(default) if default is not value else repr(value)
