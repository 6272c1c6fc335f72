"""What the fidelity/diversity rows and the stratified null add to filtered_fid's time, at the demo's size.

Synthetic features of the demo's shape: N = 600 generated, K = 500 kept, 10 classes, 11 filters (random scores), the
demo's curve fractions and 200 bootstrap replicates; a classifier-like space (real test features of 10 000 rows, so
KID, density and coverage run) and a 2048-d Inception-like space (committed statistics only: the FID terms and the
stratified null run, KID/density/coverage say "(not run)"). Each space is timed twice on one thread, with the code
as it is and with the additions switched off (no fidelity_diversity rows; the stratified filter against the uniform
random K-subsets, as before issue 31), alternately REPEATS times, keeping the fastest of each (the machine may be
shared): the difference is the added time.

    OMP_NUM_THREADS=1 python bench/filtered_fid_cost.py [--no-inception] [classifier_dim ...]
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmark.protocols import filtered_fid  # noqa: E402
from benchmark.protocols.base import ProtocolInputs  # noqa: E402
from benchmark.protocols.fid_utils import RandomBaseline  # noqa: E402
from metrics import feature_statistics  # noqa: E402

N, K, REAL, CLASSES, FILTERS, REPEATS = 600, 500, 10_000, 10, 11, 3
PARAMS = {"curve_fractions": [0.5, 0.6, 0.7, 0.8, 0.9, 1.0], "fid_infinity_points": 5, "random_subsets": 100}


def inputs(dim: int, with_real: bool, seed: int = 0) -> ProtocolInputs:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(CLASSES, dim))
    labels = rng.integers(0, CLASSES, N)
    pool = np.abs(centres[labels] + rng.normal(size=(N, dim)))  # non-negative, like post-ReLU activations
    real = np.abs(centres[rng.integers(0, CLASSES, REAL)] + rng.normal(size=(REAL, dim)))
    scores = {f"filter_{i}": torch.from_numpy(rng.uniform(size=N)) for i in range(FILTERS)}
    generation = SimpleNamespace(size=N, scores=scores, y=torch.from_numpy(labels))
    return ProtocolInputs(config=SimpleNamespace(keep=K, bootstrap=200, seed=seed), run_dir=None, model=None,
                          preset=None, generation=generation, fake_features={"space": pool},
                          real_features={"space": real} if with_real else {},
                          reference_stats={"space": feature_statistics(real)}, extract=None, make_estimators=list,
                          progress=False)


def seconds(case: ProtocolInputs, additions: bool) -> float:
    start = time.perf_counter()
    if additions:
        filtered_fid.run(case, PARAMS)
    else:
        with mock.patch.object(filtered_fid, "character_rows", lambda *a, **k: []), \
                mock.patch.object(RandomBaseline, "stratified", lambda self, labels: self):
            filtered_fid.run(case, PARAMS)
    return time.perf_counter() - start


def main(dims: list[int], inception: bool = True) -> None:
    print(f"filtered_fid at N = {N}, K = {K}, {FILTERS} filters, one thread, fastest of {REPEATS}: seconds "
          "without / with the additions")
    cases = [(f"classifier-like {d}-d, real features", d, True) for d in dims]
    cases += [("inception-like 2048-d, statistics only", 2048, False)] if inception else []
    for label, dim, with_real in cases:
        case = inputs(dim, with_real)
        times = [(seconds(case, False), seconds(case, True)) for _ in range(REPEATS)]
        before, after = min(t[0] for t in times), min(t[1] for t in times)
        print(f"{label:40s} {before:7.1f} {after:7.1f}  added {after - before:+6.1f} s ({(after / before - 1):+.0%})",
              flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    main([int(a) for a in args if a != "--no-inception"] or [64, 128], "--no-inception" not in args)
