"""Cross-machine tolerances of the regress baselines, by metric kind (benchmark.publish.regression.KIND_TOLERANCES)."""
from __future__ import annotations

import pandas as pd

from benchmark.publish.regression import compare, kind_tolerance, make_baseline


def test_each_metric_kind_gets_its_documented_tolerance():
    default = (0.05, 0.05)
    assert kind_tolerance("extra_nfe_per_sample", default) == (0.0, 0.0)  # counts: exact on every machine
    assert kind_tolerance("precision_delta_vs_random[classifier]", default) == (0.03, 0.0)  # a few samples
    assert kind_tolerance("recall[inception]", default) == (0.03, 0.0)
    assert kind_tolerance("auroc_lowest_10pct_density", default) == (0.03, 0.0)
    assert kind_tolerance("fid_kept[classifier]", default) == (0.05, 0.05)
    assert kind_tolerance("delta_vs_random_at_keep_0.50[classifier]", default) == (0.05, 0.05)
    assert kind_tolerance("aurg", default) == (0.01, 0.02)
    assert kind_tolerance("vendi[classifier]", default) == default  # no kind: the default


def test_a_one_sample_precision_flip_passes_and_a_changed_nfe_does_not():
    run = pd.DataFrame({"protocol": ["precision_recall", "cost"], "estimator": ["a", "a"],
                        "metric": ["precision[classifier]", "extra_nfe_per_sample"], "value": [0.80, 20.0]})
    baseline = make_baseline(run, {}, (0.05, 0.05))
    moved = run.assign(value=[0.81, 20.0])  # one sample of K = 100 flips inside the manifold on another CPU
    assert compare(baseline, moved) == []
    assert [r.metric for r in compare(baseline, run.assign(value=[0.80, 21.0]))] == ["extra_nfe_per_sample"]
