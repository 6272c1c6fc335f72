"""Agreement with the ensemble: the rank correlations against scipy, the rows on planted agreement, and which
estimators are compared (read from the classes, no names)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from scipy.stats import spearmanr

from benchmark.protocols.ensemble_agreement import agreement_rows, pairs
from metrics.rank_agreement import per_item_spearman, spearman


def test_rank_correlations_match_scipy_with_ties():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 5, 200).astype(float)  # many ties
    b = a + rng.normal(0, 2, 200)
    assert spearman(a, b) == pytest.approx(spearmanr(a, b).statistic, abs=1e-12)
    maps_a, maps_b = rng.normal(size=(6, 1, 4, 4)), rng.integers(0, 3, (6, 1, 4, 4)).astype(float)
    want = [spearmanr(maps_a[i].ravel(), maps_b[i].ravel()).statistic for i in range(6)]
    np.testing.assert_allclose(per_item_spearman(maps_a, maps_b), want, atol=1e-12)
    assert np.isnan(per_item_spearman(maps_a[:1], np.zeros((1, 1, 4, 4))))[0]


def test_rows_on_planted_agreement():
    rng = np.random.default_rng(1)
    gold_maps = rng.gamma(2.0, size=(40, 1, 8, 8))
    maps = {"ensemble": gold_maps, "same": np.log(gold_maps) * 3 + 1, "noise": rng.normal(size=gold_maps.shape)}
    scores = {k: v.reshape(40, -1).sum(1) for k, v in maps.items()}
    scores["same"] = np.exp(scores["ensemble"])  # a monotone transform of the gold score: rho = 1
    same = {r.metric: r for r in agreement_rows("same", "ensemble", scores, maps, n_boot=50, seed=0)}
    assert same["score_spearman_vs_ensemble"].value == pytest.approx(1.0)
    assert same["map_spearman_vs_ensemble"].value == pytest.approx(1.0)
    noise = {r.metric: r for r in agreement_rows("noise", "ensemble", scores, maps, n_boot=200, seed=0)}
    row = noise["map_spearman_vs_ensemble"]
    assert abs(row.value) < 4 / np.sqrt(63 * 40) and row.ci_low < row.value < row.ci_high and row.n == 40


def test_pairs_read_the_classes():
    specs = [SimpleNamespace(name=n, type=t) for n, t in [("gold", "ensemble"), ("mc_dropout", "mc_dropout"),
                                                          ("bd", "bayesdiff"), ("sensitivity", "sensitivity"),
                                                          ("random", "random")]]
    assert pairs(SimpleNamespace(estimators=specs)) == [("mc_dropout", "gold"), ("bd", "gold")]
    assert pairs(SimpleNamespace(estimators=specs[1:])) == []
