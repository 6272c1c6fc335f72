"""Protocol 4: uncertainty-guided sampling (Alg. 2 of the aleatoric paper) vs plain sampling.

The first `num_samples` samples of the generation pass are the plain ones; the same indices (same x_T,
labels and sampler) are generated again with `UncertaintyGuidance`. FID of each against the reference,
and the paired difference FID(guided) - FID(plain) with a bootstrap interval over sample indices.
"""
from __future__ import annotations

from benchmark.guidance import UncertaintyGuidance
from benchmark.runner.generation import generate, load_generation
from benchmark.runner.protocols.base import ProtocolInputs
from benchmark.runner.protocols.fid_utils import bootstrap_replicates, fid_ci, paired_delta_ci
from benchmark.runner.table import MetricRow, row_from_ci

NAME = "guidance"


def run(inputs: ProtocolInputs, params: dict) -> list[MetricRow]:
    cfg, gen = inputs.config, inputs.generation
    n = min(int(params["num_samples"]), gen.size)
    guidance = UncertaintyGuidance(m=int(params["m"]), percentile=float(params["percentile"]),
                                   strength=float(params["strength"]), window=tuple(params["window"]))
    batch = min(cfg.batch_size, n)
    generate(inputs.model, run_dir=inputs.run_dir, num_samples=n, batch_size=batch, seed=cfg.seed,
             sampler=cfg.sampler, steps=cfg.steps, make_estimators=list, tag="guided", progress=inputs.progress,
             guidance=guidance)
    guided = load_generation(inputs.run_dir, n, batch, tag="guided")
    inputs.artifacts["guided_x0"] = guided.x0
    rows = []
    for space in inputs.fake_features:
        ref = inputs.reference_stats[space]
        plain_feats = inputs.fake_features[space][:n]
        guided_feats = inputs.extract(space, guided.x0)
        n_boot = bootstrap_replicates(space, cfg.bootstrap)
        rows.append(row_from_ci(NAME, "plain", f"fid[{space}]", fid_ci(plain_feats, ref, n_boot, cfg.seed), n, cfg.seed))
        rows.append(row_from_ci(NAME, "guided", f"fid[{space}]", fid_ci(guided_feats, ref, n_boot, cfg.seed), n, cfg.seed))
        rows.append(row_from_ci(NAME, "guided", f"delta_vs_plain[{space}]",
                                paired_delta_ci(guided_feats, plain_feats, ref, n_boot, cfg.seed), n, cfg.seed))
    base_nfe = guided.nfe["sampler"]
    rows.append(MetricRow(NAME, "guided", "extra_nfe_per_sample", guided.nfe.get("guidance", 0.0), n=n, seed=cfg.seed))
    rows.append(MetricRow(NAME, "guided", "nfe_ratio", (base_nfe + guided.nfe.get("guidance", 0.0)) / base_nfe,
                          n=n, seed=cfg.seed))
    changed = (guided.x0 - gen.x0[:n]).flatten(1).abs().amax(1)
    rows.append(MetricRow(NAME, "guided", "mean_abs_change_x0", float((guided.x0 - gen.x0[:n]).abs().mean()),
                          n=n, seed=cfg.seed))
    rows.append(MetricRow(NAME, "guided", "fraction_changed", float((changed > 1e-6).float().mean()), n=n, seed=cfg.seed))
    return rows
