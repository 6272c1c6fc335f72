"""Cost of each estimator in a sampling pass, and what sharing one trajectory saves.

1. Per estimator: wall-clock of a pass with it vs without it (time ratio) next to its NFE ratio
   (base + extra NFEs) / base. If every network evaluation cost the same and the framework added nothing,
   the two ratios would be equal; `overhead` = time ratio / NFE ratio - 1 is what the estimator's
   bookkeeping, its non-network maths and the different batch shapes of its calls add (or save).
   The engine itself is compared with a bare DDIM loop (the network and the update, nothing else).
2. All estimators in one pass vs each in its own pass: the shared trajectory pays the base NFEs once.

Paper settings: DDIM 50 steps; sensitivity and MC-Dropout M = 5 on steps 45..48; BayesDiff with its
defaults (skip 5, 10 Monte-Carlo draws), its Laplace posterior fitted here on 256 training images
(not saved). Passes are interleaved round-robin so that load from other processes hits all alike.

Usage: python bench/estimators_bench.py [--batch 32] [--steps 50] [--rounds 5]
"""
from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

import common  # noqa: F401  (puts the repository on sys.path)
import torch

from common import machine, subject, table, write_report

ESTIMATORS = {"random": {}, "sensitivity": {"m": 5}, "mc_dropout": {"m": 5}, "bayesdiff": {}}


@dataclass
class Pass:
    label: str
    seconds: list[float]  # wall-clock of each round
    network: list[float]  # of which inside the network (the UNet's forward), each round
    nfe: float  # network evaluations per sample, sampler + estimators
    extra_nfe: float  # the estimators' part

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def outside_network(self) -> float:
        """Median seconds spent outside the network: the engine, the estimators' maths and bookkeeping."""
        return statistics.median(t - n for t, n in zip(self.seconds, self.network))


class NetworkClock:
    """Adds up the seconds spent inside the model's networks (forward hooks on its direct sub-modules, e.g.
    the diffusers UNet), whichever model method called them."""

    def __init__(self, model) -> None:
        self.seconds, self._start = 0.0, 0.0
        for net in model.children():
            net.register_forward_pre_hook(self._enter)
            net.register_forward_hook(self._leave)

    def _enter(self, *_args) -> None:
        self._start = time.perf_counter()

    def _leave(self, *_args) -> None:
        self.seconds += time.perf_counter() - self._start


def bare_ddim(model, x_T: torch.Tensor, y, steps: int) -> torch.Tensor:
    """The reference loop: x <- x_coef x + eps_coef eps(x, t), calling the network directly."""
    from benchmark.sampling import build_grid

    x = x_T
    for g in build_grid("ddim", model.alphas_cumprod, steps):
        t = torch.full((x.shape[0],), g.t, dtype=torch.long)
        x = g.coefficients.x_coef * x + g.coefficients.eps_coef * model.predict_eps(x, t, y)
    return x


def fit_posterior(model, preset, num_images: int):
    """A last-layer Laplace posterior fitted on the preset's first training images (kept in memory, so that
    a posterior shipped with the preset is neither used nor replaced)."""
    from estimators.laplace import LastLayerLaplace

    data = preset.load_data("train", n=num_images)
    batches = [(data.images[i:i + 64], None if data.labels is None else data.labels[i:i + 64])
               for i in range(0, len(data.images), 64)]
    return LastLayerLaplace(model).fit(batches, num_images=len(data.images), progress=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)

    import estimators
    from benchmark.sampling import initial_labels, initial_noise, sample

    subj = subject()
    model = subj.model
    where = machine()
    params = {**ESTIMATORS, "bayesdiff": {"laplace": fit_posterior(model, subj.preset, 256)}}
    idx = torch.arange(args.batch)
    x_T = initial_noise(0, idx, model.sample_shape)
    y = initial_labels(0, idx, model.num_classes) if model.num_classes else None

    def engine(names: list[str]):
        return lambda: sample(model, x_T, sampler="ddim", steps=args.steps, y=y, seed=0, indices=idx,
                              estimators=[estimators.create(n, **params[n]) for n in names])

    passes = {"(bare loop)": (lambda: bare_ddim(model, x_T, y, args.steps)), "(no estimator)": engine([])}
    passes.update({name: engine([name]) for name in ESTIMATORS})
    passes["(all in one pass)"] = engine(list(ESTIMATORS))
    nfe = {}
    for label, run in passes.items():  # warm-up, and the NFE counts
        out = run()
        if label != "(bare loop)":
            extra = sum(r.nfe for r in out.uncertainty.values())
            nfe[label] = (out.nfe + extra, extra)
    nfe["(bare loop)"] = (float(args.steps), 0.0)
    clock = NetworkClock(model)
    seconds: dict[str, list[float]] = {label: [] for label in passes}
    network: dict[str, list[float]] = {label: [] for label in passes}
    for _ in range(args.rounds):
        for label, run in passes.items():
            clock.seconds = 0.0
            start = time.perf_counter()
            run()
            seconds[label].append(time.perf_counter() - start)
            network[label].append(clock.seconds)
    results = {label: Pass(label, seconds[label], network[label], *nfe[label]) for label in passes}
    report(results, args, subj.name, where)


def report(results: dict[str, Pass], args, preset: str, where: str) -> None:
    base, bare = results["(no estimator)"], results["(bare loop)"]
    rows = []
    for name in ESTIMATORS:
        p = results[name]
        nfe_ratio, time_ratio = p.nfe / base.nfe, p.median / base.median
        network_ratio = statistics.median(p.network) / statistics.median(base.network)
        rows.append([name, p.extra_nfe, nfe_ratio, time_ratio, f"{100 * (time_ratio / nfe_ratio - 1):+.1f}%",
                     "yes" if abs(time_ratio / nfe_ratio - 1) <= 0.05 else "no", network_ratio,
                     1e3 * (p.outside_network - base.outside_network), 1e3 * p.median])
    engine_overhead = base.median / bare.median - 1
    per_estimator = table(["estimator", "extra NFE / sample", "NFE ratio", "time ratio", "overhead",
                           "within 5%", "network-time ratio", "extra ms outside the network", "pass (ms)"], rows)
    separate = [results[name] for name in ESTIMATORS]
    together = results["(all in one pass)"]
    sep_time, sep_nfe = sum(p.median for p in separate), sum(p.nfe for p in separate)
    shared = table(["", "NFE / sample", "wall-clock (s, median)"], [
        ["each estimator in its own pass (sum of 4 passes)", sep_nfe, sep_time],
        ["all estimators in one pass", together.nfe, together.median],
        ["saved by the shared trajectory", sep_nfe - together.nfe, sep_time - together.median],
    ])
    spread = max((max(p.seconds) - min(p.seconds)) / p.median for p in results.values())
    write_report("estimator_overhead.md", "Per-estimator cost: time ratio vs NFE ratio", [
        f"Preset `{preset}`, DDIM {args.steps} steps, a batch of {args.batch} samples, median of {args.rounds} "
        f"interleaved rounds after a warm-up. {where}. Written by `bench/estimators_bench.py`.",
        per_estimator,
        f"NFE ratio = (sampler NFEs + the estimator's NFEs) / sampler NFEs; time ratio = pass with the estimator "
        f"/ pass without; overhead = time ratio / NFE ratio - 1. Network-time ratio: seconds inside the network "
        f"(the UNet's forward) with the estimator / without; it differs from the NFE ratio when the "
        f"estimator's calls have other batch shapes. Extra ms outside the network: what the estimator adds outside "
        f"network calls (its maths, the engine's bookkeeping for it) per pass of {args.batch} samples. "
        f"The engine without estimators takes "
        f"{1e3 * base.median:.1f} ms vs {1e3 * bare.median:.1f} ms for a bare DDIM loop calling the network "
        f"directly ({100 * engine_overhead:+.1f}%: NFE accounting, the finiteness check of every output, step "
        f"contexts). Largest (max - min) / median over the rounds of one pass: {100 * spread:.0f}%.",
        "Where the overhead is far from 0 it is the shape of the extra calls, not bookkeeping: sensitivity "
        "evaluates its M re-noised copies of all samples as one large batch (cheaper per row than the sampler's "
        "batch), MC-Dropout makes one call of M rows per sample so that each sample's dropout masks depend on "
        "that sample alone (many small calls), and BayesDiff does non-network work per uncertainty step "
        "(the closed-form last-layer variance, a convolution of squared features, and its Monte-Carlo "
        "moments), none of which counts as an NFE.",
    ])
    write_report("shared_trajectory.md", "One shared trajectory vs one pass per estimator", [
        f"Preset `{preset}`, DDIM {args.steps} steps, batch {args.batch}, estimators "
        f"{', '.join(ESTIMATORS)}, median of {args.rounds} rounds. {where}.",
        shared,
        f"Sharing the trajectory pays the {base.nfe:g} sampler NFEs per sample once instead of "
        f"{len(separate)} times: {100 * (1 - together.nfe / sep_nfe):.0f}% fewer NFEs and "
        f"{100 * (1 - together.median / sep_time):.0f}% less wall-clock here.",
    ])


if __name__ == "__main__":
    main()
