"""Run configuration: a TOML file read into frozen dataclasses, validated field by field.

    [run]        preset, sampler, steps, num_samples (N), keep (K) or keep_fraction, seed, batch_size,
                 features (["classifier"] and/or "inception"), bootstrap, device
    [estimators.<name>]   the estimator's parameters (any registered estimator; `random` is always added)
    [protocols.<name>]    filtered_fid, precision_recall, sparsification, guidance, cost, ground_truth
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.errors import ConfigError

PROTOCOLS = ("filtered_fid", "precision_recall", "sparsification", "guidance", "cost", "ground_truth")
FEATURES = ("classifier", "inception")
RUN_KEYS = {"preset", "model", "sampler", "steps", "num_samples", "keep", "keep_fraction", "seed", "batch_size",
            "features", "bootstrap", "device", "name", "threads"}
PROTOCOL_KEYS: dict[str, dict[str, Any]] = {
    "filtered_fid": {"curve_fractions": [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]},
    "precision_recall": {"k": 3},
    "sparsification": {"num_images": 64, "noise_fraction": 0.5, "fractions": 50},
    "guidance": {"num_samples": 60, "m": 5, "percentile": 95.0, "strength": 1.0, "window": [45, 49]},
    "cost": {},
    "ground_truth": {"lowest_density_fraction": 0.1},
}


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


@dataclass(frozen=True)
class RunConfig:
    preset: str
    sampler: str = "ddim"
    steps: int = 50
    num_samples: int = 600
    keep: int = 500
    seed: int = 0
    batch_size: int = 50
    features: tuple[str, ...] = ("classifier",)
    bootstrap: int = 200
    device: str = "cpu"
    threads: int = 1
    name: str = "run"
    estimators: tuple[EstimatorSpec, ...] = ()
    protocols: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": {k: getattr(self, k) if not isinstance(getattr(self, k), tuple) else list(getattr(self, k))
                    for k in ("preset", "sampler", "steps", "num_samples", "keep", "seed", "batch_size",
                              "features", "bootstrap", "device", "threads", "name")},
            "estimators": {e.name: {**({"type": e.type} if e.type != e.name else {}), **e.params}
                           for e in self.estimators},
            "protocols": {k: dict(v) for k, v in self.protocols.items()},
        }


def load_config(path: str | Path, *, preset: str | None = None) -> RunConfig:
    """Read and validate a TOML run config; `preset` overrides [run].preset."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("--config", str(path), "an existing TOML file", "give the path of a file such as configs/smoke.toml")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError("--config", str(path), f"valid TOML ({err})", "fix the syntax at the line shown") from None
    return parse_config(data, preset=preset, source=str(path))


def parse_config(data: dict[str, Any], *, preset: str | None = None, source: str = "") -> RunConfig:
    """Validate a config dict (the parsed TOML); every error names the field."""
    unknown_sections = sorted(set(data) - {"run", "estimators", "protocols"})
    if unknown_sections:
        raise ConfigError(unknown_sections[0], "section", "sections are [run], [estimators.*], [protocols.*]")
    run = dict(data.get("run", {}))
    _no_unknown("run", run, RUN_KEYS)
    run_preset = preset or run.get("preset") or run.get("model")
    if not run_preset:
        raise ConfigError("run.preset", None, "a preset name or model folder", "set run.preset (python -m benchmark list)")
    from benchmark.sampling.schedule import SAMPLERS

    sampler = run.get("sampler", "ddim")
    if sampler not in SAMPLERS:
        raise ConfigError("run.sampler", sampler, f"one of {', '.join(SAMPLERS)}", "set run.sampler to one of these")
    steps = _int(run, "steps", 50, low=1)
    n = _int(run, "num_samples", 600, low=2)
    keep = _keep(run, n)
    features = tuple(run.get("features", ["classifier"]))
    for feat in features:
        if feat not in FEATURES:
            raise ConfigError("run.features", feat, f"a list drawn from {list(FEATURES)}",
                              'e.g. run.features = ["classifier"]')
    estimators = _estimators(data.get("estimators", {}), steps)
    protocols = _protocols(data.get("protocols", {k: {} for k in PROTOCOLS}), steps, n)
    return RunConfig(
        preset=str(run_preset), sampler=sampler, steps=steps, num_samples=n, keep=keep,
        seed=_int(run, "seed", 0, low=0), batch_size=_int(run, "batch_size", 50, low=1), features=features,
        bootstrap=_int(run, "bootstrap", 200, low=10), device=str(run.get("device", "cpu")),
        threads=_int(run, "threads", 1, low=1),
        name=str(run.get("name", Path(source).stem or "run")), estimators=estimators, protocols=protocols, source=source)


def _estimators(section: dict[str, Any], steps: int) -> tuple[EstimatorSpec, ...]:
    import estimators as registry
    from estimators.base import scale_window

    specs = []
    for instance, params in section.items():
        params = dict(params or {})
        name = params.pop("type", instance)
        if name not in registry.available():
            field_name = f"estimators.{instance}" + (".type" if "type" in (section[instance] or {}) else "")
            raise ConfigError(field_name, name, f"a registered estimator: {', '.join(registry.available())}",
                              f'set type = "<estimator>" in [estimators.{instance}] for a named variant, or add '
                              "the estimator's module to run.plugins (python -m benchmark list)")
        accepted = set(registry.parameters(name)) - {"laplace"} | ({"fit_images"} if name == "bayesdiff" else set())
        _no_unknown(f"estimators.{instance}", params, accepted)
        build_params = {k: (tuple(v) if isinstance(v, list) else v) for k, v in params.items() if k != "fit_images"}
        try:
            registry.create(name, **build_params)  # validates names and values now, before any work
        except ConfigError as err:
            raise _located(err, f"estimators.{instance}") from None
        if "fit_images" in params:
            _int(params, "fit_images", 500, low=1, section_name=f"estimators.{instance}")
        if "window" in params:
            start, stop = scale_window(tuple(params["window"]), steps)
            if stop > steps:
                raise ConfigError(f"estimators.{instance}.window", params["window"], f"inside the {steps} steps")
        specs.append(EstimatorSpec(instance, params, type=name))
    if "random" not in section:
        specs.insert(0, EstimatorSpec("random", {}))
    return tuple(specs)


def _protocols(section: dict[str, Any], steps: int, n: int) -> dict[str, dict[str, Any]]:
    out = {}
    for name, params in section.items():
        if name not in PROTOCOL_KEYS:
            raise ConfigError(f"protocols.{name}", name, f"one of {', '.join(PROTOCOLS)}", "rename or remove the table")
        params = dict(params or {})
        _no_unknown(f"protocols.{name}", params, set(PROTOCOL_KEYS[name]) | {"enabled"})
        merged = {**PROTOCOL_KEYS[name], **params}
        if not merged.pop("enabled", True):
            continue
        out[name] = merged
    if "guidance" in out:
        from benchmark.guidance import UncertaintyGuidance

        g = out["guidance"]
        try:  # m >= 2, percentile in (0, 100), finite strength, a window inside the 50-step reference grid
            UncertaintyGuidance(m=g["m"], percentile=g["percentile"], strength=g["strength"], window=g["window"])
        except ConfigError as err:
            raise _located(err, "protocols.guidance") from None
        if not isinstance(g["num_samples"], int) or g["num_samples"] < 2:
            raise ConfigError("protocols.guidance.num_samples", g["num_samples"], "an integer >= 2")
    if "filtered_fid" in out:
        for frac in out["filtered_fid"]["curve_fractions"]:
            if not 0 < float(frac) <= 1:
                raise ConfigError("protocols.filtered_fid.curve_fractions", frac, "fractions in (0, 1]")
    if "sparsification" in out:
        s = out["sparsification"]
        if not 0 < float(s["noise_fraction"]) < 1:
            raise ConfigError("protocols.sparsification.noise_fraction", s["noise_fraction"], "a fraction in (0, 1)")
        if not isinstance(s["num_images"], int) or s["num_images"] < 1:
            raise ConfigError("protocols.sparsification.num_images", s["num_images"], "an integer >= 1")
    if "precision_recall" in out:
        k = out["precision_recall"]["k"]
        if not isinstance(k, int) or not 1 <= k < n:
            raise ConfigError("protocols.precision_recall.k", k, f"an integer in [1, num_samples)")
    return out


def _keep(run: dict[str, Any], n: int) -> int:
    if "keep" in run and "keep_fraction" in run:
        raise ConfigError("run.keep", run["keep"], "give either keep (K) or keep_fraction, not both")
    if "keep" in run:
        keep = _int(run, "keep", 1, low=1)
    else:
        frac = float(run.get("keep_fraction", 5 / 6))
        if not 0 < frac <= 1:
            raise ConfigError("run.keep_fraction", frac, "a fraction in (0, 1]")
        keep = max(1, int(round(frac * n)))
    if keep > n:
        raise ConfigError("run.keep", keep, f"K <= N = {n} (you cannot keep more samples than you generate)",
                          "lower run.keep or raise run.num_samples")
    return keep


def _int(section: dict[str, Any], key: str, default: int, *, low: int, section_name: str = "run") -> int:
    value = section.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(f"{section_name}.{key}", value, f"an integer >= {low}", f"set {key} = {max(low, default)}")
    return value


def _located(err: ConfigError, section: str) -> ConfigError:
    """The same error with its field placed in the config, e.g. `m = 1 ...` -> `estimators.sensitivity.m = 1 ...`."""
    located = ConfigError(f"{section}.{err.field}", None, "")
    located.args = (f"{section}.{err}",)
    return located


def _no_unknown(where: str, section: dict[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(section) - allowed)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}", section[unknown[0]], f"known keys are {', '.join(sorted(allowed))}",
                          "correct the spelling or remove the key")
