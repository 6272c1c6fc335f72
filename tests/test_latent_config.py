"""configs/latent.toml (fashion-latent preset, classifier-free guidance w = 3, decoder-MC pixel maps) runs end to end
through the CLI at reduced sizes with every estimator and protocol: the estimators' latent maps become pixel maps,
the cost table counts 2 network rows per guided call and the decoder calls apart from NFEs, and the sparsification
protocol scores decoded images. Only sizes are reduced; estimators, protocols and their options are the shipped ones.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import tomllib

from estimators.base import scale_window
from tests.test_roster_configs import reduced_run

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "latent.toml"
STEPS = 20  # tests.test_roster_configs.SMALL_RUN


@pytest.fixture(scope="module")
def latent_run(tmp_path_factory):
    return reduced_run("latent", tmp_path_factory.mktemp("latent"))


def test_latent_config_runs_every_estimator_and_protocol(latent_run):
    data, out = latent_run
    assert data["run"]["guidance_scale"] == 3.0 and data["run"]["pixel_maps"] == "decoder_mc"
    frame = pd.read_csv(out / "metrics.csv")
    assert set(data["protocols"]) <= set(frame.protocol)
    for instance in data["estimators"]:
        assert instance in set(frame.estimator), instance
    sparsification = frame[frame.protocol == "sparsification"]
    assert {"ause", "aurg"} <= set(sparsification[sparsification.estimator == "bayesdiff"].metric)
    assert any((out / "plots").glob("extremes_*.png"))


def test_latent_config_costs_count_guided_rows_and_decoder_calls(latent_run):
    data, out = latent_run
    frame = pd.read_csv(out / "metrics.csv")
    cost = frame[frame.protocol == "cost"]
    nfe = cost[cost.metric == "nfe_per_sample"].set_index("estimator").value
    extra = cost[cost.metric == "extra_nfe_per_sample"].set_index("estimator").value
    assert nfe["(sampler)"] == 2 * STEPS  # two rows (unconditional, conditional) per guided call
    sens = data["estimators"]["sensitivity"]
    start, stop = scale_window(tuple(sens["window"]), STEPS)
    assert extra["sensitivity"] == 2 * sens["m"] * (stop - start)
    calls = cost[cost.metric == "decoder_calls_per_sample"].value
    decoded = [name for name in extra.index if name != "random"]  # the floor's pixel map is drawn, not decoded
    assert "random" in extra.index
    assert list(calls) == [1 + data["run"]["decoder_mc_samples"] * len(decoded)]  # the image + K per decoded map


def test_latent_config_is_the_shipped_file():
    shipped = tomllib.loads(CONFIG.read_text())
    assert shipped["run"]["preset"] == "fashion-latent" and shipped["run"]["guidance_scale"] == 3.0
