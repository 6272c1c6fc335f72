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
    """Each registered estimator as a TOML table a config can take as it is: its origin and needs as a comment, every
    parameter with its default, the shared posterior's fit settings for an estimator that asks for a posterior.
    A parameter without a usable default (required, or None) is a comment line, so the text stays valid TOML."""
    import estimators
    from estimators.requirements import POSTERIOR_FIT_DEFAULTS, requirements_of
    blocks = []
    for name in estimators.available():
        cls = estimators.get_class(name)
        needs = requirements_of(cls)
        lines = [f"[estimators.{name}]  # [{estimators.registry.origin(name)}] needs: {needs.describe()}"]
        for param in estimators.parameters(name):
            if param in needs.supplied_arguments():
                continue
            text = _parameter_text(cls, param)
            lines.append(text if " = " in text and not text.endswith(" = None") else
                         f"# {param} = ...  (no default: optional, set it to use it)")
        if needs.posterior:
            lines += [f"{key} = {_toml(value)}  # the shared posterior's fit" for key, value in POSTERIOR_FIT_DEFAULTS.items()]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def protocols_text() -> str:
    """Each protocol as a TOML table with its keys and defaults (a key without a default is a comment line)."""
    from benchmark.config import PROTOCOL_KEYS

    blocks = []
    for name, defaults in PROTOCOL_KEYS.items():
        lines = [f"[protocols.{name}]"]
        for key, value in defaults.items():
            default = getattr(value, "default", value)
            lines.append(f"# {key} = ...  (no default)" if default is None else f"{key} = {_toml(value)}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def listing_text() -> str:
    return (f"presets:\n{presets_text()}\n\n# estimators: each table is valid TOML for a config, with its defaults\n\n"
            f"{estimators_text()}\n\n# protocols: each table with its keys and defaults\n\n{protocols_text()}")
