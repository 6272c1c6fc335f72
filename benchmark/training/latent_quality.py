"""Quality record of the latent preset: reconstruction error, label accuracy and classifier FID per guidance scale.

    python -m benchmark.training.latent_quality --preset fashion-latent --samples 500 --scales 1 3 [--write-card]

Samples use DDIM 50 steps, labels i % 10 (balanced), the decoded images; label accuracy is the fashion domain
classifier's agreement with the conditioning label; FID is computed in that classifier's features against the
committed test-split statistics. Reconstruction RMSE = sqrt(mean (x - D(E[z|x]))^2) on test images in [-1, 1].
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def reconstruction_rmse(model, images: torch.Tensor) -> float:
    """sqrt(mean (x - decode(encode(x)))^2) of images [N,C,H,W] through a latent model's autoencoder."""
    recon = model.decode(model.encode(images))
    return float((recon - images).pow(2).mean().sqrt())


def guided_samples(model, n: int, scale: float, steps: int = 50, seed: int = 0, batch: int = 100
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """(decoded images [n,C,H,W], labels [n] = i % K) sampled with DDIM and guidance scale `scale`."""
    from benchmark.sampling import initial_noise, sample

    model.set_guidance_scale(scale)
    labels = torch.arange(n) % model.num_classes
    images = []
    with torch.no_grad():
        for start in range(0, n, batch):
            idx = torch.arange(start, min(start + batch, n))
            z = sample(model, initial_noise(seed, idx, model.sample_shape), sampler="ddim", steps=steps,
                       y=labels[idx], seed=seed, indices=idx).x0
            images.append(model.decode(z))
    model.set_guidance_scale(1.0)
    return torch.cat(images), labels


def evaluate(preset_name: str, samples: int, scales: list[float], steps: int = 50) -> dict:
    """The quality record (a JSON-able dict) of a latent preset."""
    from benchmark import presets
    from metrics import build_feature_extractor, feature_statistics, fid_from_stats

    preset = presets.get(preset_name)
    model = preset.load_model()
    classifier = preset.load_classifier()
    extract = build_feature_extractor("classifier", classifier=classifier, progress=False)
    reference = preset.reference_stats("classifier")
    test = preset.load_data("test", n=1000).images
    record = {"preset": preset_name, "samples": samples, "steps": steps,
              "reconstruction_rmse_test": round(reconstruction_rmse(model, test), 4), "guidance": {}}
    for scale in scales:
        tick = time.perf_counter()
        images, labels = guided_samples(model, samples, scale, steps)
        accuracy = float((classifier.predict(images).argmax(-1) == labels).float().mean())
        fid = fid_from_stats(feature_statistics(extract(images)), reference)
        record["guidance"][str(scale)] = {"label_accuracy": round(accuracy, 4), "fid_classifier": round(float(fid), 2),
                                          "seconds": round(time.perf_counter() - tick, 1)}
    recon_fid = fid_from_stats(feature_statistics(extract(model.decode(model.encode(test)))), reference)
    record["fid_classifier_of_reconstructed_test_images"] = round(float(recon_fid), 2)
    return record


def write_card(folder: Path, summary: dict, quality: dict) -> Path:
    """model_card.md of the latent preset from the training summary and the quality record."""
    cfg = summary["config"]
    lines = ["# fashion-latent: AutoencoderKL + class-conditional DiT (diffusers DiTPipeline layout)", "",
             "- Data: Fashion-MNIST train split, 28x28 padded to 32x32, [-1, 1] (benchmark/data/datasets.py)",
             f"- Autoencoder: diffusers AutoencoderKL {cfg['ae_arch']}, 32x32x1 -> {summary['latent_shape']} latents, "
             f"{summary['vae_parameters']:,} parameters; loss per-pixel MSE + {cfg['kl_weight']} KL; "
             f"{summary['ae_step']} steps of batch {cfg['ae_batch_size']} ({summary['ae_seconds'] / 60:.1f} min, "
             f"stopped by {summary.get('ae_stop')}); scaling_factor {summary['scaling_factor']:.4f} (1 / std of the "
             "train latents)",
             f"- Denoiser: diffusers DiTTransformer2DModel {cfg['dit_arch']}, dropout {cfg['dropout']}, "
             f"{summary['dit_parameters']:,} parameters, 10 classes + the null class 10 (label dropout 0.1, "
             "diffusers' built-in) for classifier-free guidance",
             f"- Objective: epsilon prediction on scaled latent means, DDPM linear schedule 1e-4..0.02, T = 1000; AdamW "
             f"lr {cfg['dit_lr']}, batch {cfg['dit_batch_size']}, EMA {cfg['ema_decay']} (the saved weights)",
             f"- DiT steps: {summary['dit_step']} ({summary['dit_seconds'] / 60:.1f} min, stopped by "
             f"{summary.get('dit_stop')}), final training loss {summary['dit_final_loss']:.4f}",
             f"- Trained with `python -m benchmark train --what latent --dataset fashion` on {cfg['threads']} CPU "
             "thread of a shared 2-core machine (about 8 other jobs running)", "", "## Quality", "",
             f"- reconstruction RMSE on 1000 test images: {quality['reconstruction_rmse_test']}; classifier FID of those "
             f"reconstructions: {quality['fid_classifier_of_reconstructed_test_images']} (the autoencoder's floor)"]
    for scale, q in quality["guidance"].items():
        lines.append(f"- guidance w = {scale}: {quality['samples']} samples (DDIM {quality['steps']}), label accuracy "
                     f"{100 * q['label_accuracy']:.1f}%, classifier FID {q['fid_classifier']}")
    path = folder / "model_card.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmark.training.latent_quality")
    p.add_argument("--preset", default="fashion-latent")
    p.add_argument("--samples", type=int, default=500)
    p.add_argument("--scales", type=float, nargs="+", default=[1.0, 3.0])
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--summary", default=None, help="training_summary.json; with --write-card writes model_card.md")
    p.add_argument("--write-card", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    quality = evaluate(args.preset, args.samples, args.scales, args.steps)
    print(json.dumps(quality))
    if args.write_card and args.summary:
        from benchmark import presets

        folder = Path(presets.get(args.preset).model.resolved_path())
        write_card(folder, json.loads(Path(args.summary).read_text()), quality)
        (folder / "quality.json").write_text(json.dumps(quality, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
