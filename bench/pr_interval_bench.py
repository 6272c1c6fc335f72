"""Coverage of the precision / recall / F1 intervals (issue 31 point 7); writes results/bench/pr_intervals.md.

For each Gaussian case (tests/pr_simulation.py: a fixed real set of N draws of N(0, I_D), generated sets of M draws
of N(0.2, I_D), k = 3), `trials` independent generated sets each get their 95 % intervals from
metrics.precision_recall_bootstrap (100 replicates), by the protocols' scheme ("subsample": recall and F1 by
m-out-of-n subsampling, precision by the Wilson interval) and by the with-replacement percentile bootstrap used
before. The truth, E[metric_M] against the fixed real set, is the mean over `truth_draws` generated sets measured by
a float64 numpy brute force. Reported per metric: coverage (with its binomial sd), the mean position
(value - low) / (high - low) of the point estimate in its interval, and the mean width.

Usage: python bench/pr_interval_bench.py [--trials 1000] [--truth-draws 2000] [--quick]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import Target, machine, record_targets, table, write_report  # noqa: E402
from tests.pr_simulation import METRICS, GaussianCase, simulate  # noqa: E402

CASES = (GaussianCase(dim=8, real_rows=200, fake_rows=100), GaussianCase(dim=32, real_rows=200, fake_rows=100),
         GaussianCase(dim=128, real_rows=200, fake_rows=100), GaussianCase(dim=32, real_rows=1000, fake_rows=500))
SCHEMES = (("subsample", "percentile"), ("replacement", "percentile"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--truth-draws", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="the first two cases only, 200 trials")
    args = parser.parse_args()
    cases, trials = (CASES[:2], 200) if args.quick else (CASES, args.trials)
    rows, covered = [], []
    for case in cases:
        for scheme, interval in SCHEMES:
            start = time.perf_counter()
            result = simulate(case, trials, scheme=scheme, interval=interval, truth_draws=args.truth_draws)
            seconds = time.perf_counter() - start
            for j, name in enumerate(METRICS):
                sd = (result.coverage[j] * (1 - result.coverage[j]) / trials) ** 0.5
                method = "wilson" if scheme == "subsample" and name == "precision" else scheme
                rows.append([f"D={case.dim}, N={case.real_rows}, M={case.fake_rows}", method, name,
                             round(result.truth[j], 4), f"{result.coverage[j]:.3f} ± {sd:.3f}",
                             round(result.position[j], 3), round(result.width[j], 4), round(seconds, 1)])
                if scheme == "subsample":
                    covered.append(result.coverage[j])
            print(f"[bench] {case} {scheme}: coverage {result.coverage}, position {result.position}", flush=True)
    inside = int(sum(0.93 <= c <= 0.97 for c in covered))
    targets = [Target("precision/recall/F1 intervals: coverage of E[metric_M] in 93-97 % on Gaussians",
                      f"{inside} of {len(covered)} (case, metric) pairs inside; range "
                      f"{min(covered):.3f}-{max(covered):.3f}", bool(inside == len(covered)),
                      f"{trials} trials per case, bench/pr_interval_bench.py")]
    if not args.quick:
        record_targets("pr_intervals", targets)
    write_report("pr_intervals.md", "Coverage of the precision / recall / F1 intervals", [
        __doc__.split("\n\n")[1].replace("\n", " "),
        f"{trials} trials per case and scheme; truth from {args.truth_draws} generated sets. Machine: {machine()}.",
        table(["case", "interval", "metric", "E[metric_M]", "coverage", "mean position", "mean width", "s (case)"],
              rows),
        f"Target: {targets[0].target}: {targets[0].figure}."])


if __name__ == "__main__":
    main()
