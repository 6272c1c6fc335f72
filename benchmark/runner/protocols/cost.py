"""Protocol 5: cost — extra NFEs and wall-clock per estimator, as ratios to plain sampling in the same pass."""
from __future__ import annotations

from benchmark.runner.protocols.base import ProtocolInputs
from benchmark.runner.table import MetricRow

NAME = "cost"


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
            MetricRow(NAME, name, "time_ratio", (base_seconds + seconds) / base_seconds, n=n, seed=seed),
        ]
    return rows
