"""Cross-field constraints of a run config (benchmark.config calls them): what one field allows depends on
others (k < K, a window that holds a step of the run, FID subsets of a minimum size, ...), and the typed rule of
an estimator parameter comes from its constructor's annotation. Every failure is a ConfigError that names the
field and the fix, raised before anything is written.
"""
from __future__ import annotations

import inspect
import math
from typing import Any

from benchmark.config.fields import Field
from benchmark.errors import ConfigError

#: the smallest number of samples a reported FID may be computed from (the curve's smallest kept subset)
MIN_FID_SAMPLES = 10
#: protocol options that count generated samples: at most run.num_samples (N), never clamped in silence; a default
#: above N (an option left out) is lowered to N (the protocol's "all of them")
SAMPLE_COUNTS = {"guidance.num_samples": "the guided pass re-runs generated samples",
                 "augmentation.num_samples": "the augmentation protocol re-runs generated samples",
                 "ground_truth.target_samples": "the exact targets are computed for generated samples"}


def fit_sample_counts(name: str, merged: dict[str, Any], given: dict[str, Any], n: int, keep: int) -> None:
    """Lower the defaults of protocol `name`'s SAMPLE_COUNTS options that exceed N (in place); given values stay,
    and a given `fid_infinity_points` above the distinct subset sizes of the kept K is refused (the fit would
    silently use fewer)."""
    for key in (k.partition(".")[2] for k in SAMPLE_COUNTS if k.startswith(f"{name}.")):
        if key not in given:
            merged[key] = min(merged[key], n)
    if name == "filtered_fid" and "fid_infinity_points" in given:
        from metrics.fid_infinity import DEFAULT_MIN_FRACTION

        sizes = keep - max(2, int(round(DEFAULT_MIN_FRACTION * keep))) + 1
        if merged["fid_infinity_points"] > sizes:
            raise ConfigError("protocols.filtered_fid.fid_infinity_points", merged["fid_infinity_points"],
                              f"at most the {max(sizes, 0)} distinct subset sizes of the kept K = {keep} (from "
                              f"{DEFAULT_MIN_FRACTION:g} K to K)", f"set fid_infinity_points <= {max(sizes, 2)} or "
                              "raise run.keep")

_ANNOTATED_KINDS = {"int": "int", "float": "float", "bool": "bool", "str": "str", "tuple[int, int]": "list[int]"}


def parameter_rule(cls: type, key: str) -> Field:
    """The typed rule of an estimator parameter from its constructor's annotation (int, float, bool, str,
    tuple[int, int]); other annotations are left to the constructor's own checks."""
    if key == "fit_images":  # a setting of the shared posterior's fit (estimators.requirements), not a parameter
        from estimators.requirements import POSTERIOR_FIT_DEFAULTS

        return Field("int", POSTERIOR_FIT_DEFAULTS["fit_images"], low=1)
    param = inspect.signature(cls.__init__).parameters.get(key)
    annotation = param.annotation if param is not None else None
    kind = _ANNOTATED_KINDS.get(annotation if isinstance(annotation, str) else getattr(annotation, "__name__", ""))
    if kind is None:
        return Field("any")
    default = None if param.default is inspect.Parameter.empty else param.default
    pair = kind == "list[int]"
    return Field(kind, list(default) if pair and default is not None else default, min_len=2 if pair else 0,
                 max_len=2 if pair else None)


def check_protocol_needs(protocols: dict[str, dict[str, Any]], *, steps: int, n: int, keep: int,
                          features: tuple[str, ...]) -> None:
    """Cross-field constraints: a configured protocol must be able to produce what its name says."""
    if not protocols:
        raise ConfigError("protocols", "none enabled", "at least one enabled protocol (a run with none measures "
                          "nothing)", "enable one, e.g. [protocols.filtered_fid], or remove the [protocols] tables "
                          "to run the defaults")
    if len(set(features)) != len(features):
        raise ConfigError("run.features", list(features), "each feature space once",
                          f"set run.features = {sorted(set(features))}")
    for key, why in SAMPLE_COUNTS.items():
        protocol, _, option = key.partition(".")
        if protocols.get(protocol, {}).get(option, 0) > n:
            raise ConfigError(f"protocols.{key}", protocols[protocol][option], f"at most run.num_samples = {n} "
                              f"({why})", f"set protocols.{key} <= {n} or raise run.num_samples")
    subset_protocols = [p for p in ("filtered_fid", "precision_recall") if p in protocols]
    if subset_protocols and not features:
        raise ConfigError("run.features", [], f"at least one feature space for protocols.{subset_protocols[0]}",
                          'set run.features = ["classifier"], or disable the protocol (enabled = false)')
    if subset_protocols and keep >= n:
        raise ConfigError("run.keep", keep, f"K < N = {n} for protocols.{subset_protocols[0]} (keeping every sample "
                          "filters nothing)", "lower run.keep (e.g. 5/6 of N) or disable the protocol")
    if "filtered_fid" in protocols:
        fractions = protocols["filtered_fid"]["curve_fractions"]
        if len(set(fractions)) != len(fractions):
            raise ConfigError("protocols.filtered_fid.curve_fractions", fractions, "distinct fractions (a repeated "
                              "one would repeat its rows)", f"set curve_fractions = {sorted(set(fractions))}")
        smallest = max(2, int(round(min(fractions) * n)))
        if smallest < MIN_FID_SAMPLES:
            raise ConfigError("protocols.filtered_fid.curve_fractions", fractions,
                              f"fractions whose smallest subset has >= {MIN_FID_SAMPLES} samples (the smallest, "
                              f"{min(fractions):g} of N = {n}, has {smallest})",
                              (f"raise the smallest fraction to >= {MIN_FID_SAMPLES / n:.3g} or " if MIN_FID_SAMPLES <= n
                               else "") + f"raise run.num_samples to >= {math.ceil(MIN_FID_SAMPLES / min(fractions))}")
    if "precision_recall" in protocols:
        k = protocols["precision_recall"]["k"]
        if k >= keep:
            raise ConfigError("protocols.precision_recall.k", k, f"k < K = {keep} (the k-th neighbour must exist in "
                              "the kept set)", (f"set k <= {keep - 1} or " if keep > 1 else "") + f"raise run.keep above {k}")


def window_has_steps(window: Any, steps: int, where: str) -> None:
    """A window (a, b) of the 50-step reference grid must hold >= 1 step of a `steps`-step run without being
    moved: by the rule of `estimators.base.scale_window`, step i belongs to it when its midpoint does,
    a/50 <= (i + 1/2)/steps < b/50, and the final step only when b = 50. (scale_window itself keeps the
    nearest step of an empty window; a run that would need that is refused here, before any work.)"""
    from estimators.base import REFERENCE_STEPS, scale_window

    a, b = (int(v) for v in window)
    start, stop = scale_window((a, b), steps)
    held = [i for i in range(start, stop) if a / REFERENCE_STEPS <= (i + 0.5) / steps < b / REFERENCE_STEPS]
    if not held:
        raise ConfigError(where, list(window), f"a window holding >= 1 step of the run's {steps} steps (it spans "
                          f"the fraction [{a / REFERENCE_STEPS:g}, {b / REFERENCE_STEPS:g}) of the trajectory, which holds "
                          f"the midpoint of none of the {steps} steps{'' if b == REFERENCE_STEPS else ' before the final one'})",
                          f"raise run.steps (e.g. to {REFERENCE_STEPS}) or widen the window (e.g. [{a}, 50])")
