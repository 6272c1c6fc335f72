"""Protocol `rectification`: replace the samples an estimator flags, and measure whether the set improves.

BayesDiff's second application ("rectifying artifacts", no public code; reviews describe rejection sampling on
the pixel uncertainty, notes/anchors.md Sec. 8) as two procedures. Triggered = score above the q-th percentile
of the generation pass's scores (`percentile`, default 90).
  rejection  regenerate the sample from new x_T (the sample of global index N (r + 1) + i, with the label of i)
             R times (`tries`) and keep the try with the lowest score.
  region     re-noise the sample to step k (`renoise_step`, steps left of a 50-step run) and resample only the
             pixels whose map value is above the image's p-th percentile (`mask_percentile`), the other pixels
             following the original trajectory (RePaint replacement, resampling.py); R tries (fresh re-noising
             draws), keep the try with the lowest score (the estimator observes the resampled steps only).
Baselines at equal NFE (same number of replaced samples, same R, same per-try cost): the same procedure on a
random set of samples of the same size (`<est>|random_trigger`) and, for region, with a random mask of the same
number of pixels per image (`<est>|random_mask`).
NFE per triggered sample: rejection R (S m + e_S), region R ((S - k) m + e_k), with S steps, m sampler calls
per step (2 for DPM-Solver-2) and e the estimator's own calls per sample over the steps it observes; the
original trajectory of a region-resampled sample is replayed once (S m, reported apart as `replay_nfe`: a
deployment keeps it from the generation pass).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from benchmark.execution.features import GENERATED, REAL_TEST, every_space
from benchmark.protocols.application_utils import batched_sample, nfe_per_row
from benchmark.protocols.base import ProtocolInputs
from benchmark.protocols.rectification_outcomes import Outcomes
from benchmark.protocols.resampling import TrajectoryRecorder, region_resample, step_index_from_end
from benchmark.protocols.table import MetricRow
from benchmark.sampling import initial_noise
from benchmark.seeding import per_sample_randn

NAME = "rectification"
REJECTION, REGION = "rejection", "region"
Scorer = Callable[[object], torch.Tensor]  # SampleResult -> scores [B] (lower = better)


def features_read(params: dict, config) -> set[tuple[str, str]]:
    """(space, split) pairs of the run's features this protocol reads: generated features before rectification, the
    real test set's statistics (FID) and, where computed, features (precision)."""
    return every_space(config, GENERATED, REAL_TEST)


# ---------------------------------------------------------------------------------------------- selections
def triggered(scores: np.ndarray, percentile: float) -> np.ndarray:
    """Indices (sorted) of the samples whose score is above the q-th percentile of `scores` [N]."""
    scores = np.asarray(scores, dtype=np.float64)
    return np.flatnonzero(scores > np.percentile(scores, percentile))


def random_trigger(num_samples: int, count: int, seed: int) -> np.ndarray:
    """`count` distinct sample indices (sorted) drawn uniformly from range(num_samples), fixed by `seed`."""
    return np.sort(np.random.default_rng([seed, 15]).permutation(num_samples)[:count])


def percentile_mask(pixel_map: torch.Tensor, mask_percentile: float) -> torch.Tensor:
    """bool [B,C,H,W]: map values above their image's p-th percentile (over all C*H*W values), as in Alg. 2 of
    De Vita & Belagiannis; at least one pixel per image (its maximum)."""
    flat = pixel_map.flatten(1).to(torch.float64)
    threshold = torch.quantile(flat, mask_percentile / 100.0, dim=1, keepdim=True)
    mask = (flat > threshold) | (flat == flat.amax(1, keepdim=True))
    return mask.view_as(pixel_map)


def random_mask_like(mask: torch.Tensor, seed: int, indices: torch.Tensor) -> torch.Tensor:
    """bool [B,C,H,W] with the same number of True values per image as `mask`, at uniformly random positions
    (seeded per sample index)."""
    keys = per_sample_randn(seed, indices, mask.shape[1:], stream="rectification-mask").flatten(1)
    counts = mask.flatten(1).sum(1)
    ranks = keys.argsort(1).argsort(1)  # rank of each position among a random order
    return (ranks < counts.unsqueeze(1)).view_as(mask)


def try_indices(indices: torch.Tensor, attempt: int, num_samples: int) -> torch.Tensor:
    """Global sample indices of try `attempt` (0-based): N (attempt + 1) + i, disjoint from the N generated ones."""
    return indices + num_samples * (attempt + 1)


# ---------------------------------------------------------------------------------------------- the passes
@dataclass
class Tries:
    """R tries per triggered sample: x0 [m,R,C,H,W]; scores[scorer] [m,R]; sampler_nfe and estimator_nfe
    (per estimator name) per try and sample, measured."""

    indices: torch.Tensor
    x0: torch.Tensor
    scores: dict[str, torch.Tensor]
    sampler_nfe: float
    estimator_nfe: dict[str, float]

    def lowest(self, scorer: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0 [m,C,H,W], score [m]) of the try with the lowest score (the first one on ties)."""
        best = self.scores[scorer].argmin(1)
        rows = torch.arange(best.numel(), device=best.device)
        return self.x0[rows, best], self.scores[scorer][rows, best]

    def cost_per_try(self, scorer: str) -> float:
        """NFEs of one try of one sample when only `scorer`'s estimator is run (sampler + its own calls)."""
        return self.sampler_nfe + self.estimator_nfe.get(scorer, 0.0)


def _stack_tries(indices, x0s: list, results: list, scorers: dict[str, Scorer]) -> Tries:
    """x0s / results: per try, the chunks' x0 and SampleResults (chunks in row order)."""
    scores = {name: torch.stack([torch.cat([f(r).detach().cpu() for r in res]) for res in results], 1)
              for name, f in scorers.items()}
    names = results[0][0].uncertainty
    per_try = [nfe_per_row(res) for res in results]
    est = {k: float(np.mean([nfe_per_row(res, k) for res in results])) for k in names}
    return Tries(indices, torch.stack(x0s, 1).cpu(), scores, float(np.mean(per_try)), est)


def rejection_tries(model, indices: torch.Tensor, y: torch.Tensor | None, *, tries: int, num_samples: int,
                    scorers: dict[str, Scorer], make_estimators=None, sampler: str, steps: int, seed: int,
                    batch_size: int) -> Tries:
    """Regenerate the samples of `indices` R times from new x_T (index `try_indices`), labels kept."""
    x0s, results = [], []
    for attempt in range(tries):
        idx = try_indices(indices, attempt, num_samples)
        x_T = initial_noise(seed, idx, model.sample_shape).to(model.device)
        x0, res = batched_sample(model, x_T, batch_size=batch_size, y=y, indices=idx, make_estimators=make_estimators,
                                 sampler=sampler, steps=steps, seed=seed)
        x0s.append(x0)
        results.append(res)
    return _stack_tries(indices, x0s, results, scorers)


@dataclass
class Replay:
    """The original trajectories of some samples from grid step k on: states / eps {step index: [m,C,H,W]}."""

    indices: torch.Tensor
    states: dict[int, torch.Tensor]
    eps: dict[int, torch.Tensor]
    x0: torch.Tensor
    nfe: float

    def rows(self, wanted: torch.Tensor) -> tuple[dict, dict, torch.Tensor]:
        """(states, eps, x0) of the samples `wanted` (a subset of `indices`), in that order."""
        pos = torch.as_tensor([int((self.indices == i).nonzero()) for i in wanted.tolist()], dtype=torch.long,
                              device=self.indices.device)
        return ({k: v[pos] for k, v in self.states.items()}, {k: v[pos] for k, v in self.eps.items()}, self.x0[pos])


def replay(model, indices: torch.Tensor, y: torch.Tensor | None, *, start_index: int, sampler: str, steps: int,
           seed: int, batch_size: int) -> Replay:
    """Regenerate the samples of `indices` from their x_T, recording the trajectory from `start_index` on."""
    recorders: list[TrajectoryRecorder] = []

    def make() -> list:
        recorders.append(TrajectoryRecorder(start_index))
        return [recorders[-1]]

    x_T = initial_noise(seed, indices, model.sample_shape).to(model.device)
    x0, res = batched_sample(model, x_T, batch_size=batch_size, y=y, indices=indices, make_estimators=make,
                             sampler=sampler, steps=steps, seed=seed)
    states = {k: torch.cat([r.states[k] for r in recorders]) for k in recorders[0].states}
    eps = {k: torch.cat([r.eps[k] for r in recorders]) for k in recorders[0].eps}
    return Replay(indices, states, eps, x0, nfe_per_row(res))


def region_tries(model, original: Replay, indices: torch.Tensor, y: torch.Tensor | None, masks: torch.Tensor, *,
                 tries: int, start_index: int, scorers: dict[str, Scorer], make_estimators=None, sampler: str,
                 steps: int, seed: int, batch_size: int) -> Tries:
    """R region resamplings of the samples `indices` (rows of `original`) with masks [m,C,H,W]; try r re-noises
    with z seeded by (seed, index, r)."""
    states, eps, x0_orig = original.rows(indices)
    x0s, results = [], []
    for attempt in range(tries):
        noise = per_sample_randn(seed, indices, model.sample_shape, stream="rectification-renoise", step=attempt,
                                 device=x0_orig.device, dtype=x0_orig.dtype)
        chunks_x0, chunks = [], []
        for start in range(0, indices.numel(), batch_size):
            rows = slice(start, min(start + batch_size, indices.numel()))
            res = region_resample(model, {k: v[rows] for k, v in states.items()}, {k: v[rows] for k, v in eps.items()},
                                  masks[rows].to(x0_orig.device), x0_orig[rows], noise[rows], start_index=start_index,
                                  sampler=sampler, steps=steps, seed=seed, indices=indices[rows],
                                  y=None if y is None else y[rows],
                                  estimators=make_estimators() if make_estimators is not None else ())
            chunks_x0.append(res.x0)
            chunks.append(res)
        x0s.append(torch.cat(chunks_x0))
        results.append(chunks)
    return _stack_tries(indices, x0s, results, scorers)


# ---------------------------------------------------------------------------------------------- the protocol
def map_to_state_shape(pixel_map: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """An estimator map [B,C',H',W'] on the grid of the sampler state [C,H,W]: unchanged when the shapes agree,
    else its channel mean area-resized to (H, W) and repeated over C. (A latent model's own latent maps, kept
    by the generation pass as extras["latent_map.<name>"], are used when present: masks live in latent space.)"""
    if tuple(pixel_map.shape[1:]) == tuple(shape):
        return pixel_map
    resized = torch.nn.functional.interpolate(pixel_map.mean(1, keepdim=True), size=tuple(shape[1:]), mode="area")
    return resized.expand(-1, shape[0], -1, -1)


def run(inputs: ProtocolInputs, params: dict) -> list[MetricRow]:
    cfg, gen, model = inputs.config, inputs.generation, inputs.model
    names = [n for n in inputs.estimator_names if n != "random"]  # `random` is the trigger of the baselines
    if not names:
        return []
    tries, q, p = int(params["tries"]), float(params["percentile"]), float(params["mask_percentile"])
    k = step_index_from_end(int(params["renoise_step"]), cfg.steps, "protocols.rectification.renoise_step")
    common = dict(sampler=cfg.sampler, steps=cfg.steps, seed=cfg.seed, batch_size=cfg.batch_size)
    trig = {n: torch.as_tensor(triggered(gen.scores[n].numpy(), q), dtype=torch.long, device="cpu") for n in names}
    names = [n for n in names if trig[n].numel() > 0]  # constant scores flag nothing: nothing to replace
    rand = {n: torch.as_tensor(random_trigger(gen.size, len(t), cfg.seed), dtype=torch.long, device="cpu")
            for n, t in trig.items()}
    if not names:
        return []
    union = torch.as_tensor(sorted({int(i) for n in names for i in [*trig[n], *rand[n]]}), dtype=torch.long,
                            device="cpu")
    labels = None if gen.y is None else gen.y.to(model.device)
    sub_y = (lambda idx: None if labels is None else labels[idx])
    scorers = {n: (lambda res, n=n: res.uncertainty[n].score) for n in names}
    outcome = Outcomes(inputs)
    rejection = rejection_tries(model, union, sub_y(union), tries=tries, num_samples=gen.size, scorers=scorers,
                                make_estimators=inputs.make_estimators, **common)
    for n in names:
        for label, idx in ((n, trig[n]), (f"{n}|random_trigger", rand[n])):
            pos = torch.searchsorted(union, idx)
            new_x0, new_score = rejection.lowest(n)
            outcome.add(REJECTION, label, idx, new_x0[pos], tries * rejection.cost_per_try(n),
                        old_score=gen.scores[n][idx], new_score=new_score[pos])
    original = replay(model, union, sub_y(union), start_index=k, **common)
    for n in tqdm(names, desc="rectification (region)", disable=not inputs.progress, unit="estimator"):
        only = (lambda n=n: [e for e in inputs.make_estimators() if e.name == n])
        maps = map_to_state_shape(gen.extras.get(f"latent_map.{n}", gen.pixels[n]), tuple(model.sample_shape))
        own = percentile_mask(maps[trig[n]], p)
        for label, idx, masks in ((n, trig[n], own), (f"{n}|random_mask", trig[n], random_mask_like(own, cfg.seed,
                                  trig[n])), (f"{n}|random_trigger", rand[n], percentile_mask(maps[rand[n]], p))):
            result = region_tries(model, original, idx, sub_y(idx), masks, tries=tries, start_index=k,
                                  scorers={n: scorers[n]}, make_estimators=only, **common)
            outcome.add(REGION, label, idx, result.lowest(n)[0], tries * result.cost_per_try(n),
                        mask_fraction=float(masks.float().mean()))
    rows = outcome.rows()
    rows.append(MetricRow(NAME, "(replay)", "region.replay_nfe_per_sample", original.nfe * union.numel() / gen.size,
                          n=int(union.numel()), seed=cfg.seed))
    return rows
