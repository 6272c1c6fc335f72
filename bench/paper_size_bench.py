"""The metrics at paper size: time and peak memory at N up to 50 000 samples of 2048-d features (issue 35 item 3).

Not part of `make bench` (the full sizes take ~40 min of CPU on one thread); run it by hand:

    OMP_NUM_THREADS=1 .venv/bin/python bench/paper_size_bench.py --jobs 4   # writes results/bench/paper_size.md
    .venv/bin/python bench/paper_size_bench.py --sizes 500 1000 --images 50 100 --out /tmp/x.md   # a quick check

Each (metric, N) runs in a fresh process (`--child`), so its peak RSS (getrusage ru_maxrss) is that metric's own,
next to the process's RSS once its inputs exist. Features are synthetic (correlated Gaussians, float32; timings do
not depend on what the features are), there is no sampling and no feature network. The metrics are the suite's own
functions, called as the protocols call them:

    fid              reference statistics of the real set, then FID with the protocols' subsampling interval
                     (benchmark.protocols.fid_utils.fid_ci, 100 replicates)
    kid              metrics.kid.kid (the unbiased MMD^2 with the cubic kernel over every pair)
    precision_recall metrics.precision_recall (k = 3)
    density_coverage metrics.density_coverage (k = 5)
    filtered_fid     the filtered_fid protocol's random K-subsets baseline (RandomBaseline: R = 100 random
                     K = 0.8 N subsets) and one filter's delta_vs_random with its randomization test
    sparsification   AUSE / AURG (per image and pooled) of B images of 32 x 32 x 3 (B = the --images sizes)

Targets: every metric at N = 50 000 (sparsification: 10 000 images) within 10 min on 2 cores and 8 GB peak RSS,
recorded in results/bench/targets/paper_size.json. The bench runs at 1 thread (--threads), so meeting the 2-core
time target at 1 thread is conservative.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import common  # noqa: F401  (puts the repository on sys.path)
from common import ROOT, Target, machine, record_targets, table, write_report

FEATURE_METRICS = ("fid", "kid", "precision_recall", "density_coverage", "filtered_fid")
METRICS = FEATURE_METRICS + ("sparsification",)
DIM = 2048
REPLICATES = 100  # the protocols' bootstrap replicates and random K-subsets (fid_utils.MIN_REPLICATES, R)
KEEP_FRACTION = 0.8
TARGET_SECONDS, TARGET_MIB = 600.0, 8 * 1024.0
MEASURED = ROOT / "results" / "bench" / "paper_size_measured.jsonl"  # one Measurement per line (--resume)


@dataclass
class Measurement:
    """One metric at one size, measured in a fresh process."""

    metric: str
    size: int  # N feature rows per set (sparsification: images)
    seconds: float  # wall-clock
    cpu_seconds: float  # the process's CPU time (user + system) over the metric: what an idle core would take
    rss_inputs_mib: float  # RSS once the inputs exist, before the metric runs
    peak_rss_mib: float  # the process's peak RSS (ru_maxrss)
    value: str  # the metric's figure, to show that it computed something sensible


def synthetic_features(rows: int, dim: int, seed: int, shift: float = 0.0):
    """Correlated Gaussian features [rows, dim] float32: a fixed low-rank-plus-noise covariance; `seed` draws rows."""
    import numpy as np

    basis = np.random.default_rng(1234).normal(size=(dim // 4, dim)).astype(np.float32) / np.sqrt(dim // 4)
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(rows, dim // 4)).astype(np.float32)
    return latent @ basis + 0.1 * rng.normal(size=(rows, dim)).astype(np.float32) + np.float32(shift)


def _rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _feature_metric(metric: str, real, fake) -> str:
    """Run one feature metric on real [N, D] and fake [N, D]; its figure as text (each imports only what it runs)."""
    if metric == "kid":
        from metrics.kid import kid

        return f"KID {kid(fake, real):.4g}"
    if metric == "precision_recall":
        from metrics.precision_recall import precision_recall

        result = precision_recall(real, fake, k=3)
        return f"P {result.precision:.4f}, R {result.recall:.4f}"
    if metric == "density_coverage":
        from metrics.density_coverage import density_coverage

        result = density_coverage(real, fake)
        return f"density {result.density:.4f}, coverage {result.coverage:.4f}"
    import numpy as np

    from benchmark.protocols.fid_utils import RandomBaseline, fid_ci, keep_lowest
    from metrics.frechet import feature_statistics

    if metric == "fid":
        ci = fid_ci(fake, feature_statistics(real), REPLICATES, seed=0)
        return f"FID {ci.value:.4g} [{ci.low:.4g}, {ci.high:.4g}]"
    keep = int(round(KEEP_FRACTION * fake.shape[0]))
    baseline = RandomBaseline(fake, feature_statistics(real), seed=0, count=REPLICATES)
    scores = np.random.default_rng(5).normal(size=fake.shape[0])
    spread, delta = baseline.spread_ci(keep), baseline.delta_ci(keep_lowest(scores, keep))
    return f"random-K FID {spread.value:.4g}, delta {delta.value:.3g} (p {delta.p_value:.2f})"


def _sparsification(images: int) -> tuple[str, object]:
    """Error and uncertainty maps [B, 3, 32, 32]; returns a closure running per-image and pooled AUSE / AURG."""
    import torch

    from metrics import sparsification, sparsification_pooled

    generator = torch.Generator().manual_seed(0)
    error = torch.randn((images, 3, 32, 32), generator=generator)
    uncertainty = error.abs() + torch.rand((images, 3, 32, 32), generator=generator)

    def run() -> str:
        per_image, pooled = sparsification(error, uncertainty), sparsification_pooled(error, uncertainty)
        return f"AUSE {per_image.ause:.4f}, AURG {per_image.aurg:.4f}; pooled AUSE {pooled.ause:.4f}"

    return run


def child(metric: str, size: int, threads: int, dim: int = DIM) -> None:
    """Build the inputs, run `metric` once, print a Measurement as JSON (the last line of stdout)."""
    import torch

    torch.set_num_threads(threads)
    if metric == "sparsification":
        run = _sparsification(size)
    else:
        real = synthetic_features(size, dim, seed=0)
        fake = synthetic_features(size, dim, seed=1, shift=0.02)
        run = lambda: _feature_metric(metric, real, fake)  # noqa: E731
    before = _rss_mib()
    start, cpu_start = time.perf_counter(), time.process_time()
    value = run()
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(Measurement(metric, size, seconds, cpu_seconds, before, peak, value).__dict__))


def measure(metric: str, size: int, threads: int, dim: int, record: Path | None) -> Measurement:
    """Run one (metric, size) in a fresh process; its Measurement, appended to `record` (JSON lines) when given."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "OPENBLAS_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, __file__, "--child", metric, str(size), "--threads", str(threads),
                           "--dim", str(dim)],
                          env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{metric} at {size} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    line = done.stdout.strip().splitlines()[-1]
    found = Measurement(**json.loads(line))
    print(f"[bench] {metric} at {size}: {found.seconds:.1f} s ({found.cpu_seconds:.1f} s CPU), "
          f"peak RSS {found.peak_rss_mib:.0f} MiB, {found.value}", file=sys.stderr)
    if record is not None:
        with open(record, "a") as handle:  # kept as each one ends, so that --resume skips it
            handle.write(line + "\n")
    return found


def measured_before(dim: int) -> dict[tuple[str, int], Measurement]:
    """The measurements MEASURED holds (--resume): the latest one of each (metric, size) at the full dimension."""
    if dim != DIM or not MEASURED.exists():
        return {}
    rows = [Measurement(**json.loads(line)) for line in MEASURED.read_text().splitlines() if line.strip()]
    return {(m.metric, m.size): m for m in rows}


def growth_exponent(sizes: list[int], values: list[float]) -> float:
    """b of values ~ sizes^b, least squares on log-log over every size (nan with fewer than 2 positive values)."""
    points = [(math.log(s), math.log(v)) for s, v in zip(sizes, values) if v > 0]
    if len(points) < 2:
        return float("nan")
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    return (sum((x - mean_x) * (y - mean_y) for x, y in points)
            / sum((x - mean_x) ** 2 for x, _ in points))


def targets(largest: dict[str, Measurement], full_size: bool) -> list[Target]:
    """One time and one memory target per metric at its largest measured size. Time: the process's CPU seconds on
    its 1 thread (what one idle core takes; the wall-clock on the shared machine is in the note)."""
    found = []
    for metric, m in largest.items():
        unit = "images of 32x32x3" if metric == "sparsification" else f"x {DIM}-d features"
        where = f"N = {m.size} {unit}" + ("" if full_size else " (NOT the paper size)")
        found.append(Target(f"{metric} at paper size within 10 min on 2 cores", f"{m.cpu_seconds:.0f} s",
                            full_size and m.cpu_seconds <= TARGET_SECONDS,
                            f"CPU time of 1 thread of a shared 2-core machine (wall-clock {m.seconds:.0f} s); {where}"))
        found.append(Target(f"{metric} at paper size within 8 GB", f"{m.peak_rss_mib / 1024:.2f} GiB peak RSS",
                            full_size and m.peak_rss_mib <= TARGET_MIB, f"whole process, inputs included; {where}"))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[6250, 12500, 50000])
    parser.add_argument("--images", type=int, nargs="+", default=[1250, 2500, 5000, 10000])
    parser.add_argument("--metrics", nargs="+", choices=METRICS, default=list(METRICS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=1, help="measurements run at once (each in its own process on "
                        "--threads threads; the CPU time judged is each one's own, the wall-clock grows)")
    parser.add_argument("--resume", action="store_true", help="skip the (metric, N) already measured in "
                        "results/bench/paper_size_measured.jsonl (each measurement is appended there as it ends)")
    parser.add_argument("--dim", type=int, default=DIM, help="feature dimension (2048: Inception's)")
    parser.add_argument("--out", type=Path, default=None, help="report path (default results/bench/paper_size.md, "
                        "and the targets are recorded only then)")
    parser.add_argument("--child", nargs=2, metavar=("METRIC", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.threads, args.dim)
        return
    where = machine(threads=args.threads)
    start = time.perf_counter()
    record = MEASURED if args.dim == DIM and args.out is None else None  # a quick check keeps nothing
    before = measured_before(args.dim) if args.resume and record is not None else {}
    if record is not None and not args.resume:
        record.unlink(missing_ok=True)
    jobs = [(metric, size) for metric in args.metrics
            for size in (args.images if metric == "sparsification" else args.sizes) if (metric, size) not in before]
    jobs.sort(key=lambda job: -job[1] if job[0] != "sparsification" else 0)  # the longest first, with --jobs > 1
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        found = list(pool.map(lambda job: measure(*job, args.threads, args.dim, record), jobs)) + list(before.values())
    results = {metric: sorted((m for m in found if m.metric == metric and m.size in
                               (args.images if metric == "sparsification" else args.sizes)), key=lambda m: m.size)
               for metric in args.metrics}
    report(results, where, args, time.perf_counter() - start)


def method(where: str, args: argparse.Namespace, total: float) -> list[str]:
    """The report's paragraphs on how the numbers were measured."""
    return [
        f"Written by `bench/paper_size_bench.py` in {total / 60:.1f} min (not in `make bench`: run it by hand, "
        "`OMP_NUM_THREADS=1 .venv/bin/python bench/paper_size_bench.py --jobs 4`; `--resume` goes on after an "
        "interruption). "
        f"{where}. Every time is **1 thread of a shared 2-core machine** (OMP_NUM_THREADS = "
        f"torch.set_num_threads = {args.threads}), {args.jobs} measurement(s) at a time; the target says 2 cores, "
        "so a metric meeting it on 1 thread meets it conservatively. The time judged is the process's CPU time over "
        "the metric (user + system: what one idle core takes); the wall-clock beside it also counts the other jobs "
        "of the shared machine.",
        f"Synthetic features: real and generated sets of N rows each, {args.dim}-d, float32, correlated Gaussians (a "
        "fixed low-rank-plus-noise covariance; the generated set shifted by 0.02), no sampling and no feature network. "
        f"fid: reference statistics of the real set, then FID with the protocols' subsampling interval ({REPLICATES} "
        f"replicates, `fid_utils.fid_ci`). filtered_fid: the protocol's random K-subsets baseline (R = {REPLICATES} "
        f"subsets of K = {KEEP_FRACTION} N, `fid_utils.RandomBaseline`) and one filter's delta_vs_random with its "
        "randomization test. kid: `metrics.kid.kid` over every pair. precision_recall: k = 3; density_coverage: "
        "k = 5. sparsification: per-image and pooled AUSE/AURG (rmse, 50 fractions) of B random error / uncertainty "
        "maps of 32x32x3. One fresh process per (metric, N): the peak RSS (getrusage ru_maxrss) is the metric's own, "
        "inputs included (the RSS once the inputs exist is beside it). Building the synthetic inputs (float64 draws, "
        "cast to float32) peaks at ~3.3 GiB at N = 50 000, so at that size a peak near 3.3 GiB is the inputs' "
        "and the metric's own is at most the peak: an upper bound.",
    ]


def report(results: dict[str, list[Measurement]], where: str, args: argparse.Namespace, total: float) -> None:
    """results/bench/paper_size.md and the targets (or only the tables at --out, for a quick check)."""
    largest = {metric: rows[-1] for metric, rows in results.items()}
    full_size = max(args.sizes) >= 50000 and max(args.images) >= 10000 and args.dim == DIM
    rows = [[metric, "; ".join(str(m.size) for m in ms), last.size, last.cpu_seconds, last.seconds,
             last.rss_inputs_mib, last.peak_rss_mib, growth_exponent([m.size for m in ms], [m.cpu_seconds for m in ms]),
             last.value] for metric, ms in results.items() for last in [ms[-1]]]
    per_size = [[m.metric, m.size, m.cpu_seconds, m.seconds, m.rss_inputs_mib, m.peak_rss_mib, m.value]
                for ms in results.values() for m in ms]
    times = ["CPU time (s)", "wall-clock (s)", "RSS with inputs (MiB)", "peak RSS (MiB)"]
    paragraphs = method(where, args, total) + [
        "## At the largest size",
        table(["metric", "sizes", "N", *times, "exponent b", "figure"], rows),
        "Exponent b of CPU time ~ N^b: least squares on log-log over the sizes (2 = quadratic: the pairwise "
        "metrics; the FID bootstrap costs D^2 per row and a D^3 eigendecomposition per replicate, so b < 1 while "
        "the eigendecompositions dominate).",
        "## Every size",
        table(["metric", "N", *times, "figure"], per_size),
    ]
    if args.out is not None:
        args.out.write_text("# The metrics at paper size\n\n" + "\n\n".join(paragraphs) + "\n")
        print(f"[bench] wrote {args.out}")
        return
    found = targets(largest, full_size)
    record_targets("paper_size", found)
    paragraphs += [CHANGES, "## Targets (issue 35)", table(["target", "measured", "met", "note"], [
        [t.target, t.figure, "met" if t.met else "NOT met", t.note] for t in found])]
    write_report("paper_size.md", "The metrics at paper size (N = 50 000, 2048-d)", paragraphs)


CHANGES = """## What changed in the metrics for this size (issue 35)

Measured first at N = 3125 and 6250 and extrapolated (x 64 for the pairwise metrics), the code before this change
would have missed at N = 50 000: precision/recall (~670 s), KID (~600 s even with half of the blocks; pow alone was
half of a block's time), the FID interval and the random K-subsets baseline (143 s at N = 3125; at 50 000 a 0.8 N-row
Gram product per replicate, ~9 s each, ~900 s for 100), density/coverage (an n x m membership matrix in float32:
10 GB). The changes, each checked against the unchunked / brute-force computation in
tests/test_metrics_chunked_paths.py and by the metrics' existing tests:

- `metrics.precision_recall.knn_squared_radii`: only the blocks on and above the diagonal of a set's distances
  are computed, each serving its rows and, transposed, its columns (N^2 / 2 distances instead of N^2); a diagonal
  block is made exactly symmetric, and `squared_distances(x, x)` fills the same entries, so metrics.pr_bootstrap
  still reads the very distances the radii come from. Radii equal a float64 brute force to float32 round-off.
- `metrics.kid`: the within-set sums use the blocks from the diagonal on (half the kernel entries); the kernel
  is cubed in place by two products instead of pow. Same value to ~1e-13 relative (torchmetrics parity to 1e-9).
- `metrics.bootstrap.FixedReferenceFID`: a replicate whose counts differ from 1 on fewer than half of its drawn
  rows (every subsample of 0.8 N; the random K-subsets) updates the full scatter Y^T Y, computed once, by the
  rows left out: a product over 0.2 N rows instead of 0.8 N. Equal to the FID of the copied rows to 1e-10.
- `metrics.density_coverage.density_coverage` streams the distance blocks (per generated row the number of real
  balls holding it, per real ball whether it holds one): no n x m matrix, the same integer counts, so the same
  bits. `SubsetDensityCoverage` (the filtered_fid protocol's rows) keeps its matrix as bool (4x less) and
  multiplies it in row blocks (exact: integer counts).

Not covered here: the filtered_fid protocol's per-subset KID (`metrics.kid.SubsetKID`) holds the pool's N x N
kernel matrix (20 GB in float64 at N = 50 000); at paper size that row needs the same blockwise treatment."""


if __name__ == "__main__":
    main()
