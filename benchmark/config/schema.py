"""Run configuration: a TOML file read into frozen dataclasses, validated field by field.

    [run]        preset, sampler, steps, num_samples (N), keep (K) or keep_fraction, seed, batch_size,
                 features (["classifier"] and/or "inception"), bootstrap, device, plugins (modules / .py files
                 imported before validation, benchmark.config.plugins)
    [model]      path, num_classes, last_layer (benchmark.models.loading.ModelSpec; replaces run.preset's model)
    [data]       name or path, reference_stats (benchmark.data.user_data.DataSpec; replaces run.preset's data)
    [estimators.<name>]   the estimator's parameters (any registered estimator; `random` is always added);
                 `type = "<registered estimator>"` makes <name> a named variant (a second instance)
    [protocols.<name>]    filtered_fid, precision_recall, sparsification, guidance, cost, ground_truth
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import tomllib

from benchmark.config.checks import MIN_FID_SAMPLES, check_protocol_needs, fit_sample_counts, parameter_rule, window_has_steps  # noqa: F401
from benchmark.config.estimator_tables import EstimatorSpec  # noqa: F401 (re-exported)
from benchmark.config.estimator_tables import check_application_needs as _check_application_needs
from benchmark.config.estimator_tables import estimator_specs as _estimators
from benchmark.config.fields import Field, check, default_of
from benchmark.config.fields import located as _located
from benchmark.config.fields import no_unknown as _no_unknown
from benchmark.config.fields import unknown_section as _unknown_section
from benchmark.config.fields import table as _table
from benchmark.config.overrides import apply_overrides
from benchmark.config.seeds import check_seeds, with_seeds
from benchmark.errors import ConfigError

PROTOCOLS = ("filtered_fid", "precision_recall", "sparsification", "guidance", "cost", "ground_truth",
             "augmentation", "rectification", "hallucination", "failure_labels", "conformal", "ensemble_agreement")
FEATURES = ("classifier", "inception")
RUN_KEYS = {"preset", "model", "sampler", "steps", "num_samples", "keep", "keep_fraction", "seed", "batch_size",
            "features", "bootstrap", "device", "name", "threads", "plugins",
            "guidance_scale", "prompts", "prompts_file", "pixel_maps", "decoder_mc_samples",  # these 5: issue 13
            "multiplicity", "seeds", "autocast"}  # seeds: replicates (benchmark.config.seeds); autocast: issue 35
SECTIONS = ("run", "model", "data", "estimators", "protocols")
PROTOCOL_KEYS: dict[str, dict[str, Any]] = {
    "filtered_fid": {"curve_fractions": [0.5, 0.6, 0.7, 0.8, 0.9, 1.0], "fid_infinity_points": 5,
                     "random_subsets": 100},
    "precision_recall": {"k": 3},
    "sparsification": {"num_images": 64, "noise_fraction": 0.5, "fractions": 50, "noise_draws": 4},
    "guidance": {"num_samples": 60, "m": 5, "percentile": 95.0, "strength": 1.0, "window": [45, 49],
                 "center": "mean", "clip_x0": False, "thresholds": "per_image", "calibration_samples": 100},
    "cost": {},
    "ground_truth": {"lowest_density_fraction": 0.1, "between_mode_responsibility": 0.9, "target_samples": 64,
                     "weight_draws": 32, "calibration_skips": [1, 5]},
    # issue 15 (benchmark/protocols/{augmentation,rectification}.py); steps counted from the end of a
    # 50-step run, scaled to run.steps
    "augmentation": {"num_samples": 16, "variants": 6, "cut_step": 40},
    "rectification": {"percentile": 90.0, "tries": 4, "renoise_step": 20, "mask_percentile": 80.0},
    # issue 32 (benchmark/protocols/hallucination.py): exact labels on the grid25 preset, per sampler and steps
    "hallucination": {"samplers": ["ddim", "ddpm"], "steps": [50], "num_samples": 1000, "k_sigma": 6.0,
                      "retention": 0.96, "exact_contrast": True},
    # issue 32 (benchmark/protocols/failure_labels.py): off-manifold and misclassified samples of image presets
    "failure_labels": {"space": "classifier", "k": 3, "retention": 0.96},
    # issue 32 (benchmark/protocols/conformal.py): split-conformal pixel intervals, risk control for filtering
    "conformal": {"alpha": 0.1, "samples": True, "space": "classifier", "k": 3},
    # issue 33 (benchmark/protocols/ensemble_agreement.py): epistemic estimators against the run's ensemble
    "ensemble_agreement": {},
}
#: the protocols of a config without [protocols]: every one that any preset can run (ground_truth needs a
#: preset with an oracle: ask for it by name)
DEFAULT_PROTOCOLS = tuple(p for p in PROTOCOLS if p not in ("ground_truth", "augmentation", "rectification",
                                                             "hallucination", "failure_labels",
                                                             "conformal", "ensemble_agreement"))
#: typed rules of [run] fields (benchmark.config.fields.Field); a key of RUN_KEYS without a rule is checked by
#: the code that reads it
RUN_FIELDS: dict[str, Field] = {
    "steps": Field("int", 50, low=1),
    "num_samples": Field("int", 600, low=2, high=10**6, fix="set num_samples = 600 (at most 1000000: every sample is held in memory)"),
    "keep": Field("int", 500, low=1),
    "keep_fraction": Field("float", 5 / 6, low=0, high=1, open_low=True, fix="e.g. keep_fraction = 0.833 (5/6, as in the papers)"),
    "seed": Field("int", 0, low=0),
    "batch_size": Field("int", 50, low=1),
    "features": Field("list[str]", ["classifier"], choices=FEATURES, fix='e.g. run.features = ["classifier"]'),
    "bootstrap": Field("int", 200, low=10, high=100_000, fix="set bootstrap = 200 (at most 100000 replicates)"),
    "multiplicity": Field("str", "holm", choices=("holm", "bh", "none"),
                          fix='set run.multiplicity = "holm" (family-wise error, the default), "bh" (false discovery '
                              'rate) or "none"'),
    "device": Field("str", "cpu", pattern=r"cpu|cuda(:[0-9]+)?|mps", fix='set run.device = "cpu" (or "cuda", "cuda:1")'),
    "autocast": Field("str", "off"),  # values and device checked by benchmark.models.precision.check_autocast
    "threads": Field("int", 1, low=1, high=1024, fix="set threads = 1 (at most 1024; about the CPU cores of the machine)"),
    "name": Field("str", "run", pattern=r"[A-Za-z0-9][A-Za-z0-9._+-]*",
                  fix='use a plain folder name (letters, digits, . _ + -; no "/" or ".."), e.g. name = "smoke"'),
    "preset": Field("str", None, pattern=r"\S.*", fix="set run.preset (python -m benchmark list)"),
    "sampler": Field("str", "ddim"),
    # issue 13: classifier-free guidance, prompts of text-conditioned models, pixel maps of latent models
    "guidance_scale": Field("float", 1.0, fix="e.g. run.guidance_scale = 3 (1 = no guidance)"),
    "prompts": Field("list[str]", None, min_len=1, fix='e.g. run.prompts = ["a photo of a cat"]'),
    "prompts_file": Field("str", None, pattern=r"\S.*", fix='e.g. run.prompts_file = "prompts.txt" (one per line)'),
    "pixel_maps": Field("str", "upsample", choices=("upsample", "decoder_mc")),
    "decoder_mc_samples": Field("int", 8, low=2),
}
#: ranges of protocol fields, keyed "protocol.key" (types and defaults come from PROTOCOL_KEYS: a key added
#: there without a rule here is still type-checked against its default's type)
PROTOCOL_RULES: dict[str, Field] = {
    "filtered_fid.curve_fractions": Field("list[float]", low=0, high=1, open_low=True, min_len=1),
    "filtered_fid.random_subsets": Field("int", low=100, fix="set protocols.filtered_fid.random_subsets = 100 (or more: "
                                                              "the random K-subsets the floor is averaged over)"),
    "filtered_fid.fid_infinity_points": Field("int", low=2, fix="set protocols.filtered_fid.fid_infinity_points = 5 "
                                                                "(subset sizes of the FID∞ fit; 15 in the paper)"),
    "precision_recall.k": Field("int", low=1),
    "sparsification.num_images": Field("int", low=1),
    "sparsification.noise_fraction": Field("float", low=0, high=1, open_low=True, open_high=True),
    "sparsification.fractions": Field("int", low=2),
    "sparsification.noise_draws": Field("int", low=1, high=64, fix="set protocols.sparsification.noise_draws = 4 "
                                        "(noise draws per image: the target is the expected error over them)"),
    "guidance.num_samples": Field("int", low=2),
    "guidance.m": Field("int", low=2),
    "guidance.percentile": Field("float", low=0, high=100, open_low=True, open_high=True),
    "guidance.window": Field("list[int]", low=0, high=50, min_len=2, max_len=2,
                             fix="give [start, stop] with 0 <= start < stop <= 50 (steps of a 50-step run)"),
    "ground_truth.lowest_density_fraction": Field("float", low=0, high=1, open_low=True, open_high=True),
    "ground_truth.between_mode_responsibility": Field("float", low=0, high=1, open_low=True, open_high=True),
    "ground_truth.target_samples": Field("int", low=2),
    "ground_truth.weight_draws": Field("int", low=2),
    "ground_truth.calibration_skips": Field("list[int]", low=1, min_len=0),
    "guidance.center": Field("str", choices=("mean", "prediction")),
    "guidance.thresholds": Field("str", choices=("per_image", "calibrated"),
                                 fix='set thresholds = "per_image" (per-image percentile) or "calibrated" (Alg. 2 tau_t)'),
    "guidance.calibration_samples": Field("int", low=2),
    "augmentation.num_samples": Field("int", low=1),
    "augmentation.variants": Field("int", low=2),
    "augmentation.cut_step": Field("int", low=1, high=49, fix="give the steps left at the cut, of a 50-step run "
                                   "(40 = the default of the application's public code)"),
    "rectification.percentile": Field("float", low=0, high=100, open_low=True, open_high=True),
    "rectification.tries": Field("int", low=1),
    "rectification.renoise_step": Field("int", low=1, high=49, fix="give the steps left at the re-noising step, "
                                        "of a 50-step run (20 = t of about 400 of 1000)"),
    "rectification.mask_percentile": Field("float", low=0, high=100, open_low=True, open_high=True),
    "hallucination.samplers": Field("list[str]", choices=("ddim", "ddpm", "dpm2"), min_len=1,
                                    fix='e.g. protocols.hallucination.samplers = ["ddim", "ddpm"]'),
    "hallucination.steps": Field("list[int]", low=2, high=1000, min_len=1,
                                 fix="e.g. protocols.hallucination.steps = [50] (step counts, each 2..1000)"),
    "hallucination.num_samples": Field("int", low=10, high=10**6,
                                       fix="set protocols.hallucination.num_samples = 1000 (samples per sampler)"),
    "hallucination.k_sigma": Field("float", low=0, open_low=True,
                                   fix="set protocols.hallucination.k_sigma = 6 (hallucination: farther than k sigma "
                                       "from every mode)"),
    "hallucination.retention": Field("float", low=0, high=1, open_low=True, open_high=True,
                                     fix="set protocols.hallucination.retention = 0.96 (the paper's operating point)"),
    "failure_labels.space": Field("str", choices=FEATURES, fix='set protocols.failure_labels.space = "classifier"'),
    "failure_labels.k": Field("int", low=1, fix="set protocols.failure_labels.k = 3 (the k-NN balls of improved "
                                                 "precision)"),
    "failure_labels.retention": Field("float", low=0, high=1, open_low=True, open_high=True,
                                      fix="set protocols.failure_labels.retention = 0.96"),
    "conformal.alpha": Field("float", low=0, high=1, open_low=True, open_high=True,
                             fix="set protocols.conformal.alpha = 0.1 (intervals cover 90 %)"),
    "conformal.space": Field("str", choices=FEATURES, fix='set protocols.conformal.space = "classifier"'),
    "conformal.k": Field("int", low=1, fix="set protocols.conformal.k = 3"),
}


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
    model: Any = None  # benchmark.models.loading.ModelSpec of a [model] section (None: the preset's model)
    data: Any = None  # benchmark.data.user_data.DataSpec of a [data] section (None: the preset's data)
    plugins: tuple[str, ...] = ()  # run.plugins: module names as written, .py files as absolute paths
    guidance_scale: float = 1.0  # classifier-free guidance w (1 = off); benchmark.models.guided
    prompts: tuple[str, ...] = ()  # of a text-conditioned model (run.prompts, or read from run.prompts_file)
    prompts_file: str | None = None
    pixel_maps: str = "upsample"  # pixel-space maps of a latent model: "upsample" or "decoder_mc"
    decoder_mc_samples: int = 8  # K decoded draws per sample for "decoder_mc"
    multiplicity: str = "holm"  # how the report's verdicts control their error: holm | bh | none
    seeds: tuple[int, ...] = ()  # run.seeds: replicates, one run per seed (benchmark.runner.replicates); () = one run
    autocast: str = "off"  # network forward calls under torch.autocast: off | bf16 | fp16 (benchmark.models.precision)
    #: why run.features is what it is when the config did not give it ("" when it did); the manifest records it
    features_chosen: str = field(default="", compare=False)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "run": {k: getattr(self, k) if not isinstance(getattr(self, k), tuple) else list(getattr(self, k))
                    for k in ("preset", "sampler", "steps", "num_samples", "keep", "seed", "batch_size",
                              "features", "bootstrap", "device", "threads", "name", "multiplicity")},
            "estimators": {e.name: {**({"type": e.type} if e.type != e.name else {}), **e.params}
                           for e in self.estimators},
            "protocols": {k: dict(v) for k, v in self.protocols.items()},
        }
        if self.plugins:
            out["run"]["plugins"] = list(self.plugins)
        for key, default in (("guidance_scale", 1.0), ("prompts", ()), ("prompts_file", None),
                             ("pixel_maps", "upsample"), ("decoder_mc_samples", 8), ("seeds", ()), ("autocast", "off")):
            if getattr(self, key) != default:
                out["run"][key] = list(getattr(self, key)) if key in ("prompts", "seeds") else getattr(self, key)
        for section in ("model", "data"):
            if getattr(self, section) is not None:
                out[section] = {("range" if k == "value_range" else k): v  # as written in the [data] table
                                for k, v in asdict(getattr(self, section)).items() if v is not None}
        return out


def _model_and_data(data: dict[str, Any], run_preset: Any, base_dir: Path | None) -> tuple[Any, Any, Any]:
    """(ModelSpec | None, DataSpec | None, preset name | None) of the [model] and [data] sections; a run.preset
    naming a model folder (not a preset) stands for [model] path = that folder."""
    from benchmark.data.user_data import data_spec_from_section
    from benchmark.models.loading import model_spec_from_section

    model_section = _section(data, "model")
    if "model" not in data and isinstance(run_preset, str) and _is_model_folder(run_preset, base_dir):
        model_section, run_preset = {"path": run_preset}, None
    model = model_spec_from_section(model_section, base_dir=base_dir) if model_section or "model" in data else None
    data_spec = data_spec_from_section(_section(data, "data"), base_dir=base_dir) if "data" in data else None
    if data_spec is not None and model is None and not run_preset:
        raise ConfigError("data", data_spec.label, "a [data] section beside a model",
                          "add a [model] section with path = ..., or set run.preset")
    return model, data_spec, run_preset


def _is_model_folder(name: str, base_dir: Path | None) -> bool:
    from benchmark import presets

    if name in presets.names():
        return False
    path = Path(name).expanduser()
    return any(p.is_dir() for p in ([path] if path.is_absolute() or base_dir is None else [base_dir / path, path]))


def load_config(path: str | Path, *, preset: str | None = None, overrides: Sequence[str] = ()) -> RunConfig:
    """Read and validate a TOML run config; `preset` overrides [run].preset, `overrides` are `--set` items
    (benchmark.config.overrides) applied to the file's values before validation."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("--config", str(path), "an existing TOML file", "give the path of a file such as configs/smoke.toml")
    try:
        text = path.read_bytes().decode("utf-8-sig")  # UTF-8, with or without a byte-order mark
    except UnicodeDecodeError as err:
        guess = "it looks like UTF-16" if path.read_bytes()[:2] in (b"\xff\xfe", b"\xfe\xff") else "binary or another encoding"
        raise ConfigError("--config", str(path), f"a UTF-8 text file (byte {err.start} is not UTF-8; {guess})",
                          "save the file as UTF-8") from None
    except OSError as err:
        raise ConfigError("--config", str(path), f"a readable file ({err.strerror})", "check its permissions") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError("--config", str(path), f"valid TOML ({err})", "fix the syntax at the line shown") from None
    return parse_config(apply_overrides(data, overrides), preset=preset, source=str(path))


def parse_config(data: dict[str, Any], *, preset: str | None = None, source: str = "") -> RunConfig:
    """Validate a config dict (the parsed TOML); every error names the field."""
    unknown_sections = sorted(set(data) - set(SECTIONS))
    if unknown_sections:
        _unknown_section(unknown_sections[0], data[unknown_sections[0]])
    run = _section(data, "run")
    _no_unknown("run", run, RUN_KEYS)
    from benchmark.config.plugins import load_plugins, resolved_plugins

    base_dir = Path(source).resolve().parent if source else None
    load_plugins(run.get("plugins", []), base_dir=base_dir)  # before [estimators.*] names are checked
    plugins = resolved_plugins(run.get("plugins", ()), base_dir)  # .py paths absolute: config.json reads back anywhere
    typed = {key: check(RUN_FIELDS[key], run[key], f"run.{key}") for key in run if key in RUN_FIELDS}
    seeds = _seeds(run)
    if "model" in run and (not isinstance(run["model"], str) or typed.get("preset") not in (None, run["model"])):
        raise ConfigError("run.model", run["model"], "a preset name or model folder, and only instead of run.preset "
                          "(it is another spelling of it)", "remove run.model and set run.preset")
    run_preset = preset or typed.get("preset") or run.get("model")
    model, data_spec, run_preset = _model_and_data(data, run_preset, base_dir)
    if not run_preset and model is None:
        raise ConfigError("run.preset", None, "a preset name or model folder",
                          "set run.preset (python -m benchmark list) or add a [model] section with path = ...")
    features_chosen = ""
    if model is not None and not run_preset and "features" not in typed:
        typed["features"], features_chosen = _default_features(data_spec)
    from benchmark.sampling.schedule import SAMPLERS

    sampler = typed.get("sampler", "ddim")
    if sampler not in SAMPLERS:
        raise ConfigError("run.sampler", sampler, f"one of {', '.join(SAMPLERS)}", "set run.sampler to one of these")

    def value(key: str) -> Any:
        return typed[key] if key in typed else default_of(RUN_FIELDS[key])

    steps, n = value("steps"), value("num_samples")
    keep = _keep(typed, n)
    features = tuple(value("features"))
    estimators = _estimators(_section(data, "estimators"), steps)
    protocols = _protocols(_section(data, "protocols") if "protocols" in data else dict.fromkeys(DEFAULT_PROTOCOLS, {}),
                           steps, n, keep)
    check_protocol_needs(protocols, steps=steps, n=n, keep=keep, features=features)
    _check_application_needs(protocols, estimators)
    config = RunConfig(
        preset=str(run_preset or ""), model=model, data=data_spec, plugins=plugins, sampler=sampler, steps=steps,
        num_samples=n, keep=keep,
        seed=value("seed"), batch_size=value("batch_size"), features=features,
        bootstrap=value("bootstrap"), device=value("device"), threads=value("threads"),
        autocast=_autocast(value("autocast"), value("device")),
        multiplicity=value("multiplicity"), name=str(typed.get("name", Path(source).stem or "run")), estimators=estimators, protocols=protocols, source=source,
        features_chosen=features_chosen, **_conditioning(typed, base_dir))
    return with_seeds(config, seeds) if seeds else config


def _autocast(mode: str, device: str) -> str:
    from benchmark.models.precision import check_autocast  # imported when used: it loads the model adapters
    return check_autocast(mode, device)  # its values, and "fp16" only with run.device = "cuda"


def _default_features(data_spec: Any) -> tuple[list[str], str]:
    """(run.features, why) of a `[model]` run that gives none: the domain classifier beside its data when one is
    there (`DataSpec.classifier_file`, what `train --what classifier --data` writes), else the Inception space."""
    classifier = data_spec.classifier_file() if data_spec is not None and data_spec.path is not None else None
    if classifier is not None:
        return ["classifier"], (f"run.features defaulted to [\"classifier\"]: the domain classifier beside the data "
                                f"({classifier}) serves the classifier space")
    return ["inception"], ("run.features defaulted to [\"inception\"]: no domain classifier beside the data (train one "
                           "with `python -m benchmark train --what classifier --data PATH` for a faster run)")


def _seeds(run: dict[str, Any]) -> tuple[int, ...]:
    """run.seeds checked (benchmark.config.seeds); it replaces run.seed, so not both."""
    if "seeds" not in run:
        return ()
    seeds = check_seeds(run["seeds"])
    if "seed" in run:
        raise ConfigError("run.seeds", run["seeds"], "either run.seed or run.seeds, not both",
                          "remove run.seed (each replicate runs with one seed of run.seeds)")
    return seeds


def _conditioning(typed: dict[str, Any], base_dir: Path | None) -> dict[str, Any]:
    """Issue 13's [run] fields: guidance_scale, prompts (run.prompts or the lines of run.prompts_file, relative
    to the config's folder), pixel_maps, decoder_mc_samples."""
    from benchmark.models.conditioning import read_prompts

    prompts_file = typed.get("prompts_file")
    if prompts_file is not None and base_dir is not None and not Path(prompts_file).expanduser().is_absolute() \
            and (base_dir / prompts_file).is_file():
        prompts_file = str(base_dir / prompts_file)
    return {"guidance_scale": float(typed.get("guidance_scale", 1.0)), "prompts_file": prompts_file,
            "prompts": tuple(read_prompts(typed.get("prompts"), prompts_file)),
            "pixel_maps": typed.get("pixel_maps", "upsample"), "decoder_mc_samples": int(typed.get("decoder_mc_samples", 8))}


def _protocols(section: dict[str, Any], steps: int, n: int, keep: int) -> dict[str, dict[str, Any]]:
    out = {}
    for name, params in section.items():
        if name not in PROTOCOL_KEYS:
            raise ConfigError(f"protocols.{name}", name, f"one of {', '.join(PROTOCOLS)}", "rename or remove the table")
        params = _table(params, f"protocols.{name}")
        _no_unknown(f"protocols.{name}", params, set(PROTOCOL_KEYS[name]) | {"enabled"})
        if not check(Field("bool", True), params.pop("enabled", True), f"protocols.{name}.enabled"):
            continue
        merged = {key: default_of(default) for key, default in PROTOCOL_KEYS[name].items()}
        for key, value in params.items():
            rule = PROTOCOL_RULES.get(f"{name}.{key}")
            rule = replace(rule, default=merged[key]) if rule is not None else PROTOCOL_KEYS[name][key]
            merged[key] = check(rule, value, f"protocols.{name}.{key}")
        fit_sample_counts(name, merged, params, n, keep)  # a default (guidance's 60) never asks for more than N
        out[name] = merged
    if "guidance" in out:
        from estimators.guidance import UncertaintyGuidance

        g = out["guidance"]
        try:  # m >= 2, percentile in (0, 100), finite strength, a window inside the 50-step reference grid
            UncertaintyGuidance(m=g["m"], percentile=g["percentile"], strength=g["strength"], window=g["window"])
        except ConfigError as err:
            raise _located(err, "protocols.guidance") from None
        window_has_steps(g["window"], steps, "protocols.guidance.window")
    return out


def _keep(run: dict[str, Any], n: int) -> int:
    if "keep" in run and "keep_fraction" in run:
        raise ConfigError("run.keep", run["keep"], "give either keep (K) or keep_fraction, not both",
                          "remove one of run.keep and run.keep_fraction")
    if "keep" in run:
        keep = run["keep"]
    else:
        keep = max(1, int(round(run.get("keep_fraction", 5 / 6) * n)))
    if keep > n:
        raise ConfigError("run.keep", keep, f"K <= N = {n} (you cannot keep more samples than you generate)",
                          "lower run.keep or raise run.num_samples")
    return keep


def _section(data: dict[str, Any], name: str) -> dict[str, Any]:
    return _table(data.get(name, {}), name)
