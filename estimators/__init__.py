"""Pluggable uncertainty estimators: the interface, the registry and the built-in estimators."""
from __future__ import annotations

import importlib

from estimators.base import EstimatorResult, UncertaintyEstimator, scale_window
from estimators.registry import available, create, get_class, parameters, register
from estimators.requirements import Requirements

# Built-in estimators register themselves on import.
_BUILTIN = ("estimators.random_floor", "estimators.sensitivity", "estimators.mc_dropout", "estimators.bayesdiff",
            "estimators.x0_trajectory", "estimators.flip", "estimators.zigzag", "estimators.noise_perturbation",
            "estimators.generative_uncertainty", "estimators.realism_oracle", "estimators.local_variance",
            "estimators.gradient_magnitude", "estimators.distance_to_mean", "estimators.tweedie_variance",
            "estimators.ensemble", "estimators.subset_laplace")
for _module in _BUILTIN:
    try:
        importlib.import_module(_module)
    except ModuleNotFoundError as _err:  # a built-in still being written must not break the others
        if _err.name != _module:
            raise

__all__ = ["EstimatorResult", "Requirements", "UncertaintyEstimator", "available", "create", "get_class", "parameters",
           "register", "scale_window"]
