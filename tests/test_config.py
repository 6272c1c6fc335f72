"""Config validation: every bad field is named in the error."""
from __future__ import annotations

import re

import pytest

from benchmark.config import load_config, parse_config
from benchmark.errors import ConfigError

BASE = {"run": {"preset": "digits", "num_samples": 24, "keep": 20}}


def _with(**sections):
    data = {"run": dict(BASE["run"])}
    for key, value in sections.items():
        if key == "run":
            data["run"].update(value)
        else:
            data[key] = value
    return data


def test_defaults_add_the_random_floor_and_all_protocols():
    cfg = parse_config(_with())
    assert [e.name for e in cfg.estimators] == ["random"]
    # ground_truth needs a preset with an oracle: it runs only when asked for by name
    assert set(cfg.protocols) == {"filtered_fid", "precision_recall", "sparsification", "guidance", "cost"}
    assert cfg.keep == 20 and cfg.num_samples == 24


def test_keep_fraction_defaults_to_five_sixths():
    cfg = parse_config({"run": {"preset": "digits", "num_samples": 600}})
    assert cfg.keep == 500


@pytest.mark.parametrize("sections, field", [
    ({"run": {"keep": 30}}, "run.keep"),
    ({"run": {"sampler": "euler"}}, "run.sampler"),
    ({"run": {"steps": 0}}, "run.steps"),
    ({"run": {"features": ["vgg"]}}, "run.features"),
    ({"run": {"colour": 1}}, "run.colour"),
    ({"estimators": {"no_such_estimator": {}}}, "estimators.no_such_estimator"),
    ({"estimators": {"sensitivity": {"m": 1}}}, "estimators.sensitivity"),
    ({"estimators": {"sensitivity": {"mm": 5}}}, "estimators.sensitivity"),
    ({"protocols": {"guidance": {"percentile": 100}}}, "protocols.guidance.percentile"),
    ({"protocols": {"guidance": {"percentile": 0}}}, "protocols.guidance.percentile"),
    ({"protocols": {"fid": {}}}, "protocols.fid"),
    ({"protocols": {"sparsification": {"noise_fraction": 1.5}}}, "protocols.sparsification.noise_fraction"),
])
def test_bad_fields_are_named(sections, field):
    with pytest.raises(ConfigError) as err:
        parse_config(_with(**sections))
    assert field in str(err.value)


def test_malformed_toml_names_the_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[run\npreset = 'digits'\n")
    with pytest.raises(ConfigError, match="--config"):
        load_config(path)


def test_shipped_configs_parse():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "configs"
    for path in sorted(root.glob("*.toml")):
        cfg = load_config(path)
        assert cfg.keep <= cfg.num_samples, path


@pytest.mark.parametrize("sections, message", [
    # type confusion: TOML is typed, so a value of the wrong type is refused, never truncated or coerced
    ({"protocols": {"guidance": {"window": [45.9, 49]}}}, "protocols.guidance.window = [45.9, 49] is invalid: a list of integers"),
    ({"protocols": {"guidance": {"window": [45.9, "49"]}}}, "protocols.guidance.window"),
    ({"protocols": {"sparsification": {"noise_fraction": "half"}}}, "protocols.sparsification.noise_fraction = 'half' is invalid: a number in (0, 1)"),
    ({"protocols": {"cost": {"enabled": "false"}}}, "protocols.cost.enabled = 'false' is invalid: true or false"),
    ({"run": {"steps": 50.0}}, "run.steps = 50.0 is invalid: an integer >= 1"),
    ({"run": {"steps": True}}, "run.steps = True is invalid"),
    ({"run": {"bootstrap": 5}}, "run.bootstrap = 5 is invalid: an integer in [10, 100000]. Fix: set bootstrap = 200"),
    ({"run": {"bootstrap": 10**9}}, "run.bootstrap = 1000000000 is invalid: an integer in [10, 100000]"),
    ({"run": {"features": "classifier"}}, "run.features = 'classifier' is invalid: a list of strings"),
    ({"run": {"device": "gpu"}}, "run.device = 'gpu' is invalid"),
    ({"run": {"name": "../../x"}}, "run.name = '../../x' is invalid"),
    ({"run": {"keep_fraction": 0}}, "run.keep_fraction = 0 is invalid: a number in (0, 1]"),
    ({"estimators": {"sensitivity": {"m": 2.5}}}, "estimators.sensitivity.m = 2.5 is invalid: an integer"),
    ({"estimators": {"sensitivity": {"window": [45.9, 49]}}}, "estimators.sensitivity.window = [45.9, 49] is invalid"),
    ({"estimators": {"sensitivity": 5}}, "estimators.sensitivity = 5 is invalid: a table of keys"),
    ({"protocols": {"guidance": {"strength": float("nan")}}}, "protocols.guidance.strength = nan is invalid: a number"),
    # cross-field constraints, all before anything runs
    ({"protocols": {"precision_recall": {"k": 20}}}, "protocols.precision_recall.k = 20 is invalid: k < K = 20"),
    ({"protocols": {"sparsification": {"fractions": 0}}}, "protocols.sparsification.fractions = 0 is invalid: an integer >= 2"),
    ({"protocols": {"filtered_fid": {"curve_fractions": [0.01, 1.0]}}},
     "has >= 10 samples (the smallest, 0.01 of N = 24, has 2)"),
    ({"run": {"steps": 1}, "protocols": {"guidance": {}}}, "protocols.guidance.window = [45, 49] is invalid: a window holding >= 1 step of the run's 1 steps"),
    ({"run": {"steps": 5}, "estimators": {"sensitivity": {"window": [45, 49]}}}, "estimators.sensitivity.window"),
    ({"run": {"features": []}, "protocols": {"filtered_fid": {}}}, "run.features = [] is invalid: at least one feature space"),
    ({"run": {"keep": 24}, "protocols": {"filtered_fid": {}}}, "run.keep = 24 is invalid: K < N = 24 for protocols.filtered_fid"),
])
def test_typed_fields_and_cross_field_constraints(sections, message):
    with pytest.raises(ConfigError) as err:
        parse_config(_with(**sections))
    assert message in str(err.value), str(err.value)
    assert "Fix: " in str(err.value)


def test_float_fields_take_ints_and_windows_scale_to_step_counts():
    cfg = parse_config(_with(protocols={"guidance": {"percentile": 90, "strength": 2}}))
    assert cfg.protocols["guidance"]["percentile"] == 90.0 and isinstance(cfg.protocols["guidance"]["strength"], float)
    # (45, 49) of 50 steps = fractions [0.9, 0.98): step midpoints (i + 1/2)/n inside it, the final step excluded
    # (by hand: 15 -> 13.5/15 = 0.9, 20 -> 18.5/20, 25 -> 22.5/25, 100 -> 90.5/100 lie inside; 14 -> 12.5/14 = 0.893
    # and 10 -> 8.5/10 lie below, and the next midpoint is the final step's)
    for steps in (15, 20, 25, 50, 100):
        assert parse_config(_with(run={"steps": steps}, protocols={"guidance": {}})).steps == steps
    for steps in (1, 2, 5, 10, 14):
        with pytest.raises(ConfigError, match="holding >= 1 step"):
            parse_config(_with(run={"steps": steps}, protocols={"guidance": {}}))


def test_config_must_be_utf8(tmp_path):
    path = tmp_path / "utf16.toml"
    path.write_text('[run]\npreset = "digits"\n', encoding="utf-16")
    with pytest.raises(ConfigError, match="a UTF-8 text file .*UTF-16.*Fix: save the file as UTF-8"):
        load_config(path)
    path.write_bytes('\ufeff[run]\npreset = "digits"\nnum_samples = 24\nkeep = 20\n'.encode("utf-8"))  # BOM is fine
    assert load_config(path).preset == "digits"


def test_the_precision_recall_k_message_gives_a_fix_that_works():
    """k >= K: the fix names a k that is valid for this K (it once said "set k = 3" when K = 3)."""
    for keep, fix in ((3, "set k <= 2 or raise run.keep above 3"), (1, "Fix: raise run.keep above 3")):
        with pytest.raises(ConfigError, match=re.escape(fix)):
            parse_config({"run": {"preset": "digits", "num_samples": 12, "keep": keep},
                          "protocols": {"precision_recall": {"k": 3}}})


def test_run_model_is_only_another_spelling_of_run_preset():
    """run.model = 5 beside run.preset was silently ignored."""
    for run in ({"preset": "digits", "model": 5}, {"preset": "digits", "model": "fashion"}, {"model": 5}):
        with pytest.raises(ConfigError, match=r"run\.model = .* Fix: remove run\.model and set run\.preset"):
            parse_config({"run": run})
    assert parse_config({"run": {"model": "digits"}}).preset == "digits"
