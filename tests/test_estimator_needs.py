"""Estimators declare what they need (estimators.requirements) and the runner supplies it the same way to all:
a plug-in defined outside the package gets the run's shared posterior exactly as bayesdiff does, a need the model
lacks is refused before anything costly runs, and the runner's code names no estimator."""
from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path

import pytest
import torch

import estimators
from benchmark.config import parse_config
from benchmark.errors import CapabilityError, ConfigError
from benchmark.models import DiffusersUNet
from benchmark.runner.resources import estimator_factory
from estimators.laplace import LastLayerLaplace
from tests.helpers import tiny_unet
from tests.toy_preset import ToyPreset

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = textwrap.dedent('''
    import torch
    from estimators import EstimatorResult, Requirements, UncertaintyEstimator, register

    @register("{name}")
    class PosteriorWidth(UncertaintyEstimator):
        """Per-pixel predictive variance of eps at the last step, from the run's shared posterior."""

        kind = "epistemic"
        requires = Requirements(posterior="post", dropout={dropout})

        def __init__(self, post=None, scale: float = 1.0):
            self.post, self.scale = post, scale

        def observe(self, step):
            if step.index == step.num_steps - 1:
                self.map = self.scale * self.post.predictive(step.x_t, step.t, step.y)[1]

        def result(self):
            return EstimatorResult(pixel=self.map, score=self.map.flatten(1).sum(1))
''')


@pytest.fixture
def plugin(tmp_path, clean_registry):
    def write(name: str, dropout: bool = False) -> str:
        path = tmp_path / f"{name}.py"
        path.write_text(PLUGIN.format(name=name, dropout=dropout))
        return str(path)
    return write


@pytest.fixture
def counted_fits(monkeypatch):
    """How often a posterior was fitted (LastLayerLaplace.fit, counted)."""
    calls = []
    original = LastLayerLaplace.fit

    def fit(self, *args, **kwargs):
        calls.append(kwargs.get("num_images"))
        return original(self, *args, **kwargs)
    monkeypatch.setattr(LastLayerLaplace, "fit", fit)
    return calls


def toy_model():
    torch.manual_seed(0)
    return DiffusersUNet(tiny_unet(dropout=0.1))


def test_a_plugin_gets_the_shared_posterior_exactly_as_bayesdiff(plugin, counted_fits):
    config = parse_config({"run": {"preset": "digits", "steps": 4, "plugins": [plugin("post_width")]},
                           "estimators": {"bayesdiff": {"fit_images": 16, "mc_samples": 3},
                                          "post_width": {"scale": 2.0}},
                           "protocols": {"cost": {}}})
    factory = estimator_factory(config, toy_model(), ToyPreset(), progress=False)
    made = {e.name: e for e in factory()}
    assert made["post_width"].post is made["bayesdiff"].laplace is factory.posterior  # one object, one fit
    assert counted_fits == [16]
    assert factory.posterior_choice.settings.fit_images == 16


def test_a_plugin_alone_sets_the_fit_settings_and_conflicts_are_refused(plugin, counted_fits):
    path = plugin("post_width")
    config = parse_config({"run": {"preset": "digits", "steps": 4, "plugins": [path]},
                           "estimators": {"post_width": {"fit_images": 12, "prior_precision": 2.0}},
                           "protocols": {"cost": {}}})
    factory = estimator_factory(config, toy_model(), ToyPreset(), progress=False)
    [made] = [e for e in factory() if e.name == "post_width"]
    assert counted_fits == [12] and made.post.prior_precision == 2.0
    with pytest.raises(ConfigError, match=r"estimators\.post_width\.fit_images = 8 is invalid.*bayesdiff\.fit_images"):
        parse_config({"run": {"preset": "digits", "plugins": [path]},
                      "estimators": {"bayesdiff": {"fit_images": 16}, "post_width": {"fit_images": 8}}})
    with pytest.raises(ConfigError, match=r"estimators\.post_width\.post"):  # supplied by the run, not a setting
        parse_config({"run": {"preset": "digits", "plugins": [path]}, "estimators": {"post_width": {"post": 1}}})


def test_a_missing_capability_is_refused_before_the_posterior_fit(plugin, counted_fits):
    config = parse_config({"run": {"preset": "digits", "steps": 4, "plugins": [plugin("needs_dropout", True)]},
                           "estimators": {"needs_dropout": {}}, "protocols": {"cost": {}}})
    torch.manual_seed(0)
    no_dropout = DiffusersUNet(tiny_unet(dropout=0.0))
    with pytest.raises(CapabilityError, match="'needs_dropout' needs a model with dropout layers.*Fix: use a model trained with dropout"):
        estimator_factory(config, no_dropout, ToyPreset(), progress=False)
    assert counted_fits == []  # refused before any fit


def test_the_posterior_needs_training_images_unless_one_is_saved(plugin):
    config = parse_config({"run": {"preset": "digits", "steps": 4, "plugins": [plugin("post_width")]},
                           "estimators": {"post_width": {}}, "protocols": {"cost": {}}})
    with pytest.raises(ConfigError, match=r"estimators\.post_width = 'post_width' is invalid: a run with training "
                                          r"images"):
        estimator_factory(config, toy_model(), ToyPreset(dataset=None), progress=False)


def test_every_builtin_declares_its_needs_and_the_cards_show_them():
    from estimators.cards import card
    from estimators.requirements import requirements_of

    assert requirements_of(estimators.get_class("bayesdiff")).posterior == "laplace"
    assert requirements_of(estimators.get_class("mc_dropout")).dropout
    assert requirements_of(estimators.get_class("sensitivity")).describe() == "nothing beyond the sampler's step"
    assert "laplace" not in card("bayesdiff").parameters and "fit_images" not in card("bayesdiff").parameters


def code_lines(path: Path) -> list[tuple[int, str]]:
    """The lines of `path` outside docstrings, with comments cut off."""
    source = path.read_text()
    docs = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            docs |= set(range(node.lineno, node.end_lineno + 1))
    return [(n, line.split("#")[0]) for n, line in enumerate(source.splitlines(), 1) if n not in docs]


def test_the_runner_config_and_cli_name_no_estimator():
    """Only docstrings and comments in benchmark/ may name a method (the `random` floor is the config's default)."""
    pattern = re.compile(r"bayesdiff|laplace|mc_dropout|sensitivity", re.I)
    named = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}" for path in (ROOT / "benchmark").rglob("*.py")
             for n, line in code_lines(path) if pattern.search(line)]
    assert not named, "\n".join(named)


def test_the_report_says_how_the_posterior_was_fitted_and_with_which_labels():
    from benchmark.report.document import posterior_lines

    fitted = {"source": "fitted", "fit_images": 256, "prior_precision": 1.0, "hessian": "ggn",
              "fit_labels": "uniform random labels over the model's 10 classes: the data has no labels"}
    text = "\n".join(posterior_lines(fitted))
    assert "fitted in this run on 256 training images" in text and "uniform random labels over the model's 10" in text
    loaded = {"source": "loaded", "path": "/m/laplace_last_layer.pt", "fit_images": 500, "prior_precision": 1.0,
              "hessian": "ggn", "fit_labels": None}
    assert "loaded from `/m/laplace_last_layer.pt`" in "\n".join(posterior_lines(loaded))
    assert posterior_lines(None) == []


def test_list_prints_valid_toml_that_parses_as_a_config_with_the_defaults():
    """Issue 25 item 9: `list` prints each estimator and protocol as a TOML table with its defaults (the posterior's
    fit settings included), never `None`, and each table is accepted by the config parser as it is."""
    import tomllib

    from benchmark.cli.listing import estimators_text, protocols_text

    text = estimators_text()
    assert "None" not in text and "None" not in protocols_text()
    tables = tomllib.loads(text)["estimators"]
    assert set(tables) == set(estimators.available())
    assert tables["bayesdiff"]["fit_images"] == 500 and "laplace" not in tables["bayesdiff"]
    assert tables["sensitivity"] == {"m": 5, "window": [45, 49], "center": "mean", "clip_x0": False,
                                     "keep_steps": False, "negate": False}
    for name, table in tables.items():
        parse_config({"run": {"preset": "digits"}, "estimators": {name: table}})
    protocols = tomllib.loads(protocols_text())["protocols"]
    assert protocols["precision_recall"] == {"k": 3}
    parse_config({"run": {"preset": "digits", "num_samples": 120, "keep": 100}, "estimators": {"bayesdiff": {}},
                  "protocols": {k: v for k, v in protocols.items() if k != "ground_truth"}})
