"""Calibration of the suite's verdicts: false-positive rate under a null with no signal, family-wise rate after the
report's adjustment, and power against planted signals of known strength. No sampling: cached features only.

Source (`fashion`, the default): the Fashion-MNIST test images' features in the fashion preset's domain classifier
space (computed once, cached under results/bench/cache/), the reference statistics of its training images, and
1000 training images' features as the real set of precision. `synthetic` draws the same shapes from Gaussians (the
test suite's reduced run). Each repeat is one "run":
- a pool of N = 600 feature rows drawn without replacement from the bank, K = 500 kept (the demo's sizes);
- per-sample badness b = the Mahalanobis distance of each row to the reference Gaussian (what FID punishes);
- NULL_ESTIMATORS scores with no information (uniform), and planted scores at rho in RHOS:
  s = rho z(b) + sqrt(1 - rho^2) e (a Gaussian copula: corr(s, b) = rho before the rank transform);
- every headline test of the suite on each score: ΔFID vs the mean of R = 100 random K-subsets (randomization
  test), Δprecision (hypergeometric), Spearman of the score with b (a stand-in for -log p: ground truth) and the
  AUROC for the 10 % largest b, and on NUM_IMAGES error maps the AURG t-test and the ΔAUSE paired t-test against a
  random map (planted maps: rho z(error) + sqrt(1 - rho^2) e per pixel);
- the family of the null estimators' tests adjusted by Holm (the report's default): any rejection is a family-wise
  error.
For comparison, "old" is the wave-2 verdict on ΔFID: the interval of the paired with-replacement bootstrap against
ONE random K-subset (metrics.paired_fid_difference, 100 replicates) excluding 0.

    python bench/calibration_bench.py [--repeats 200] [--source fashion|synthetic]   -> results/bench/calibration.md
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, machine, table, write_report  # noqa: E402

from benchmark.protocols.fid_utils import RandomBaseline  # noqa: E402
from benchmark.protocols.ground_truth import auroc_ci, spearman_p_value  # noqa: E402
from benchmark.protocols.precision_recall import pool_inside_real_manifold  # noqa: E402
from metrics import feature_statistics, keep_lowest, paired_fid_difference, random_subset, sparsification  # noqa: E402
from metrics.frechet import FeatureStats  # noqa: E402
from metrics.significance import adjust, hypergeometric_test, paired_t_test  # noqa: E402

POOL, KEEP, NULL_ESTIMATORS, NUM_IMAGES, FRACTIONS = 600, 500, 8, 32, 20
RHOS = (0.1, 0.3, 0.5)
TESTS = ("ΔFID", "Δprecision", "ρ(score, badness)", "AUROC (top 10 % badness)", "AURG", "ΔAUSE")
TARGET_LOW, TARGET_HIGH, TARGET_FWER = 0.025, 0.075, 0.05


@dataclass
class Source:
    """A bank of generated-like feature rows, the reference statistics, the real rows of precision, and images
    whose per-pixel error maps serve the sparsification tests."""

    name: str
    bank: np.ndarray  # [M, D]
    reference: FeatureStats
    real: np.ndarray  # [R, D]
    images: np.ndarray  # [I, H, W] in [-1, 1]


@dataclass
class Calibration:
    """p-values by test: null [repeats * NULL_ESTIMATORS], planted[rho] [repeats]; family errors per repeat."""

    null: dict[str, list[float]] = field(default_factory=lambda: {t: [] for t in TESTS})
    planted: dict[float, dict[str, list[float]]] = field(default_factory=lambda: {r: {t: [] for t in TESTS}
                                                                                  for r in RHOS})
    planted_adjusted: dict[float, dict[str, list[float]]] = field(default_factory=lambda: {r: {t: [] for t in TESTS}
                                                                                           for r in RHOS})
    family_errors: list[bool] = field(default_factory=list)
    family_culprits: list[str] = field(default_factory=list)  # the test of each false verdict after Holm
    old_null: list[bool] = field(default_factory=list)
    old_planted: dict[float, list[bool]] = field(default_factory=lambda: {r: [] for r in RHOS})
    null_deltas: list[float] = field(default_factory=list)  # ΔFID of the null scores (centred on 0?)


def clopper_pearson(hits: int, trials: int, alpha: float = 0.05) -> tuple[float, float]:
    """Exact binomial interval of a rate (Clopper & Pearson 1934), from the beta quantiles."""
    low = 0.0 if hits == 0 else float(stats.beta.ppf(alpha / 2, hits, trials - hits + 1))
    high = 1.0 if hits == trials else float(stats.beta.ppf(1 - alpha / 2, hits + 1, trials - hits))
    return low, high


def synthetic_source(seed: int = 0, dim: int = 16) -> Source:
    rng = np.random.default_rng(seed)
    mixing = np.eye(dim) + 0.3 * rng.normal(size=(dim, dim))
    bank = rng.standard_t(6, size=(6000, dim)) @ mixing + 0.1
    real = rng.normal(size=(1500, dim)) @ mixing
    reference = feature_statistics(real[500:])
    images = np.tanh(rng.normal(size=(NUM_IMAGES, 16, 16)).cumsum(axis=2) / 4)
    return Source("synthetic (16-d Student-t pool vs Gaussian reference)", bank, reference, real[:500], images)


def fashion_source() -> Source:
    """Fashion-MNIST test features in the fashion classifier space (cached), train statistics, 1000 train rows."""
    from benchmark.runner.setup import load_preset
    from metrics import build_feature_extractor

    cache = RESULTS / "cache" / "calibration_fashion.npz"
    preset = load_preset("fashion")
    if cache.is_file():
        saved = np.load(cache)
        bank, real, images = saved["bank"], saved["real"], saved["images"]
    else:
        extract = build_feature_extractor("classifier", classifier=preset.load_classifier())
        test, train = preset.load_data("test"), preset.load_data("train", n=1000)
        bank = np.concatenate([extract(test.images[i:i + 500]) for i in range(0, test.images.shape[0], 500)])
        real = extract(train.images).astype(np.float64)
        images = test.images[:NUM_IMAGES, 0].numpy()
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, bank=bank, real=real, images=images)
    return Source("fashion (classifier features of the Fashion-MNIST test set)", bank.astype(np.float64),
                  preset.reference_stats("classifier"), real.astype(np.float64), images)


def mahalanobis(features: np.ndarray, reference: FeatureStats) -> np.ndarray:
    centred = features - reference.mu
    solved = np.linalg.solve(reference.sigma + 1e-6 * np.eye(reference.sigma.shape[0]), centred.T).T
    return np.sqrt(np.einsum("ij,ij->i", centred, solved))


def zscore(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / x.std()


def planted(rng: np.random.Generator, signal: np.ndarray, rho: float) -> np.ndarray:
    """rho z(signal) + sqrt(1 - rho^2) e, e ~ N(0, 1): corr with the signal rho (0: no information)."""
    return rho * zscore(signal) + math.sqrt(1 - rho * rho) * rng.normal(size=signal.shape)


def sparsification_tests(rng: np.random.Generator, error: np.ndarray, floor_map: np.ndarray,
                         uncertainty: np.ndarray) -> tuple[float, float]:
    """(p of AURG = 0, p of ΔAUSE vs the floor map = 0) for per-pixel maps [I, 1, H, W]."""
    import torch

    ours = sparsification(torch.from_numpy(error), torch.from_numpy(uncertainty), fractions=FRACTIONS, metric="rmse")
    floor = sparsification(torch.from_numpy(error), torch.from_numpy(floor_map), fractions=FRACTIONS, metric="rmse")
    aurg = paired_t_test(np.asarray(ours.aurg_per_image, dtype=np.float64)).p_value
    ause = paired_t_test(np.asarray(ours.ause_per_image) - np.asarray(floor.ause_per_image)).p_value
    return aurg, ause


def one_run(source: Source, repeat: int, result: Calibration, old: bool) -> None:
    rng = np.random.default_rng([2026, repeat])
    pool = source.bank[rng.choice(source.bank.shape[0], POOL, replace=False)]
    badness = mahalanobis(pool, source.reference)
    baseline = RandomBaseline(pool, source.reference, seed=repeat, count=100)
    inside = pool_inside_real_manifold(source.real, pool, 3)
    top = (badness >= np.quantile(badness, 0.9)).astype(np.float64)
    image_rows = rng.choice(source.images.shape[0], NUM_IMAGES, replace=True)
    scale = 0.05 + 0.5 * np.abs(source.images[image_rows])  # heteroscedastic per-pixel noise
    error = np.abs(rng.normal(size=scale.shape) * scale)[:, None].astype(np.float32)
    floor_map = rng.uniform(size=error.shape).astype(np.float32)

    def tests(score: np.ndarray, pixel_map: np.ndarray) -> dict[str, float]:
        mask = keep_lowest(score, KEEP)
        delta = baseline.delta_ci(mask)
        aurg, ause = sparsification_tests(rng, error, floor_map, pixel_map)
        return {"ΔFID": delta.p_value, "Δprecision": hypergeometric_test(inside, mask).p_value,
                "ρ(score, badness)": spearman_p_value(score, badness),
                "AUROC (top 10 % badness)": auroc_ci(top, score, 2, repeat).p_value, "AURG": aurg, "ΔAUSE": ause,
                "_delta": delta.value, "_mask": mask}

    family = []
    for _ in range(NULL_ESTIMATORS):
        got = tests(rng.uniform(size=POOL), rng.uniform(size=error.shape).astype(np.float32))
        for name in TESTS:
            result.null[name].append(got[name])
        family += [got[name] for name in TESTS]
        result.null_deltas.append(got["_delta"])
        if old and len(result.old_null) < (repeat + 1) * 2:
            result.old_null.append(_old_verdict(source, pool, got["_mask"], repeat))
    adjusted = adjust(family, "holm")
    result.family_errors.append(bool((adjusted <= 0.05).any()))
    result.family_culprits += [TESTS[i % len(TESTS)] for i in np.flatnonzero(adjusted <= 0.05)]
    for rho in RHOS:
        score = planted(rng, badness, rho)
        pixel_map = planted(rng, error, rho).astype(np.float32)
        got = tests(score, pixel_map)
        p = [got[name] for name in TESTS]
        adjusted = adjust(family + p, "holm")[-len(TESTS):]  # in the family of this run's other tests
        for name, raw, adj in zip(TESTS, p, adjusted):
            result.planted[rho][name].append(raw)
            result.planted_adjusted[rho][name].append(adj)
        if old:
            result.old_planted[rho].append(_old_verdict(source, pool, got["_mask"], repeat))


def _old_verdict(source: Source, pool: np.ndarray, mask: np.ndarray, repeat: int) -> bool:
    """Wave 2's ΔFID verdict: paired with-replacement bootstrap against ONE random K-subset, interval excludes 0."""
    ci = paired_fid_difference(None, pool, mask, random_subset(POOL, KEEP, repeat), n_boot=100, seed=repeat,
                               real_stats=source.reference, interval="shifted", resample_real=False)
    return ci.low > 0 or ci.high < 0


def calibrate(source: Source, repeats: int, old: bool = True, old_repeats: int | None = None) -> Calibration:
    """`repeats` runs; wave 2's ΔFID verdict (slow: 100 FIDs a score) on the first `old_repeats` (all by default)."""
    result = Calibration()
    for repeat in range(repeats):
        one_run(source, repeat, result, old and (old_repeats is None or repeat < old_repeats))
    return result


def fwer_verdict(hits: int, trials: int) -> str:
    """'met' when the point estimate is <= 5 %; else whether the interval still holds 5 % (not shown either way),
    with the binomial p of so many hits if Holm over 48 exact independent tests (1 - (1 - 0.05/48)^48) held."""
    if hits / trials <= TARGET_FWER:
        return "met"
    nominal = 1.0 - (1.0 - TARGET_FWER / (NULL_ESTIMATORS * len(TESTS))) ** (NULL_ESTIMATORS * len(TESTS))
    p = float(stats.binom.sf(hits - 1, trials, nominal))
    low, _ = clopper_pearson(hits, trials)
    return (("NOT met (interval above 5 %)" if low > TARGET_FWER else "not shown: the point estimate is above 5 %, "
             "the interval holds it") + f"; {hits} hits against {nominal * trials:.1f} expected for exact tests "
            f"(binomial p = {p:.2g})")


def rate(p_values: list[float], alpha: float = 0.05) -> tuple[int, int]:
    finite = [p for p in p_values if math.isfinite(p)]
    return sum(p <= alpha for p in finite), len(finite)


def report(result: Calibration, source: Source, repeats: int, seconds: float) -> Path:
    rows = []
    tail = 0.05 / (NULL_ESTIMATORS * len(TESTS))  # Holm's first threshold in the run's family
    for name in TESTS:
        hits, trials = rate(result.null[name])
        low, high = clopper_pearson(hits, trials)
        ok = TARGET_LOW <= hits / trials <= TARGET_HIGH
        tail_hits, _ = rate(result.null[name], tail)
        rows.append([name, trials, f"{hits / trials:.3f}", f"[{low:.3f}, {high:.3f}]", "met" if ok else "NOT met",
                     f"{tail_hits} (expected {tail * trials:.1f})", result.family_culprits.count(name)])
    fam_hits, fam_trials = sum(result.family_errors), len(result.family_errors)
    fam_low, fam_high = clopper_pearson(fam_hits, fam_trials)
    power = []
    for rho in RHOS:
        for name in TESTS:
            raw, n = rate(result.planted[rho][name])
            adj, _ = rate(result.planted_adjusted[rho][name])
            power.append([rho, name, f"{raw / n:.2f}", f"{adj / n:.2f}"])
    old_rows = []
    if result.old_null:
        old_fpr = np.mean(result.old_null)
        old_rows.append(["no information (null)", f"{old_fpr:.3f}", f"{rate(result.null['ΔFID'])[0] / len(result.null['ΔFID']):.3f}"])
        for rho in RHOS:
            old_rows.append([f"planted rho = {rho}", f"{np.mean(result.old_planted[rho]):.2f}",
                             f"{rate(result.planted[rho]['ΔFID'])[0] / repeats:.2f}"])
        old_rows.append(["(runs)", len(result.old_planted[RHOS[0]]), repeats])
    deltas = np.asarray(result.null_deltas)
    paragraphs = [
        f"Source: {source.name}. {repeats} repeats (runs), each with {NULL_ESTIMATORS} no-information scores and one "
        f"planted score per rho; pool N = {POOL}, K = {KEEP}; {NUM_IMAGES} error maps for the sparsification tests. "
        f"{machine()}; {seconds:.0f} s.",
        "## False-positive rate of each test under the null (target: 2.5 %-7.5 %, 95 % Clopper-Pearson interval)",
        table(["test", "null tests", "rate p <= 5 %", "95 % interval", "target", f"p <= {tail:.2g} (Holm's first step)",
               "false verdicts after Holm"], rows),
        f"ΔFID of the no-information scores: mean {deltas.mean():+.4f}, sd {deltas.std(ddof=1):.4f} (centred on 0: "
        "the baseline is the mean over R random K-subsets, not one draw).",
        "## Family-wise error rate of the findings (Holm over each run's null family)",
        f"Family: {NULL_ESTIMATORS} null estimators × {len(TESTS)} tests = {NULL_ESTIMATORS * len(TESTS)} per run. "
        f"Runs with at least one false verdict: {fam_hits}/{fam_trials} = {fam_hits / fam_trials:.3f} "
        f"[{fam_low:.3f}, {fam_high:.3f}]; target <= {TARGET_FWER:.0%}: {fwer_verdict(fam_hits, fam_trials)}.",
        "## Power against planted signals (share of runs with p <= 5 %; adjusted: Holm within the run's family)",
        table(["rho", "test", "power (raw)", "power (Holm-adjusted)"], power),
    ]
    if old_rows:
        paragraphs += ["## ΔFID: wave 2's verdict (one random K-subset, with-replacement paired bootstrap) vs now",
                       table(["score", "old: rate of 'significant'", "new: rate p <= 5 %"], old_rows)]
    return write_report("calibration.md", "Calibration of the verdicts (issue 23)", paragraphs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--source", choices=("fashion", "synthetic"), default="fashion")
    parser.add_argument("--no-old", action="store_true", help="skip wave 2's ΔFID verdict (slow: 100 FIDs a score)")
    parser.add_argument("--old-repeats", type=int, default=None, help="wave 2's verdict on the first N runs only")
    args = parser.parse_args()
    source = fashion_source() if args.source == "fashion" else synthetic_source()
    start = time.perf_counter()
    result = calibrate(source, args.repeats, old=not args.no_old, old_repeats=args.old_repeats)
    print(report(result, source, args.repeats, time.perf_counter() - start))


if __name__ == "__main__":
    main()
