"""What `python -m benchmark list` prints: presets, estimators and protocols, each with where it comes from
(built-in, a plug-in file or module, an entry point, $UQBENCH_EXTRA_PRESETS) and its parameters."""
from __future__ import annotations

from estimators.cards import parameter_text as _parameter_text
from estimators.cards import toml_value as _toml


def presets_text() -> str:
    """Presets (built-in, entry points) and those named by $UQBENCH_EXTRA_PRESETS."""
    from benchmark import presets
    from benchmark.presets.loading import EXTRA_PRESETS_ENV, extra_presets

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
