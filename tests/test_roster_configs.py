"""configs/smoke.toml and configs/demo.toml run end to end through the CLI at reduced sizes with the whole
estimator roster: every configured estimator gets its rows (realism_oracle scored after generation from the
run's features, generative_uncertainty with the run's Laplace posterior and domain classifier), and the cost
protocol reports each estimator's extra NFEs exactly (the formulas on the estimator cards, at 20 steps).
Only sizes are reduced; estimators, protocols and their options are the shipped ones.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import tomllib

import estimators
from benchmark.cli import main
from estimators.base import scale_window
from tests.test_gmm_config import write_toml

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SMALL_RUN = {"steps": 20, "num_samples": 12, "keep": 10, "batch_size": 12, "bootstrap": 10,
             "features": ["classifier"]}
SMALL_ESTIMATOR = {"m": 2, "mc_samples": 3, "fit_images": 16}
SMALL_PROTOCOL = {"filtered_fid": {"curve_fractions": [1.0]}, "sparsification": {"num_images": 4},
                  "guidance": {"num_samples": 4, "m": 2}, "precision_recall": {"k": 3}}
# extra NFEs per sample of the zero-cost estimators (the others are checked against their card formulas below)
EXPECTED_NFE = {"x0_trajectory": 0, "realism_oracle": 0, "random": 0, "local_variance": 0}


def reduced_run(name: str, tmp: Path) -> tuple[dict, Path]:
    data = tomllib.loads((CONFIGS / f"{name}.toml").read_text())
    data["run"].update(SMALL_RUN)
    for instance, params in data["estimators"].items():
        accepted = set(estimators.parameters(params.get("type", instance))) | {"fit_images"}
        params.update({k: v for k, v in SMALL_ESTIMATOR.items() if k in accepted and (k != "fit_images" or k in params)})
    for protocol, small in SMALL_PROTOCOL.items():
        if protocol in data["protocols"]:
            data["protocols"][protocol].update(small)
    config = tmp / f"{name}.toml"
    write_toml(data, config)
    assert main(["run", "--config", str(config), "--out", str(tmp / "run"), "--quiet"]) == 0
    return data, tmp / "run"


@pytest.mark.parametrize("name", ["smoke", "demo"])
def test_config_runs_with_the_roster(name, tmp_path):
    data, out = reduced_run(name, tmp_path)
    frame = pd.read_csv(out / "metrics.csv")
    for instance in data["estimators"]:
        assert instance in set(frame.estimator), instance
    cost = frame[(frame.protocol == "cost") & (frame.metric == "extra_nfe_per_sample")].set_index("estimator").value
    for instance, nfe in EXPECTED_NFE.items():
        if instance in cost:
            assert cost[instance] == nfe, instance
    if "zigzag" in data["estimators"]:
        z = data["estimators"]["zigzag"]
        start, stop = scale_window(tuple(z.get("window", (40, 50))), SMALL_RUN["steps"])
        assert cost["zigzag"] == z["m"] * z["num_zigzag"] * (stop - start)
    if "generative_uncertainty" in data["estimators"]:
        assert cost["generative_uncertainty"] == data["estimators"]["generative_uncertainty"]["m"] * SMALL_RUN["steps"]
    realism = frame[(frame.estimator == "realism_oracle") & (frame.protocol == "sparsification")]
    assert realism.empty  # no pixel map: pixel protocols skip the oracle
