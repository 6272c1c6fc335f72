"""Estimator plug-ins (files, modules, entry points), named variants on one shared trajectory, bad plug-ins.

Plug-ins are real files in a temporary folder named by the config; the entry-point test installs a
distribution the standard way (a folder with a .dist-info on the PYTHONPATH of a fresh process).
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
import torch

import estimators
from benchmark.cli import main
from benchmark.config import load_config, parse_config
from benchmark.errors import ConfigError
from benchmark.runner.resources import EstimatorFactory, estimator_factory
from benchmark.runner.setup import extra_presets
from benchmark.sampling import sample
from tests.helpers import tiny_unet

PLUGIN = textwrap.dedent('''
    import torch
    from estimators import EstimatorResult, UncertaintyEstimator, register

    @register("{name}")
    class Spread(UncertaintyEstimator):
        """Per-pixel |eps| at the last step, times `scale`; score = sum of the map."""

        kind = "heuristic"

        def __init__(self, scale: float = 1.0):
            self.scale = scale

        def observe(self, step):
            if step.index == step.num_steps - 1:
                self.map = self.scale * step.eps.abs()

        def result(self):
            return EstimatorResult(pixel=self.map, score=self.map.flatten(1).sum(1))
''')
BAD_PLUGINS = {
    "raises.py": ("raise RuntimeError('boom at import')", "RuntimeError: boom at import"),
    "not_estimator.py": ("from estimators import register\n@register('plain')\nclass Plain:\n    pass\n",
                         "not a subclass of estimators.UncertaintyEstimator"),
    "clash.py": ("from estimators import UncertaintyEstimator, register\n@register('sensitivity')\n"
                 "class Mine(UncertaintyEstimator):\n    def observe(self, step): ...\n    def result(self): ...\n",
                 "an estimator named 'sensitivity' is already registered"),
}


def write_config(folder, body: str):
    path = folder / "config.toml"
    path.write_text(textwrap.dedent(body))
    return path


def test_file_plugin_with_named_variants(tmp_path, clean_registry):
    (tmp_path / "spread.py").write_text(PLUGIN.format(name="spread_h4"))
    config = load_config(write_config(tmp_path, """
        [run]
        preset = "digits"
        plugins = ["spread.py"]
        [estimators.spread_h4]
        [estimators.spread_x3]
        type = "spread_h4"
        scale = 3.0
        [protocols.cost]
    """))
    assert [(e.name, e.type, e.params) for e in config.estimators] == [
        ("random", "random", {}), ("spread_h4", "spread_h4", {}), ("spread_x3", "spread_h4", {"scale": 3.0})]
    assert config.to_dict()["estimators"]["spread_x3"] == {"type": "spread_h4", "scale": 3.0}
    assert estimators.registry.origin("spread_h4") == f"plug-in {tmp_path / 'spread.py'}"
    load_config(tmp_path / "config.toml")  # a second load (torchrun workers, resume) imports the file once

    made = EstimatorFactory({"spread_h4": {}, "spread_x3": {"scale": 3.0}}, types={"spread_x3": "spread_h4"})()
    model = __import__("benchmark.models", fromlist=["DiffusersUNet"]).DiffusersUNet(tiny_unet())
    x_T = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = sample(model, x_T, steps=3, estimators=made)
    assert set(out.uncertainty) == {"spread_h4", "spread_x3"}
    torch.testing.assert_close(out.uncertainty["spread_x3"].pixel, 3 * out.uncertainty["spread_h4"].pixel)

    listing = subprocess.run([sys.executable, "-m", "benchmark", "list", "--plugins", "spread.py"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert listing.returncode == 0, listing.stderr
    table = listing.stdout.split("[estimators.spread_h4]", 1)[1].split("\n\n", 1)[0]
    assert f"[plug-in {tmp_path / 'spread.py'}]" in table and "\nscale = 1.0" in table
    assert "sensitivity" in listing.stdout and "[built-in]" in listing.stdout
    assert "[protocols.precision_recall]\nk = 3" in listing.stdout  # protocols with their parameters and defaults


def test_named_variants_share_the_trajectory_and_match_solo_runs(tmp_path):
    """Two sensitivity instances (m = 2 and m = 4) in one pass: the same x0 as a pass without estimators, and
    each map equals the one the same instance gives when it runs alone."""
    config = parse_config({"run": {"preset": "digits", "steps": 10},
                           "estimators": {"sensitivity": {"m": 2, "window": [0, 50]},
                                          "sens_m4": {"type": "sensitivity", "m": 4, "window": [0, 50]}},
                           "protocols": {"cost": {}}})
    model = __import__("benchmark.models", fromlist=["DiffusersUNet"]).DiffusersUNet(tiny_unet())
    factory = estimator_factory(config, model, None, progress=False)
    x_T = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        shared = sample(model, x_T, steps=4, estimators=factory())
        plain = sample(model, x_T, steps=4)
        for name in ("sensitivity", "sens_m4"):
            [solo] = [e for e in factory() if e.name == name]
            alone = sample(model, x_T, steps=4, estimators=[solo]).uncertainty[name]
            torch.testing.assert_close(shared.uncertainty[name].pixel, alone.pixel, rtol=0, atol=0)
    torch.testing.assert_close(shared.x0, plain.x0, rtol=0, atol=0)
    assert shared.uncertainty["sensitivity"].nfe == 2 * 4 and shared.uncertainty["sens_m4"].nfe == 4 * 4


@pytest.mark.parametrize("case", [*BAD_PLUGINS, "missing_module", "missing_file", "variant_without_type"])
def test_bad_plugins_exit_2_with_one_line_before_anything_is_written(tmp_path, capsys, clean_registry, case):
    plugins, estimators_table = '["spread.py"]', "[estimators.spread_b]\ntype = \"spread_b\""
    (tmp_path / "spread.py").write_text(PLUGIN.format(name="spread_b"))
    if case in BAD_PLUGINS:
        (tmp_path / case).write_text(BAD_PLUGINS[case][0])
        plugins, expected = f'["{case}"]', BAD_PLUGINS[case][1]
    elif case == "missing_module":
        plugins, expected = '["no_such_package_h4.estimators"]', "ModuleNotFoundError"
    elif case == "missing_file":
        plugins, expected = '["nowhere/else.py"]', "an existing .py file"
    else:
        estimators_table, expected = "[estimators.spread_m9]\nscale = 9.0", "estimators.spread_m9 = 'spread_m9'"
    config = write_config(tmp_path, f'[run]\npreset = "digits"\nplugins = {plugins}\n{estimators_table}\n')
    out = tmp_path / "run"
    assert main(["run", "--config", str(config), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err and "Fix:" in err, err
    field = "estimators.spread_m9" if case == "variant_without_type" else "run.plugins"
    assert err.startswith(f"error: {field} = ")  # the field first, then the value and the fix
    if case == "variant_without_type":
        assert 'set type = "<estimator>" in [estimators.spread_m9]' in err
    assert not out.exists()


def test_extra_presets_refuse_what_is_not_a_preset(monkeypatch):
    monkeypatch.setenv("UQBENCH_EXTRA_PRESETS", "estimators.sensitivity:SensitivityEstimator")
    with pytest.raises(ConfigError, match="SensitivityEstimator is an estimator class"):
        extra_presets()
    monkeypatch.setenv("UQBENCH_EXTRA_PRESETS", "benchmark.models:DiffusersUNet")
    with pytest.raises(ConfigError, match="UQBENCH_EXTRA_PRESETS = 'benchmark.models:DiffusersUNet'"):
        extra_presets()
    monkeypatch.setenv("UQBENCH_EXTRA_PRESETS", "tests.toy_preset:ToyPreset")
    assert list(extra_presets()) == ["toy"]


def test_entry_points_of_an_installed_distribution(tmp_path):
    """A distribution advertising an estimator module, an estimator class and a preset; a fresh process lists
    them with their origin and runs a config naming the estimator without any plugins line."""
    site = tmp_path / "site"
    (site / "uqplug").mkdir(parents=True)
    (site / "uqplug" / "__init__.py").write_text("")
    (site / "uqplug" / "spread.py").write_text(PLUGIN.format(name="spread_ep"))
    (site / "uqplug" / "more.py").write_text(PLUGIN.replace('@register("{name}")\n', "").replace(
        "class Spread", "class Unregistered"))
    (site / "uqplug" / "presets.py").write_text(textwrap.dedent("""
        from benchmark.data.user_data import DataSpec
        from benchmark.models.loading import ModelSpec
        from benchmark.presets import PRESETS_DIR, Preset

        DIGITS_AGAIN = Preset("digits-ep", ModelSpec(str(PRESETS_DIR / "digits"), num_classes=10),
                              DataSpec(name="digits"), description="the digits model, from a plug-in")
    """))
    dist = site / "uqplug-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: uqplug\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(textwrap.dedent("""
        [diffusion_uq_bench.estimators]
        spread_ep = uqplug.spread
        spread_cls = uqplug.more:Unregistered

        [diffusion_uq_bench.presets]
        digits_ep = uqplug.presets:DIGITS_AGAIN
    """))
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "benchmark", "list"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = {l.split()[0]: l for l in done.stdout.splitlines() if l.startswith("  ")}  # presets
    lines |= {l.split("]")[0].removeprefix("[estimators."): l for l in done.stdout.splitlines()
              if l.startswith("[estimators.")}
    assert "[entry point spread_ep (uqplug 0.1)]" in lines["spread_ep"]
    assert "[entry point spread_cls (uqplug 0.1)]" in lines["spread_cls"]
    assert "[entry point digits_ep (uqplug 0.1)]" in lines["digits-ep"] and "10 classes" in lines["digits-ep"]
