"""The `[estimators.<instance>]` tables: each checked against its estimator's constructor and declared needs, and the
protocols that need a kind of estimator (augmentation: a state variance; rectification: one besides the floor)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from benchmark.config.checks import parameter_rule, window_has_steps
from benchmark.config.fields import check, located, no_unknown, table
from benchmark.errors import ConfigError


@dataclass(frozen=True)
class EstimatorSpec:
    """One [estimators.<name>] table. `name` is the instance name (rows, plots, leaderboard); `type` the
    registered estimator it instantiates (defaults to `name`, so `[estimators.sensitivity]` needs no type);
    `params` its constructor parameters (without `type`)."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    type: str = ""

    def __post_init__(self) -> None:
        if not self.type:
            object.__setattr__(self, "type", self.name)


def estimator_specs(section: dict[str, Any], steps: int) -> tuple[EstimatorSpec, ...]:
    """The `[estimators.<instance>]` tables, each checked against its estimator's constructor and declared needs
    (estimators.requirements: constructor arguments the run supplies are not config keys; the shared posterior's fit
    settings are, on every estimator that asks for a posterior)."""
    import estimators as registry
    from estimators.requirements import POSTERIOR_FIT_KEYS, config_keys, fit_settings, requirements_of

    specs = []
    for instance, params in section.items():
        params = table(params, f"estimators.{instance}")
        name = params.pop("type", instance)
        if name not in registry.available():
            field_name = f"estimators.{instance}" + (".type" if "type" in (section[instance] or {}) else "")
            raise ConfigError(field_name, name, f"a registered estimator: {', '.join(registry.available())}",
                              f'set type = "<estimator>" in [estimators.{instance}] for a named variant, or add '
                              "the estimator's module to run.plugins (python -m benchmark list)")
        cls = registry.get_class(name)
        no_unknown(f"estimators.{instance}", params, config_keys(cls, registry.parameters(name)))
        params = {k: check(parameter_rule(cls, k), v, f"estimators.{instance}.{k}") for k, v in params.items()}
        build_params = {k: (tuple(v) if isinstance(v, list) else v) for k, v in params.items()
                        if k not in POSTERIOR_FIT_KEYS or not requirements_of(cls).posterior}
        try:
            registry.create(name, **build_params)  # validates names and values now, before any work
        except ConfigError as err:
            raise located(err, f"estimators.{instance}") from None
        window = params["window"] if "window" in params else parameter_rule(cls, "window").default
        if window is not None:  # given, or the constructor's default window: either must hold a step of the run
            window_has_steps(window, steps, f"estimators.{instance}.window")
        specs.append(EstimatorSpec(instance, params, type=name))
    fit_settings([(s.name, s.params) for s in specs if requirements_of(registry.get_class(s.type)).posterior])
    if "random" not in section:
        specs.insert(0, EstimatorSpec("random", {}))
    return tuple(specs)


def check_application_needs(protocols: dict[str, dict[str, Any]], estimators: tuple[EstimatorSpec, ...]) -> None:
    """augmentation needs an estimator that provides a state variance (class attribute `state_variance`);
    rectification one besides the `random` floor."""
    import estimators as registry

    if "augmentation" in protocols and not any(getattr(registry.get_class(e.type), "state_variance", False)
                                               for e in estimators):
        providers = [n for n in registry.available() if getattr(registry.get_class(n), "state_variance", False)]
        raise ConfigError("protocols.augmentation", "enabled", "a run with an estimator that propagates a state "
                          f"variance ({', '.join(providers) or 'none is registered'})",
                          f"add [estimators.{providers[0] if providers else '<name>'}] or disable the protocol "
                          "(enabled = false)")
    if "rectification" in protocols and all(e.type == "random" for e in estimators):
        raise ConfigError("protocols.rectification", "enabled", "a run with an estimator besides random",
                          "add an [estimators.<name>] table or disable the protocol (enabled = false)")
