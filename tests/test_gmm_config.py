"""configs/gmm.toml runs end to end through the CLI at reduced sizes (issue 11 item 2): the Laplace fit takes the
mixture's unbounded draws, every configured estimator gets its ground-truth rows by kind, and BayesDiff its
calibration ratios. Only sizes are reduced; estimators, protocols and their options are the shipped ones.
"""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import tomllib

import estimators
from benchmark.cli import main

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "gmm.toml"
SMALL_RUN = {"steps": 20, "num_samples": 12, "keep": 10, "batch_size": 12, "bootstrap": 10}
SMALL_ESTIMATOR = {"m": 2, "mc_samples": 3, "fit_images": 16}
SMALL_PROTOCOL = {"filtered_fid": {"curve_fractions": [1.0]}, "sparsification": {"num_images": 4},
                  "ground_truth": {"target_samples": 4, "weight_draws": 4}}  # 4: two halves of 2


def write_toml(data: dict, path: Path) -> None:
    def value(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return f'"{v}"'
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return repr(v)

    lines = []
    for section, body in data.items():
        tables = {k: v for k, v in body.items() if isinstance(v, dict)}
        lines.append(f"[{section}]")
        lines += [f"{k} = {value(v)}" for k, v in body.items() if not isinstance(v, dict)]
        for name, table in tables.items():
            lines.append(f"[{section}.{name}]")
            lines += [f"{k} = {value(v)}" for k, v in table.items()]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def gmm_run(tmp_path_factory):
    data = tomllib.loads(CONFIG.read_text())
    data["run"].update(SMALL_RUN)
    for instance, params in data["estimators"].items():
        accepted = set(estimators.parameters(params.get("type", instance))) | {"fit_images"}
        params.update({k: v for k, v in SMALL_ESTIMATOR.items() if k in accepted and (k != "fit_images" or k in params)})
    for name, small in SMALL_PROTOCOL.items():
        data["protocols"][name].update(small)
    tmp = tmp_path_factory.mktemp("gmm")
    config = tmp / "gmm.toml"
    write_toml(data, config)
    rc = main(["run", "--config", str(config), "--out", str(tmp / "run"), "--quiet"])
    return rc, data, tmp / "run"


def test_gmm_config_runs_end_to_end_with_every_estimator(gmm_run):
    rc, data, out = gmm_run
    assert rc == 0
    frame = pd.read_csv(out / "metrics.csv")
    gt = frame[frame.protocol == "ground_truth"]
    for instance, params in data["estimators"].items():
        kind = estimators.get_class(params.get("type", instance)).kind
        metrics = set(gt[gt.estimator == instance].metric)
        assert {"spearman_score_vs_neg_log_density", "auroc_lowest_10pct_density", "auroc_between_mode"} <= metrics
        if kind == "aleatoric":
            assert {"spearman_pixel_vs_exact_score", "spearman_score_vs_exact_score"} <= metrics, instance
        if kind == "epistemic":
            assert {"spearman_pixel_vs_sq_error", "spearman_score_vs_sq_error"} <= metrics, instance
    assert {"spearman_pixel_vs_shared_theta_var", "calibration_ratio[skip=1]", "calibration_ratio[skip=5]"} <= set(
        gt[gt.estimator == "bayesdiff"].metric)
    # the epistemic target's split-half reliability, and each raw correlation with it corrected by its square root
    for instance in ("bayesdiff", "mc_dropout"):
        rows = gt[gt.estimator == instance].set_index("metric").value
        for level in ("pixel", "score"):
            reliability = rows[f"target_reliability_{level}_shared_theta_var"]
            corrected = rows[f"spearman_{level}_vs_shared_theta_var_corrected"]
            raw = rows[f"spearman_{level}_vs_shared_theta_var"]
            assert math.isnan(reliability) or reliability <= 1, (instance, level)
            if reliability > 0:
                assert corrected == pytest.approx(raw / math.sqrt(reliability), rel=1e-4, abs=1e-6), (instance, level)
            else:
                assert math.isnan(corrected), (instance, level)
    ratios = gt[gt.metric.str.startswith("calibration_ratio")].set_index("metric").value
    assert all(math.isfinite(r) and r > 0 for r in ratios)
    # both skip rules are reported: the public k^2 Var rule inflates the variance far beyond the contraction's
    assert ratios["calibration_ratio[skip=5,rule=public]"] > 10 * ratios["calibration_ratio[skip=5,rule=contraction]"]
    assert ratios["calibration_ratio[skip=5,rule=contraction]"] == pytest.approx(ratios["calibration_ratio[skip=5]"])
    # the negated row is the plain row's inverse: rank statistics flip sign exactly (same draws, same samples)
    score = gt[gt.metric == "spearman_score_vs_neg_log_density"].set_index("estimator").value
    assert score["sensitivity_neg"] == pytest.approx(-score["sensitivity"])


def test_gmm_config_reports_conformal_pixel_intervals_per_map(gmm_run):
    """The mixture's run carries split-conformal pixel intervals for every map (coverage and width ratio rows); the
    coverage guarantee itself is proved over 300 random splits in tests/test_conformal.py."""
    rc, data, out = gmm_run
    frame = pd.read_csv(out / "metrics.csv")
    conformal = frame[frame.protocol == "conformal"]
    coverage = conformal[conformal.metric.str.startswith("pixel_coverage")]
    width = conformal[conformal.metric.str.startswith("pixel_width_ratio")]
    assert rc == 0 and len(coverage) > 0 and set(coverage.estimator) == set(width.estimator)
    assert ((coverage.value >= 0) & (coverage.value <= 1)).all() and (width.value > 0).all()
