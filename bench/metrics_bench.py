"""Benchmark of the metrics against the reference implementations; writes results/bench/metrics.md.

1. Fréchet distance at 2048-d: ours (eigh route) vs the clean-fid / pytorch-fid formula (scipy.linalg.sqrtm).
2. Precision / recall at N x 2048: ours (chunked) vs torch-fidelity 0.4's prc_features_to_metric.
3. Peak extra memory of our precision / recall at N = 10k (a fresh process; peak RSS above the inputs).
4. One FID bootstrap replicate (count-weighted statistics) at 5k x 2048.
1 and 4 run twice: with numpy's default BLAS threads and with 1 BLAS thread (threadpoolctl).

Usage: python bench/metrics_bench.py [--pr-rows 5000] [--memory-rows 10000] [--out results/bench/metrics.md]
Features are random correlated Gaussians (timings do not depend on what the features are).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from threadpoolctl import threadpool_info, threadpool_limits  # noqa: E402

from metrics import fid_bootstrap, feature_statistics, frechet_distance, precision_recall  # noqa: E402
from tests.test_metrics_frechet import sqrtm_frechet  # noqa: E402
from tests.test_metrics_reference import load_prc_features_to_metric  # noqa: E402


def random_features(rows: int, dim: int, seed: int, shift: float = 0.0) -> np.ndarray:
    """Correlated Gaussian features [rows, dim] float32: one fixed low-rank-plus-noise covariance, `seed` draws rows."""
    basis = np.random.default_rng(1234).normal(size=(dim // 4, dim)).astype(np.float32) / np.sqrt(dim // 4)
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(rows, dim // 4)).astype(np.float32)
    return latent @ basis + 0.1 * rng.normal(size=(rows, dim)).astype(np.float32) + shift


def timed(function, repeats: int) -> tuple[float, object]:
    """Median wall-clock seconds over `repeats` calls, and the last result."""
    seconds, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), result


def blas_threads() -> int:
    return max((pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"), default=0)


def bench_frechet(dim: int, rows: int) -> dict:
    stats_a = feature_statistics(random_features(rows, dim, 0))
    stats_b = feature_statistics(random_features(rows, dim, 1, shift=0.05))
    args = (stats_a.mu, stats_a.sigma, stats_b.mu, stats_b.sigma)
    ours_s, ours = timed(lambda: frechet_distance(*args), 3)
    scipy_s, reference = timed(lambda: sqrtm_frechet(*args), 1)
    return dict(dim=dim, ours_s=ours_s, scipy_s=scipy_s, ratio=scipy_s / ours_s, value=ours,
                rel_diff=abs(ours - reference) / abs(reference), blas_threads=blas_threads())


def bench_precision_recall(rows: int, dim: int) -> dict:
    real = torch.from_numpy(random_features(rows, dim, 2))
    fake = torch.from_numpy(random_features(rows, dim, 3, shift=0.02))
    ours_s, ours = timed(lambda: precision_recall(real, fake, k=3), 1)
    prc_features_to_metric, how = load_prc_features_to_metric()
    ref_s, ref = timed(lambda: prc_features_to_metric(fake, real, prc_neighborhood=3, prc_batch_size=10000,
                                                      save_cpu_ram=False, verbose=False), 1)
    return dict(rows=rows, dim=dim, ours_s=ours_s, ref_s=ref_s, ratio=ref_s / ours_s, how=how,
                ours=(ours.precision, ours.recall), ref=(ref["precision"], ref["recall"]))


MEMORY_CHILD = """
import json, sys, numpy as np, torch
sys.path.insert(0, {root!r})
from bench.metrics_bench import random_features
from metrics import precision_recall

def peak_kib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))

real = torch.from_numpy(random_features({rows}, {dim}, 4)); fake = torch.from_numpy(random_features({rows}, {dim}, 5))
before = peak_kib()
result = precision_recall(real, fake, k=3)
print(json.dumps(dict(before_kib=before, after_kib=peak_kib(), inputs_mib=2 * real.numel() * 4 / 2**20)))
"""


def bench_memory(rows: int, dim: int) -> dict:
    """Peak RSS growth of precision_recall in a fresh process (Linux /proc VmHWM), inputs already allocated."""
    code = MEMORY_CHILD.format(root=str(ROOT), rows=rows, dim=dim)
    start = time.perf_counter()
    output = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    record = json.loads(output.strip().splitlines()[-1])
    return dict(rows=rows, dim=dim, extra_mib=(record["after_kib"] - record["before_kib"]) / 1024,
                inputs_mib=record["inputs_mib"], seconds=time.perf_counter() - start)


def bench_bootstrap(rows: int, dim: int, n_boot: int = 8) -> dict:
    real, fake = random_features(rows, dim, 6), random_features(rows, dim, 7, shift=0.05)
    start = time.perf_counter()
    fid_bootstrap(real, fake, n_boot=n_boot, seed=0)
    return dict(rows=rows, dim=dim, n_boot=n_boot, per_replicate_s=(time.perf_counter() - start) / n_boot,
                blas_threads=blas_threads())


def with_one_blas_thread(function, *args) -> dict:
    with threadpool_limits(limits=1, user_api="blas"):
        return function(*args) | dict(blas_threads=1)


def frechet_row(frechet: dict) -> str:
    return (f"| Fréchet distance, {frechet['dim']}-d (eigh vs scipy.linalg.sqrtm of s1 s2), {frechet['blas_threads']} "
            f"BLAS thread(s) | {frechet['ours_s']:.2f} s | {frechet['scipy_s']:.2f} s | **{frechet['ratio']:.1f}x** | "
            f"rel. diff {frechet['rel_diff']:.1e} |")


def report(frechets: list[dict], prc: dict, memory: dict, boots: list[dict]) -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return "\n".join([
        "# Metrics benchmark",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch "
        f"{torch.__version__} with {torch.get_num_threads()} threads, numpy {np.__version__}; "
        f"1-min load average at the end {load:.1f} (the machine is shared: absolute times are noisy, ratios less so).",
        "Written by `python bench/metrics_bench.py`. Features: random correlated Gaussians, float32.",
        "",
        "| what | ours | reference | reference / ours | agreement |",
        "|---|---|---|---|---|",
        *[frechet_row(frechet) for frechet in frechets],
        f"| Precision/recall k=3, {prc['rows']} x {prc['dim']} (vs torch-fidelity 0.4 prc_features_to_metric) | "
        f"{prc['ours_s']:.1f} s | {prc['ref_s']:.1f} s | **{prc['ratio']:.2f}x** | P {prc['ours'][0]:.4f} vs "
        f"{prc['ref'][0]:.4f}, R {prc['ours'][1]:.4f} vs {prc['ref'][1]:.4f} |",
        "",
        f"Peak memory of our precision/recall at N = {memory['rows']} x {memory['dim']} (real and fake): "
        f"**{memory['extra_mib']:.0f} MiB** above the {memory['inputs_mib']:.0f} MiB of inputs "
        f"(peak RSS growth in a fresh process; {memory['seconds']:.0f} s including start-up). "
        f"An N x N float32 distance matrix alone would be {memory['rows'] ** 2 * 4 / 2 ** 20:.0f} MiB.",
        "",
        *[f"FID bootstrap ({boot.get('blas_threads', blas_threads())} BLAS thread(s)): {boot['per_replicate_s']:.2f} s "
          f"per replicate at {boot['rows']} x {boot['dim']} (count-weighted statistics projected once on the "
          "reference covariance factor)." for boot in boots],
        "",
        "On this shared, oversubscribed 2-core machine OpenBLAS with 2 threads makes eigh/eigvalsh several times",
        "slower than with 1 thread (busy-waiting threads); hence both settings above.",
        "",
        f"torch-fidelity was imported {prc['how']}.",
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--fid-rows", type=int, default=4096, help="rows behind each covariance of the FID timing")
    parser.add_argument("--pr-rows", type=int, default=5000)
    parser.add_argument("--memory-rows", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench" / "metrics.md")
    args = parser.parse_args()
    frechets = [bench_frechet(args.dim, args.fid_rows), with_one_blas_thread(bench_frechet, args.dim, args.fid_rows)]
    for frechet in frechets:
        print(f"FID ({frechet['blas_threads']} BLAS threads): ours {frechet['ours_s']:.2f}s scipy "
              f"{frechet['scipy_s']:.2f}s ratio {frechet['ratio']:.1f}", flush=True)
    prc = bench_precision_recall(args.pr_rows, args.dim)
    print(f"P&R: ours {prc['ours_s']:.1f}s torch-fidelity {prc['ref_s']:.1f}s ratio {prc['ratio']:.2f}", flush=True)
    memory = bench_memory(args.memory_rows, args.dim)
    print(f"P&R memory at {args.memory_rows}: {memory['extra_mib']:.0f} MiB", flush=True)
    boots = [bench_bootstrap(args.pr_rows, args.dim), with_one_blas_thread(bench_bootstrap, args.pr_rows, args.dim)]
    text = report(frechets, prc, memory, boots)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(args.out)
    print(text)


if __name__ == "__main__":
    main()
