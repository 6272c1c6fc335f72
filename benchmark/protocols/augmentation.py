"""Protocol `augmentation`: BayesDiff's diverse variants of a generated sample, measured against baselines.

BayesDiff (Kou et al. 2024, applications; public code sd/variance_utility.py, notes/anchors.md Sec. 8) runs the
uncertainty-propagating sampler down to a cut step, draws variants x_c^v ~ N(E[x_c], Var[x_c]) there and finishes
each with the plain deterministic sampler. Here E[x_c] is the trajectory's x_c (estimators/bayesdiff.py: the
trajectory is the plain sampler's), and any estimator whose class sets `state_variance = True` (its pixel map
is the variance of the sampler state after the steps it observed) can supply Var[x_c]. Families, all finished
from the same cut with the same draws z_v ~ N(0, I) (common random numbers):
    <source>              x_c + sqrt(Var[x_c]) z_v                       (the variance-shaped variants)
    isotropic[<source>]   x_c + sqrt(sum(Var[x_c]) / D) z_v              (equal perturbation energy, same cost)
    redraw                x_c + s_c (z_v - eps_c) = a_c x0_hat + s_c z_v  (the noise component drawn afresh;
                          x0_hat = (x_c - s_c eps_c) / a_c, eps_c the sampler's own eps at the cut; same cost)
cut_step counts the steps left of a 50-step run (40 = the public code's default), scaled to the run's steps.
NFE per base sample: V (S - c) m for every family (m = 2 for DPM-Solver-2, else 1; S steps, c the cut index),
plus, for a source family, the source's own calls on the steps before the cut.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from benchmark.execution.features import GENERATED, REAL_TEST, every_space
from benchmark.protocols.application_plots import augmentation_grid
from benchmark.protocols.application_utils import (
    batched_sample,
    mean_row,
    nfe_per_row,
    precision_membership,
    predicted_classes,
    to_pixels,
)
from benchmark.protocols.base import ProtocolInputs
from benchmark.protocols.fid_utils import bootstrap_replicates, fid_ci
from benchmark.protocols.resampling import CutProbe, step_index_from_end
from benchmark.protocols.table import MetricRow, row_from_ci
from benchmark.sampling import build_grid, initial_labels, initial_noise
from benchmark.seeding import per_sample_randn
from metrics.diversity import mean_pairwise_distance, vendi_score

NAME = "augmentation"
REDRAW = "redraw"


def features_read(params: dict, config) -> set[tuple[str, str]]:
    """(space, split) pairs of the run's features this protocol reads: its spaces are those of the generated
    features; the real test set's statistics (FID) and, where computed, features (precision)."""
    return every_space(config, GENERATED, REAL_TEST)


def isotropic_name(source: str) -> str:
    return f"isotropic[{source}]"


# ---------------------------------------------------------------------------------------------- pure math
def variance_draws(x_cut: torch.Tensor, var: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """x^v = E[x_c] + sqrt(Var[x_c]) z_v: x_cut, var [B,C,H,W], noise [B,V,C,H,W] -> [B,V,C,H,W]."""
    return x_cut.unsqueeze(1) + var.clamp_min(0).sqrt().unsqueeze(1) * noise


def isotropic_draws(x_cut: torch.Tensor, var: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """x^v = x_c + sigma z_v with sigma^2 = sum(Var[x_c]) / D per sample: the same expected energy
    E||x^v - x_c||^2 = sum(Var[x_c]) as `variance_draws`, spread evenly over the D pixels. [B,V,C,H,W]"""
    per_pixel = var.clamp_min(0).flatten(1).mean(1).view(-1, 1, 1, 1, 1)
    return x_cut.unsqueeze(1) + per_pixel.sqrt() * noise


def redraw_starts(x_cut: torch.Tensor, eps_cut: torch.Tensor, ab_cut: float, noise: torch.Tensor) -> torch.Tensor:
    """x^v = a_c x0_hat + s_c z_v = x_c + s_c (z_v - eps_c), x0_hat = (x_c - s_c eps_c) / a_c. [B,V,C,H,W]"""
    return (x_cut - (1.0 - ab_cut) ** 0.5 * eps_cut).unsqueeze(1) + (1.0 - ab_cut) ** 0.5 * noise


def perturbation_energy(starts: torch.Tensor, x_cut: torch.Tensor) -> torch.Tensor:
    """||x^v - x_c||^2 averaged over the V variants, per base sample: [B,V,C,H,W], [B,C,H,W] -> [B]."""
    return (starts - x_cut.unsqueeze(1)).pow(2).flatten(2).sum(-1).mean(1)


# ---------------------------------------------------------------------------------------------- the passes
@dataclass
class AugmentationResult:
    """Base samples and their variants. Shapes: base_x0 [n,C,H,W]; variants[family] [n,V,C,H,W];
    variance[source] = Var[x_c] [n,C,H,W]; energy[family] [n]; nfe[family]: extra NFEs per base sample
    (measured); cut_index: the grid index of the cut."""

    indices: torch.Tensor
    y: torch.Tensor | None
    base_x0: torch.Tensor
    x_cut: torch.Tensor
    variance: dict[str, torch.Tensor]
    variants: dict[str, torch.Tensor]
    energy: dict[str, torch.Tensor]
    nfe: dict[str, float]
    cut_index: int


def augment(model, indices: torch.Tensor, *, sources: list, cut_index: int, variants: int, sampler: str,
            steps: int, seed: int, batch_size: int, y: torch.Tensor | None = None,
            x_T: torch.Tensor | None = None) -> AugmentationResult:
    """Base samples of `indices` (x_T and labels seeded by index, as in the generation pass), the source
    estimators' Var[x_c] at grid index `cut_index`, and V variants per family finished from the cut.

    `sources`: a function returning fresh estimator instances with `state_variance` (one set per batch)."""
    indices = torch.as_tensor(indices, dtype=torch.long)
    n, shape = indices.numel(), tuple(model.sample_shape)
    if x_T is None:
        x_T = initial_noise(seed, indices, shape).to(model.device)
    if y is None and model.num_classes:
        y = initial_labels(seed, indices, model.num_classes).to(model.device)
    probes: list[CutProbe] = []

    def make_probes() -> list:
        probes.append(CutProbe(cut_index))
        return [probes[-1], *[CutProbe(cut_index, inner) for inner in sources()]]

    base_x0, results = batched_sample(model, x_T, batch_size=batch_size, y=y, indices=indices,
                                      make_estimators=make_probes, sampler=sampler, steps=steps, seed=seed)
    x_cut = torch.cat([p.x_cut for p in probes])
    eps_cut = torch.cat([p.eps_cut for p in probes])
    names = [k for k in results[0].uncertainty if k != "_cut"]
    variance = {k[len("_cut["):-1]: torch.cat([r.uncertainty[k].pixel for r in results]) for k in names}
    propagation = {k[len("_cut["):-1]: nfe_per_row(results, k) for k in names}
    noise = per_sample_randn(seed, indices, (variants, *shape), stream="augmentation", device=x_cut.device,
                             dtype=x_cut.dtype)  # [n,V,C,H,W]
    ab_cut = build_grid(sampler, model.alphas_cumprod, steps)[cut_index].ab_t
    starts = {REDRAW: redraw_starts(x_cut, eps_cut, ab_cut, noise)}
    for source, var in variance.items():
        starts[source] = variance_draws(x_cut, var, noise)
        starts[isotropic_name(source)] = isotropic_draws(x_cut, var, noise)
    rows_idx = indices.repeat_interleave(variants)
    rows_y = None if y is None else y.repeat_interleave(variants)
    out, nfe, energy = {}, {}, {}
    for family, start in starts.items():
        x0, res = batched_sample(model, start.flatten(0, 1), batch_size=batch_size, y=rows_y, indices=rows_idx,
                                 sampler=sampler, steps=steps, seed=seed, start_index=cut_index)
        out[family] = x0.view(n, variants, *shape)
        nfe[family] = variants * nfe_per_row(res) + propagation.get(family, 0.0)
        energy[family] = perturbation_energy(start, x_cut)
    return AugmentationResult(indices, y, base_x0, x_cut, variance, out, energy, nfe, cut_index)


# ---------------------------------------------------------------------------------------------- the protocol
def state_variance_sources(make_estimators) -> list[str]:
    """Names of the run's estimators that expose a state variance (class attribute `state_variance`)."""
    return [e.name for e in make_estimators() if getattr(e, "state_variance", False)]


def run(inputs: ProtocolInputs, params: dict) -> list[MetricRow]:
    cfg, gen, model = inputs.config, inputs.generation, inputs.model
    names = state_variance_sources(inputs.make_estimators)
    if not names:
        return []
    n = min(int(params["num_samples"]), gen.size)
    cut = step_index_from_end(int(params["cut_step"]), cfg.steps, "protocols.augmentation.cut_step")
    result = augment(model, gen.indices[:n], sources=lambda: [e for e in inputs.make_estimators() if e.name in names],
                     cut_index=cut, variants=int(params["variants"]), sampler=cfg.sampler, steps=cfg.steps,
                     seed=cfg.seed, batch_size=cfg.batch_size, y=None if gen.y is None else gen.y[:n].to(model.device))
    inputs.artifacts["augmentation"] = result
    rows = family_rows(inputs, result)
    plot_path = inputs.run_dir / "plots" / "augmentation_grid.png"
    source = names[0]
    families = [source, isotropic_name(source), REDRAW]
    augmentation_grid(to_pixels(model, result.base_x0), result.variance[source],
                      {f: to_pixels(model, result.variants[f].flatten(0, 1)).view(n, -1, *result.base_x0.shape[1:])
                       for f in families}, plot_path)
    inputs.artifacts["augmentation_grid"] = plot_path
    return rows


def family_rows(inputs: ProtocolInputs, result: AugmentationResult) -> list[MetricRow]:
    """Per family: diversity per base sample (`diversity_distance`: mean pairwise feature distance; Vendi),
    fidelity (FID of all variants, precision per base sample), agreement of each variant's class (domain
    classifier; mixture component for the gmm oracle) with its base sample's, perturbation energy and extra
    NFEs; paired differences source - baseline, over base samples."""
    cfg, model = inputs.config, inputs.model
    seed, n_boot = cfg.seed, cfg.bootstrap
    n, variants = result.base_x0.shape[0], next(iter(result.variants.values())).shape[1]
    images = {f: to_pixels(model, v.flatten(0, 1)) for f, v in result.variants.items()}
    per_base: dict[str, dict[str, np.ndarray]] = {f: {} for f in images}
    rows: list[MetricRow] = []
    for space in inputs.fake_features:
        for family, imgs in images.items():
            feats = inputs.extract(space, imgs)
            grouped = feats.reshape(n, variants, -1)
            per_base[family][f"diversity_distance[{space}]"] = np.array([mean_pairwise_distance(g) for g in grouped])
            per_base[family][f"vendi[{space}]"] = np.array([vendi_score(g) for g in grouped])
            rows.append(row_from_ci(NAME, family, f"fid[{space}]",
                                    fid_ci(feats, inputs.reference_stats[space], bootstrap_replicates(space, n_boot),
                                           seed), feats.shape[0], seed))
            real = inputs.real_features.get(space)
            if real is not None:  # improved precision against the fixed real manifold, per base sample
                inside = precision_membership(real, feats).reshape(n, variants)
                per_base[family][f"precision[{space}]"] = inside.mean(1)
    judges = class_judges(inputs)
    for judge, classify in judges.items():
        base_class = classify(to_pixels(model, result.base_x0))
        for family, imgs in images.items():
            same = classify(imgs).reshape(n, variants) == base_class[:, None]
            per_base[family][f"{judge}_agreement"] = same.mean(1)
    for family in images:
        per_base[family]["perturbation_energy"] = result.energy[family].cpu().numpy()
        for metric, values in per_base[family].items():
            rows.append(mean_row(NAME, family, metric, values, n_boot, seed))
        rows.append(MetricRow(NAME, family, "extra_nfe_per_base_sample", result.nfe[family], n=n, seed=seed))
    for source in result.variance:
        for baseline in (isotropic_name(source), REDRAW):
            for metric, values in per_base[source].items():
                if metric != "perturbation_energy":
                    rows.append(mean_row(NAME, source, f"delta_vs_{baseline}.{metric}",
                                         values - per_base[baseline][metric], n_boot, seed))
    return rows


def class_judges(inputs: ProtocolInputs) -> dict:
    """name -> function(images [N,C,H,W]) -> class [N]: the preset's domain classifier ("class") and, on the
    gmm preset, the oracle's most probable mixture component ("mode")."""
    judges = {}
    classifier = inputs.preset.load_classifier()
    if classifier is not None:
        judges["class"] = lambda images: predicted_classes(classifier, images)
    oracle = inputs.preset.oracle() if hasattr(inputs.preset, "oracle") else None
    if oracle is not None:
        judges["mode"] = lambda images: mixture_mode(oracle, images)
    return judges


def mixture_mode(oracle, images: torch.Tensor) -> np.ndarray:
    """argmax_k of log w_k + log N(x; mu_k, s^2 I): the mixture component a clean sample most probably came from."""
    return oracle.responsibilities(images.detach().cpu(), 0).argmax(1).numpy()
