"""Protocol 5: cost — extra NFEs and wall-clock per estimator, as ratios to plain sampling in the same pass.

NFEs are exact counts. Wall-clock is machine-dependent and noisy (the demo's bayesdiff ratio moved 8 % between
two runs), so `time_ratio` = (sampler + estimator seconds) / sampler seconds over the whole pass carries a t
interval over the generation shards: with per-shard ratios r_b, value -/+ t_{B-1} sd(r_b) / sqrt(B) (no interval
with a single shard). It covers the expected ratio on this machine under this load, not on another machine.
"""
from __future__ import annotations

import math

import numpy as np

from benchmark.protocols.base import ProtocolInputs
from benchmark.protocols.table import MetricRow
from metrics.significance import paired_t_test

NAME = "cost"


def features_read(params: dict, config) -> set[tuple[str, str]]:
    """(space, split) pairs of the run's features this protocol reads: none (NFEs and seconds only)."""
    return set()


def run(inputs: ProtocolInputs, params: dict) -> list[MetricRow]:
    gen, seed = inputs.generation, inputs.config.seed
    base_nfe, base_seconds = gen.nfe["sampler"], gen.seconds["sampler"]
    n = gen.size
    rows = [MetricRow(NAME, "(sampler)", "nfe_per_sample", base_nfe, n=n, seed=seed),
            MetricRow(NAME, "(sampler)", "seconds_per_sample", base_seconds / n, n=n, seed=seed)]
    if "decoder_calls" in gen.extras:  # a latent model: decoder calls, apart from NFEs (benchmark.models.pixel_maps)
        rows += [MetricRow(NAME, "(decoder)", "decoder_calls_per_sample", float(gen.extras["decoder_calls"].mean()),
                           n=n, seed=seed),
                 MetricRow(NAME, "(decoder)", "seconds_per_sample", gen.seconds.get("decoder", 0.0) / n, n=n, seed=seed)]
    for name in inputs.estimator_names:
        if name.startswith("_"):
            continue
        extra_nfe, seconds = gen.nfe.get(name, 0.0), gen.seconds.get(name, 0.0)
        rows += [
            MetricRow(NAME, name, "extra_nfe_per_sample", extra_nfe, n=n, seed=seed),
            MetricRow(NAME, name, "nfe_ratio", (base_nfe + extra_nfe) / base_nfe, n=n, seed=seed),
            MetricRow(NAME, name, "seconds_per_sample", seconds / n, n=n, seed=seed),
            MetricRow(NAME, name, "time_ratio", (base_seconds + seconds) / base_seconds,
                      *_ratio_interval(gen.shard_seconds.get("sampler", []), gen.shard_seconds.get(name, [])),
                      n=n, seed=seed),
        ]
    return rows


def _ratio_interval(base: list[float], extra: list[float]) -> tuple[float, float]:
    """(low, high) of the time ratio's t interval over shards (module doc), centred on the pass's ratio of sums."""
    if len(base) < 2 or len(base) != len(extra) or min(base) <= 0:
        return math.nan, math.nan
    ratios = (np.asarray(base) + np.asarray(extra)) / np.asarray(base)
    ci = paired_t_test(ratios)  # t interval of the mean per-shard ratio, moved onto the pass's ratio of sums
    shift = (sum(base) + sum(extra)) / sum(base) - ci.value
    return ci.low + shift, ci.high + shift
