"""End to end: `augmentation` and `rectification` in a run on the toy preset (rows, NFEs, plot, config errors)."""
from __future__ import annotations

import pandas as pd
import pytest

from benchmark.config import parse_config
from benchmark.errors import ConfigError
from benchmark.runner import setup
from benchmark.runner.run import run_benchmark
from tests.toy_preset import ToyPreset

STEPS, N, TRIES, VARIANTS, M = 10, 16, 1, 2, 2
CONFIG = {
    "run": {"name": "apps", "preset": "toy", "steps": STEPS, "num_samples": N, "keep": 12, "batch_size": 16,
            "bootstrap": 10},
    "estimators": {"sensitivity": {"m": M, "window": [40, 50]},
                   "bayesdiff": {"mc_samples": 3, "skip": 5, "fit_images": 16}},
    "protocols": {"augmentation": {"num_samples": 2, "variants": VARIANTS, "cut_step": 30},
                  "rectification": {"percentile": 80.0, "tries": TRIES, "renoise_step": 20}},
}


@pytest.fixture(scope="module")
def metrics(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setattr(setup, "load_preset", lambda name: ToyPreset())
    out = tmp_path_factory.mktemp("apps") / "apps"
    try:
        run_benchmark(parse_config(CONFIG), out, progress=False)
    finally:
        mp.undo()
    return out, pd.read_csv(out / "metrics.csv")


def value(frame: pd.DataFrame, protocol: str, estimator: str, metric: str) -> float:
    rows = frame[(frame.protocol == protocol) & (frame.estimator == estimator) & (frame.metric == metric)]
    assert len(rows) == 1, (protocol, estimator, metric)
    return float(rows.value.iloc[0])


def test_augmentation_rows_nfe_and_grid(metrics):
    out, frame = metrics
    cut = 4  # 30 steps left of 50 -> index 20 of 50 -> 4 of 10
    finishing = VARIANTS * (STEPS - cut)
    assert value(frame, "augmentation", "redraw", "extra_nfe_per_base_sample") == finishing
    assert value(frame, "augmentation", "isotropic[bayesdiff]", "extra_nfe_per_base_sample") == finishing
    # bayesdiff: uncertainty steps 0 (Var = 0, features shared) before the cut: no extra call
    assert value(frame, "augmentation", "bayesdiff", "extra_nfe_per_base_sample") == finishing
    for family in ("bayesdiff", "isotropic[bayesdiff]", "redraw"):
        assert 1.0 <= value(frame, "augmentation", family, "vendi[classifier]") <= VARIANTS
        assert 0.0 <= value(frame, "augmentation", family, "class_agreement") <= 1.0
    assert {"delta_vs_isotropic[bayesdiff].vendi[classifier]", "delta_vs_redraw.mode_agreement"} <= set(
        frame[frame.estimator == "bayesdiff"].metric)
    assert (out / "plots" / "augmentation_grid.png").stat().st_size > 0
    assert "plots/augmentation_grid.png" in (out / "report.md").read_text()  # shown in the report


def test_rectification_rows_and_equal_nfe_baselines(metrics):
    _, frame = metrics
    k = 6  # 20 steps left of 50 -> index 30 of 50 -> 6 of 10
    sens_calls = 2 * M  # window [40, 50) -> steps 8 and 9 of 10
    replaced = value(frame, "rectification", "sensitivity", "rejection.replaced")
    assert replaced == round(0.2 * N) - 1 or replaced == round(0.2 * N)  # above the 80th percentile
    for label in ("sensitivity", "sensitivity|random_trigger"):
        assert value(frame, "rectification", label, "rejection.extra_nfe_per_replaced") == TRIES * (STEPS + sens_calls)
    for label in ("sensitivity", "sensitivity|random_trigger", "sensitivity|random_mask"):
        assert value(frame, "rectification", label, "region.extra_nfe_per_replaced") == TRIES * (STEPS - k + sens_calls)
        assert value(frame, "rectification", label, "region.replaced") == replaced
    assert {"region.delta_vs_random_mask.fid[classifier]", "rejection.delta_vs_random_trigger.fid[classifier]",
            "rejection.delta_fid[classifier]", "region.precision_change[classifier]",
            "region.delta_fid_infinity[classifier]", "rejection.fid_infinity_after[classifier]"} <= set(
        frame[frame.estimator == "sensitivity"].metric)
    assert "random" not in set(frame[frame.protocol == "rectification"].estimator)
    assert {"fid[classifier]", "fid_infinity[classifier]", "precision[classifier]"} <= set(
        frame[frame.estimator == "(before)"].metric)


def test_config_errors_name_the_field():
    base = {"run": {"preset": "fashion", "num_samples": 20, "keep": 15}}
    with pytest.raises(ConfigError, match="protocols.augmentation.*bayesdiff"):
        parse_config({**base, "protocols": {"augmentation": {}}})
    with pytest.raises(ConfigError, match="protocols.rectification.*besides random"):
        parse_config({**base, "protocols": {"rectification": {}}})
    with pytest.raises(ConfigError, match="protocols.rectification.mask_percentile"):
        parse_config({**base, "estimators": {"sensitivity": {}}, "protocols": {"rectification": {"mask_percentile": 100}}})
    with pytest.raises(ConfigError, match="protocols.augmentation.cut_step"):
        parse_config({**base, "estimators": {"bayesdiff": {}}, "protocols": {"augmentation": {"cut_step": 0}}})


def test_findings_lines_judge_the_paired_differences():
    from benchmark.protocols.application_findings import application_findings, judge

    assert judge(-2.0, -3.0, -1.0, -1) == "better"  # a lower FID, interval below 0
    assert judge(0.5, 0.1, 0.9, -1) == "worse"
    assert judge(0.5, -0.1, 0.9, +1) == "not significant"
    frame = pd.DataFrame([
        {"protocol": "rectification", "estimator": "bayesdiff", "metric": "rejection.delta_vs_random_trigger.fid[classifier]",
         "value": -2.0, "ci_low": -3.0, "ci_high": -1.0},
        {"protocol": "augmentation", "estimator": "bayesdiff", "metric": "delta_vs_isotropic[bayesdiff].vendi[classifier]",
         "value": 0.01, "ci_low": -0.02, "ci_high": 0.04},
        {"protocol": "augmentation", "estimator": "bayesdiff", "metric": "vendi[classifier]",
         "value": 3.0, "ci_low": 2.0, "ci_high": 4.0}])
    lines = application_findings(frame)
    assert lines == [
        "- augmentation: bayesdiff vs isotropic[bayesdiff]: difference in vendi[classifier] 0.01 [-0.02, 0.04] "
        "-> not significant",
        "- rectification rejection: bayesdiff vs random_trigger: difference in fid[classifier] -2 [-3, -1] -> better"]


def test_findings_of_the_toy_run_cover_every_baseline(metrics):
    from benchmark.protocols.application_findings import application_findings

    lines = application_findings(metrics[1])
    assert any("rectification region: sensitivity vs random_mask" in line for line in lines)
    assert any("augmentation: bayesdiff vs redraw" in line for line in lines)
