"""The run configuration (layer 5): the TOML schema and its parsing (`schema`), field rules (`fields`),
cross-field checks (`checks`) and plug-in loading (`plugins`).

May import: errors/seeding, metrics, models, data, sampling, estimators, presets, training. Never the layers
above it (execution, protocols, report, runner, publish, cli).
"""
from benchmark.config.schema import (
                                     DEFAULT_PROTOCOLS,
                                     FEATURES,
                                     PROTOCOL_KEYS,
                                     PROTOCOLS,
                                     RUN_KEYS,
                                     SECTIONS,
                                     EstimatorSpec,
                                     RunConfig,
                                     load_config,
                                     parse_config,
)

__all__ = ["DEFAULT_PROTOCOLS", "FEATURES", "PROTOCOLS", "PROTOCOL_KEYS", "RUN_KEYS", "SECTIONS", "EstimatorSpec",
           "RunConfig", "load_config", "parse_config"]
