"""Sample quality of a preset's model: FID (Inception and domain-classifier features), label accuracy, a grid.

Used to write each preset's model card and results/models.md:
    python -m benchmark.presets.quality refstats fashion --feature inception [--n 10000]
    python -m benchmark.presets.quality evaluate fashion --samples 2000 --inception-samples 2000
    python -m benchmark.presets.quality heads fashion --samples 200     # the ensemble's class-embedding heads
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from benchmark.presets import PRESETS_DIR, Preset, get


@dataclass
class QualityReport:
    """Quality of `num_samples` generated images (DDIM `steps`), labels drawn uniformly (conditional models)."""

    preset: str
    num_samples: int
    steps: int
    label_accuracy: float | None
    fid_classifier: float | None
    fid_inception: float | None
    inception_samples: int
    inception_reference_n: int | None
    seconds_sampling: float


def chunked_features(extract, images: torch.Tensor, cache_dir: Path | None, chunk: int = 500) -> np.ndarray:
    """Features of images [N,C,H,W] computed chunk by chunk; each chunk is cached as .npy so a killed run resumes."""
    parts = []
    for i in range(0, images.shape[0], chunk):
        path = cache_dir / f"chunk_{i:06d}_{min(i + chunk, images.shape[0]):06d}.npy" if cache_dir else None
        if path is not None and path.is_file():
            parts.append(np.load(path))
            continue
        feats = np.asarray(extract(images[i:i + chunk]), dtype=np.float64)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, feats)
        parts.append(feats)
    return np.concatenate(parts)


def compute_reference_stats(preset: Preset, feature: str, n: int | None = None, cache_dir: Path | None = None,
                            save: bool = True):
    """Statistics of the preset's test split (first n) in `feature` space; saved as ref_stats_<feature>.npz."""
    from metrics import feature_statistics

    data = preset.load_data("test", n=n)
    extract = _extractor(preset, feature)
    stats = feature_statistics(chunked_features(extract, data.images, cache_dir))
    if save and preset.folder:
        save_compact_stats(stats, PRESETS_DIR / preset.folder / f"ref_stats_{feature}.npz")
    return stats


def save_compact_stats(stats, path: Path) -> None:
    """Write mu (float64), sigma (float32, to keep the 2048 x 2048 Inception covariance ~16 MB) and n to an npz.

    float32 rounding of sigma changes an FID by far less than its sampling error (relative 6e-8 per entry).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, mu=np.asarray(stats.mu, dtype=np.float64),
                        sigma=np.asarray(stats.sigma, dtype=np.float32), n=np.int64(stats.n))
    tmp.replace(path)


def _extractor(preset: Preset, feature: str):
    from metrics import build_feature_extractor

    if feature == "classifier":
        return build_feature_extractor("classifier", classifier=preset.load_classifier(), progress=False)
    return build_feature_extractor("inception", progress=False)


def generate(preset: Preset, n: int, steps: int, seed: int = 0, batch_size: int = 250,
             cache: Path | None = None, model=None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """n samples [n,C,H,W] (DDIM `steps`) and their labels [n] (class i % K for a conditional model) of `model`
    (default: the preset's).

    Image presets are clamped to the data range [-1, 1]; gmm samples are not (its exact draws are unbounded).
    """
    from benchmark.sampling.engine import initial_noise, sample

    if cache is not None and cache.is_file():
        blob = torch.load(cache, weights_only=True)
        if blob["x"].shape[0] >= n:
            return blob["x"][:n], None if blob["y"] is None else blob["y"][:n]
    model = model if model is not None else preset.load_model()
    labels = torch.arange(n) % model.num_classes if model.num_classes else None
    xs = []
    with torch.no_grad():
        for i in range(0, n, batch_size):
            idx = torch.arange(i, min(i + batch_size, n))
            x_T = initial_noise(seed, idx, model.sample_shape)
            y = labels[idx] if labels is not None else None
            x0 = sample(model, x_T, sampler="ddim", steps=steps, y=y, seed=seed, indices=idx).x0
            xs.append(x0 if preset.name == "gmm" else x0.clamp(-1, 1))
    x = torch.cat(xs)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"x": x, "y": labels}, cache)
    return x, labels


def evaluate(preset: Preset, num_samples: int = 2000, inception_samples: int = 0, steps: int = 50, seed: int = 0,
             cache_dir: Path | None = None) -> QualityReport:
    """Label accuracy and classifier-feature FID on `num_samples`; Inception FID on the first inception_samples."""
    from metrics import feature_statistics, fid_from_stats

    start = time.perf_counter()
    x, y = generate(preset, num_samples, steps, seed, cache=cache_dir / "samples.pt" if cache_dir else None)
    seconds = time.perf_counter() - start
    clf = preset.load_classifier()
    acc = fid_c = fid_i = None
    ref_n = None
    if clf is not None:
        if y is not None:
            acc = float((clf.predict(x).argmax(-1) == y).float().mean())
        ref = preset.reference_stats("classifier") or compute_reference_stats(preset, "classifier", save=False)
        fid_c = fid_from_stats(feature_statistics(_extractor(preset, "classifier")(x)), ref)
    if inception_samples > 0:
        ref = preset.reference_stats("inception")
        if ref is not None:
            feats = chunked_features(_extractor(preset, "inception"), x[:inception_samples],
                                     cache_dir / "inception" if cache_dir else None)
            fid_i, ref_n = fid_from_stats(feature_statistics(feats), ref), ref.n
    return QualityReport(preset.name, num_samples, steps, acc, fid_c, fid_i, min(inception_samples, num_samples)
                         if fid_i is not None else 0, ref_n, round(seconds, 1))


@dataclass
class HeadQuality:
    """Label accuracy and classifier FID of `num_samples` samples (same x_T and labels i % K for all) drawn with
    the base's own class-embedding table and with each head's (`heads[k]` for head_<k>)."""

    num_samples: int
    steps: int
    base: dict[str, float]
    heads: list[dict[str, float]]


def heads_quality(preset: Preset, num_samples: int = 200, steps: int = 50, seed: int = 0) -> HeadQuality:
    """Sample quality of the preset's class-embedding heads (<model folder>/ensemble_heads) beside the base's."""
    from safetensors.torch import load_file

    from benchmark.models.class_heads import HEAD_KEY, swapped_class_embedding
    from estimators.ensemble_heads import default_head_paths
    from metrics import feature_statistics, fid_from_stats

    model = preset.load_model()
    clf = preset.load_classifier()
    ref = preset.reference_stats("classifier") or compute_reference_stats(preset, "classifier", save=False)

    def measure() -> dict[str, float]:
        x, y = generate(preset, num_samples, steps, seed, model=model)
        fid = fid_from_stats(feature_statistics(_extractor(preset, "classifier")(x)), ref)
        return {"label_accuracy": float((clf.predict(x).argmax(-1) == y).float().mean()), "fid_classifier": fid}

    heads = []
    for path in default_head_paths(model):
        with swapped_class_embedding(model, load_file(str(path))[HEAD_KEY]):
            heads.append({"head": path.name, **measure()})
    return HeadQuality(num_samples, steps, measure(), heads)


def real_data_fid(preset: Preset, n: int, feature: str = "classifier") -> float:
    """FID of the first n *train* images against the committed test statistics: the floor a perfect model
    would reach with n samples (finite-sample bias included)."""
    from metrics import feature_statistics, fid_from_stats

    ref = preset.reference_stats(feature)
    feats = _extractor(preset, feature)(preset.load_data("train", n=n).images)
    return fid_from_stats(feature_statistics(feats), ref)


def oracle_eps_error(preset: Preset, timesteps: tuple[int, ...] = (50, 250, 500, 750, 950), n: int = 500,
                     seed: int = 0) -> dict[int, float]:
    """Per-pixel mean squared gap E||eps_net(x_t, t) - eps*(x_t, t)||^2 / D between the preset's network and its
    oracle's exact eps*, on x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) n with x0 exact test draws (gmm preset)."""
    oracle = preset.oracle()
    if oracle is None:
        return {}
    net = preset.load_model()
    x0 = preset.load_data("test", n=n).images
    gen = torch.Generator().manual_seed(seed)
    out = {}
    with torch.no_grad():
        for t in timesteps:
            ab = float(oracle.alphas_cumprod[t])
            x_t = ab ** 0.5 * x0 + (1 - ab) ** 0.5 * torch.randn(x0.shape, generator=gen)
            gap = net.eps(x_t, t) - oracle.eps(x_t.double(), t).float()
            out[int(t)] = float(gap.pow(2).mean())
    return out


def write_quality_to_card(preset: Preset, report: QualityReport) -> Path | None:
    """Replace the "## Sample quality" section of the preset's model_card.md with `report`."""
    if not preset.folder:
        return None
    card = PRESETS_DIR / preset.folder / "model_card.md"
    text = card.read_text().split("\n## Sample quality")[0].rstrip() if card.is_file() else f"# {preset.name}"
    lines = [f"- {report.num_samples} samples, DDIM {report.steps} steps"
             + (", labels i % 10 (balanced)" if report.label_accuracy is not None else "")]
    if report.label_accuracy is not None:
        lines.append(f"- domain-classifier accuracy on the conditioning labels: {100 * report.label_accuracy:.1f}%")
    if report.fid_classifier is not None:
        lines.append(f"- FID in domain-classifier features (vs the test split): {report.fid_classifier:.2f}")
    if report.fid_inception is not None:
        lines.append(f"- FID with Inception-v3 pool3 features: {report.fid_inception:.2f} "
                     f"({report.inception_samples} samples vs {report.inception_reference_n} test images)")
    card.write_text(text + "\n\n## Sample quality\n\n" + "\n".join(lines) + "\n")
    return card


def save_grid(preset: Preset, path: Path, per_class: int = 8, steps: int = 50, seed: int = 1) -> None:
    """A PNG grid of samples: one row per class (conditional) or an 8x8 grid (unconditional)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = preset.num_classes or 8
    x, _ = _grid_samples(preset, rows, per_class, steps, seed)
    c, h, w = x.shape[1:]
    grid = x.view(rows, per_class, c, h, w).permute(0, 3, 1, 4, 2).reshape(rows * h, per_class * w, c)
    img = ((grid.clamp(-1, 1) + 1) / 2).numpy()
    fig = plt.figure(figsize=(per_class * 0.8, rows * 0.8), dpi=100)
    plt.imshow(img[..., 0] if c == 1 else img, cmap="gray" if c == 1 else None, vmin=0, vmax=1)
    plt.axis("off")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight", pad_inches=0.05)
    plt.close(fig)


def _grid_samples(preset: Preset, rows: int, per_class: int, steps: int, seed: int):
    from benchmark.sampling.engine import initial_noise, sample

    model = preset.load_model()
    n = rows * per_class
    idx = torch.arange(n)
    y = (idx // per_class) if model.num_classes else None
    with torch.no_grad():
        x = sample(model, initial_noise(seed, idx, model.sample_shape), sampler="ddim", steps=steps, y=y,
                   seed=seed, indices=idx).x0
    return x, y


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmark.presets.quality")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("refstats", help="test-set reference statistics, saved beside the preset")
    r.add_argument("preset")
    r.add_argument("--feature", choices=("inception", "classifier"), required=True)
    r.add_argument("--n", type=int, default=None)
    r.add_argument("--cache", default=None, help="folder for per-chunk features (resumable)")
    e = sub.add_parser("evaluate", help="sample quality of the preset's model (JSON to stdout)")
    e.add_argument("preset")
    e.add_argument("--samples", type=int, default=2000)
    e.add_argument("--inception-samples", type=int, default=0)
    e.add_argument("--steps", type=int, default=50)
    e.add_argument("--cache", default=None)
    e.add_argument("--grid", default=None, help="also write a PNG sample grid to this path")
    e.add_argument("--threads", type=int, default=1)
    e.add_argument("--write-card", action="store_true", help="write the result into the preset's model_card.md")
    r.add_argument("--threads", type=int, default=1)
    h = sub.add_parser("heads", help="quality of the preset's class-embedding heads beside its own table (JSON; also "
                                     "recorded in ensemble_heads/heads.json)")
    h.add_argument("preset")
    h.add_argument("--samples", type=int, default=200)
    h.add_argument("--steps", type=int, default=50)
    h.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    preset = get(args.preset)
    cache = Path(args.cache) if getattr(args, "cache", None) else None
    if args.cmd == "refstats":
        stats = compute_reference_stats(preset, args.feature, args.n, cache)
        print(json.dumps({"preset": preset.name, "feature": args.feature, "n": stats.n}))
        return 0
    if args.cmd == "heads":
        from benchmark.models.class_heads import HEAD_FOLDER

        quality = asdict(heads_quality(preset, args.samples, args.steps))
        record = PRESETS_DIR / preset.folder / HEAD_FOLDER / "heads.json"
        if record.is_file():
            record.write_text(json.dumps({**json.loads(record.read_text()), "quality": quality}, indent=2) + "\n")
        print(json.dumps(quality))
        return 0
    report = evaluate(preset, args.samples, args.inception_samples, args.steps, cache_dir=cache)
    if args.grid:
        save_grid(preset, Path(args.grid), steps=args.steps)
    if args.write_card:
        write_quality_to_card(preset, report)
    print(json.dumps(asdict(report)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
