"""Config validation: every bad field is named in the error."""
from __future__ import annotations

import pytest

from benchmark.config import load_config, parse_config
from benchmark.errors import ConfigError

BASE = {"run": {"preset": "digits", "num_samples": 12, "keep": 10}}


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
    assert set(cfg.protocols) == {"filtered_fid", "precision_recall", "sparsification", "guidance", "cost", "ground_truth"}
    assert cfg.keep == 10 and cfg.num_samples == 12


def test_keep_fraction_defaults_to_five_sixths():
    cfg = parse_config({"run": {"preset": "digits", "num_samples": 600}})
    assert cfg.keep == 500


@pytest.mark.parametrize("sections, field", [
    ({"run": {"keep": 20}}, "run.keep"),
    ({"run": {"sampler": "euler"}}, "run.sampler"),
    ({"run": {"steps": 0}}, "run.steps"),
    ({"run": {"features": ["vgg"]}}, "run.features"),
    ({"run": {"colour": 1}}, "run.colour"),
    ({"estimators": {"ensemble": {}}}, "estimators.ensemble"),
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
