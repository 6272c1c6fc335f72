"""Estimator semantics shared by all estimators: `kind`, `reference_row` and the common `negate` option.

The negate check compares a negated instance with a plain one on the same trajectory (same sample indices,
same seed, so the same draws): the reported map and score must be exactly -1 times the plain ones.
"""
from __future__ import annotations

import pytest
import torch

import estimators
from benchmark.errors import ConfigError
from benchmark.sampling import initial_noise, sample
from estimators.base import KINDS, EstimatorResult, UncertaintyEstimator, negated_result


@pytest.mark.parametrize("name, kind, reference", [
    ("sensitivity", "aleatoric", False), ("bayesdiff", "epistemic", False), ("mc_dropout", "epistemic", False),
    ("random", "heuristic", True)])
def test_builtin_kinds(name, kind, reference):
    cls = estimators.get_class(name)
    assert cls.kind == kind and cls.reference_row is reference


def test_every_registered_estimator_declares_a_valid_kind():
    for name in estimators.available():
        cls = estimators.get_class(name)
        assert cls.kind in KINDS and isinstance(cls.reference_row, bool), name


def test_an_invalid_kind_is_refused_at_class_definition():
    with pytest.raises(TypeError, match="kind"):
        class Bad(UncertaintyEstimator):  # noqa: F841 - defining it is the test
            kind = "bayesian"

            def observe(self, step):
                return None

            def result(self):
                return EstimatorResult(torch.zeros(1), torch.zeros(1))


def test_negate_is_a_common_parameter_of_every_estimator():
    for name in estimators.available():
        assert "negate" in estimators.parameters(name), name
    with pytest.raises(ConfigError, match="negate"):
        estimators.create("random", negate="yes")


def test_negated_row_is_exactly_minus_the_plain_row(gmm):
    """`random` draws from (seed, sample index) only, so a second instance under another name sees the same
    draws: its negated map and score must be exactly -1 x the plain ones, through the sampling engine."""
    plain = estimators.create("random", seed=3)
    neg = estimators.create("random", seed=3, negate=True)
    neg.name = "random_neg"
    assert neg.params()["negate"] is True and neg.negate and not plain.negate
    idx = torch.arange(4)
    x_T = initial_noise(0, idx, gmm.sample_shape).to(torch.float64)
    out = sample(gmm, x_T, sampler="ddim", steps=3, estimators=[plain, neg], seed=0, indices=idx)
    p, n = out.uncertainty["random"], out.uncertainty["random_neg"]
    assert torch.all(p.score > 0)
    torch.testing.assert_close(n.score, -p.score, rtol=0, atol=0)
    torch.testing.assert_close(n.pixel, -p.pixel, rtol=0, atol=0)


def test_negated_result_flips_per_step_maps():
    per_step = {10: torch.ones(1, 1, 2, 2), 5: 2 * torch.ones(1, 1, 2, 2)}
    res = negated_result(EstimatorResult(torch.ones(1, 1, 2, 2), torch.tensor([4.0]), per_step, nfe=3.0))
    assert res.score.item() == -4.0 and res.nfe == 3.0 and res.pixel.eq(-1).all()
    assert res.per_step[10].eq(-1).all() and res.per_step[5].eq(-2).all()
