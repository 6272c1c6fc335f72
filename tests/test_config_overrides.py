"""`run --set section.key=value`: overrides are applied to the file's values before validation (so they are checked
like the file's own), later items win, and bad items are refused with exit 2 and one line before anything is
written."""
from __future__ import annotations

from pathlib import Path

import pytest

from benchmark.config import load_config
from benchmark.config.overrides import apply_overrides, parse_override
from benchmark.errors import ConfigError
from tests.bad_input_cases import Case, assert_refused

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "smoke.toml"


@pytest.mark.parametrize("item, path, value", [
    ("run.num_samples=600", ["run", "num_samples"], 600),
    ("run.sampler=ddpm", ["run", "sampler"], "ddpm"),           # a bare word is a string
    ('run.sampler="ddim"', ["run", "sampler"], "ddim"),
    ("protocols.guidance.window=[40, 50]", ["protocols", "guidance", "window"], [40, 50]),
    ("protocols.sparsification.noise_fraction=0.25", ["protocols", "sparsification", "noise_fraction"], 0.25),
    ("run.features=[\"classifier\"]", ["run", "features"], ["classifier"]),
])
def test_items_parse_as_toml_literals(item, path, value):
    assert parse_override(item) == (path, value)


def test_later_items_win_and_the_input_is_not_changed():
    data = {"run": {"num_samples": 10}}
    out = apply_overrides(data, ["run.num_samples=20", "run.num_samples=30", "estimators.flip.window=[1, 2]"])
    assert out == {"run": {"num_samples": 30}, "estimators": {"flip": {"window": [1, 2]}}}
    assert data == {"run": {"num_samples": 10}}


def test_an_override_lands_in_the_validated_config():
    config = load_config(SMOKE, overrides=["run.num_samples=240", "run.keep=200",
                                           "protocols.sparsification.num_images=8"])
    plain = load_config(SMOKE)
    assert (config.num_samples, config.keep) == (240, 200) and plain.num_samples != 240
    assert config.protocols["sparsification"]["num_images"] == 8
    assert config.to_dict()["run"]["num_samples"] == 240  # what config.json records (a resume compares it)


@pytest.mark.parametrize("item", ["num_samples=5", "run.num_samples", "run..x=1", "run.x=[1,", "=3"])
def test_malformed_items_are_refused(item):
    with pytest.raises(ConfigError, match="--set"):
        apply_overrides({}, [item])


def test_a_key_under_a_value_is_refused():
    with pytest.raises(ConfigError, match="run.num_samples is a value"):
        apply_overrides({"run": {"num_samples": 3}}, ["run.num_samples.x=1"])


CASES = [
    Case("malformed", lambda tmp, mp: ["run", "--config", str(SMOKE), "--out", str(tmp / "o"), "--set", "num_samples"],
         "--set", "--set run.num_samples=600"),
    Case("invalid value checked like the file's", lambda tmp, mp: [
        "run", "--config", str(SMOKE), "--out", str(tmp / "o"), "--set", "run.num_samples=-4"], "num_samples", ""),
    Case("unknown key checked like the file's", lambda tmp, mp: [
        "run", "--config", str(SMOKE), "--out", str(tmp / "o"), "--set", "run.num_sample=40"], "num_sample", ""),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_overrides_exit_2_before_anything_is_written(case, tmp_path, monkeypatch, capsys):
    assert_refused(case, tmp_path, monkeypatch, capsys)
