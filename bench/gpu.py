"""GPU cost table at the paper's settings: plain DDIM-50 vs each estimator, on the CIFAR-10 DDPM architecture.

The network is a random-init diffusers UNet2DModel with the exact architecture of google/ddpm-cifar10-32
(`CIFAR10_DDPM_UNET` below, its config.json; no weights are downloaded: timings do not depend on them),
with dropout 0.1 as in Ho et al.'s CIFAR-10 training (the hub config leaves dropout at its default 0, which
would leave MC-Dropout nothing to sample). Settings of De Vita & Belagiannis (sensitivity and MC-Dropout:
M = 5, steps 45..48 of 50) and of BayesDiff-Skip (S = 10 Monte-Carlo draws every 5th step; its last-layer
Laplace posterior fitted on 64 random images, which costs the same as a real fit of that size).

Reports, per estimator: extra NFEs per sample, NFE ratio, wall-clock ratio vs plain sampling (paired,
median over interleaved rounds, CUDA synchronised), images/s, next to the paper's 1.28-1.38x
(De Vita & Belagiannis, cost table, M = 5, 50 steps, GPU). Written to results/bench/gpu.md.

    python bench/gpu.py                 # on a GPU: batch 250, 3 rounds
    python bench/gpu.py --autocast bf16 # the network's forward calls under bf16 autocast (run.autocast)
    python bench/gpu.py --tiny          # CPU smoke of the same code (batch 2, 10 steps, metrics at N = 200): make bench

--device and --autocast go through the run's own checks and settings (`resolve_device`, `apply_run_settings`: the
`run.device` / `run.autocast` of a config), so the bench places and casts exactly as a run does.
"""
from __future__ import annotations

import argparse
import statistics
import time

import common  # noqa: F401  (puts the repository on sys.path)
import torch
from common import Target, machine, record_targets, table, write_report

#: config.json of google/ddpm-cifar10-32 (diffusers UNet2DModel), 35.7M parameters
CIFAR10_DDPM_UNET = {
    "sample_size": 32, "in_channels": 3, "out_channels": 3, "layers_per_block": 2,
    "block_out_channels": (128, 256, 256, 256),
    "down_block_types": ("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    "act_fn": "silu", "attention_head_dim": None, "center_input_sample": False, "downsample_padding": 0,
    "flip_sin_to_cos": False, "freq_shift": 1, "mid_block_scale_factor": 1, "norm_eps": 1e-6,
    "norm_num_groups": 32, "time_embedding_type": "positional",
}
PAPER_SETTINGS = {"sensitivity": {"m": 5, "window": (45, 49)}, "mc_dropout": {"m": 5, "window": (45, 49)},
                  "bayesdiff": {"mc_samples": 10, "skip": 5}}
PAPER_TIME_RATIO = "1.28-1.38"


def build_model(device: torch.device, dropout: float = 0.1):
    """The CIFAR-10 DDPM UNet, random init, wrapped as a DiffusionModel (linear betas 1e-4..0.02, T = 1000)."""
    from diffusers import UNet2DModel

    from benchmark.models import DiffusersUNet

    torch.manual_seed(0)
    unet = UNet2DModel(**CIFAR10_DDPM_UNET, dropout=dropout)
    return DiffusersUNet(unet).to(device).eval()


def random_posterior(model, device: torch.device, num_images: int = 64):
    from estimators.laplace import LastLayerLaplace

    gen = torch.Generator(device="cpu").manual_seed(0)
    images = (torch.rand(num_images, *model.sample_shape, generator=gen, device="cpu") * 2 - 1).to(device)
    batches = [(images[i:i + 32], None) for i in range(0, num_images, 32)]
    return LastLayerLaplace(model).fit(batches, num_images=num_images, progress=False)


def timed(run, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    run()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def metrics_table(rows: int) -> str:
    """The suite's feature metrics on the machine that hosts the GPU, N = `rows` per set of 2048-d synthetic features
    (bench/paper_size_bench.py's inputs and calls): the metrics run on the CPU side whatever run.device is (features
    are moved to the CPU when they come in), so this row says what a GPU machine's CPU adds after sampling."""
    from paper_size_bench import DIM, FEATURE_METRICS, _feature_metric, synthetic_features

    real, fake = synthetic_features(rows, DIM, seed=0), synthetic_features(rows, DIM, seed=1, shift=0.02)
    found = []
    for metric in FEATURE_METRICS:
        start = time.perf_counter()
        figure = _feature_metric(metric, real, fake)
        found.append([metric, time.perf_counter() - start, figure])
    return (f"Metrics at N = {rows} per set, {DIM}-d synthetic features, {torch.get_num_threads()} thread(s) "
            "(paper size, N = 50 000 on 1 CPU thread: results/bench/paper_size.md):\n\n"
            + table(["metric", "seconds", "figure"], found))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="as run.device")
    parser.add_argument("--autocast", default="off", help="as run.autocast: off, bf16 or fp16 (cuda only)")
    parser.add_argument("--tiny", action="store_true", help="batch 2, 10 steps, 1 round: keeps the script alive on CPU")
    parser.add_argument("--out", default=None, help="default gpu.md (gpu_<autocast>.md under autocast)")
    parser.add_argument("--metric-rows", type=int, default=10_000,
                        help="N feature rows per set for the metrics table (2048-d synthetic features)")
    args = parser.parse_args()
    args.out = args.out or ("gpu.md" if args.autocast == "off" else f"gpu_{args.autocast}.md")
    if args.tiny:
        args.batch, args.steps, args.rounds, args.out, args.metric_rows = 2, 10, 1, "gpu_tiny_cpu.md", 200
    torch.set_grad_enabled(False)

    import estimators
    from benchmark.errors import ConfigError
    from benchmark.models.precision import check_autocast
    from benchmark.models.run_settings import apply_run_settings
    from benchmark.runner.setup import resolve_device
    from benchmark.sampling import initial_noise, sample

    try:  # the run's checks (a device this machine has, an autocast it runs), before the model is built
        device = resolve_device(args.device)
        check_autocast(args.autocast, device)
    except ConfigError as err:
        parser.exit(2, f"error: {err}\n")
    model = build_model(device)
    apply_run_settings(model, autocast=args.autocast)  # as a run sets run.autocast
    params = {**PAPER_SETTINGS, "bayesdiff": {**PAPER_SETTINGS["bayesdiff"], "laplace": random_posterior(model, device)}}
    idx = torch.arange(args.batch, device="cpu")
    x_T = initial_noise(0, idx, model.sample_shape).to(device)

    def engine(names: list[str]):
        return lambda: sample(model, x_T, sampler="ddim", steps=args.steps, seed=0, indices=idx,
                              estimators=[estimators.create(n, **params[n]) for n in names])

    passes = {"plain DDIM": engine([]), **{name: engine([name]) for name in PAPER_SETTINGS}}
    nfe = {}
    for label, run in passes.items():  # warm-up (cuDNN autotuning, allocator) and the NFE counts
        out = run()
        nfe[label] = (out.nfe, sum(r.nfe for r in out.uncertainty.values()))
    seconds: dict[str, list[float]] = {label: [] for label in passes}
    for _ in range(args.rounds):
        for label, run in passes.items():
            seconds[label].append(timed(run, device))
    base = seconds["plain DDIM"]
    rows = []
    for label in passes:
        base_nfe, extra = nfe[label]
        ratio = statistics.median(s / b for s, b in zip(seconds[label], base))
        rows.append([label, extra, (base_nfe + extra) / base_nfe, ratio, args.batch / min(seconds[label]),
                     PAPER_TIME_RATIO if label == "sensitivity" else ""])
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({machine()})"
    params_m = sum(p.numel() for p in model.parameters()) / 1e6
    write_report(args.out, "GPU cost at the paper's settings (CIFAR-10 DDPM architecture)", [
        f"Device: {card}. Random-init UNet2DModel with the google/ddpm-cifar10-32 architecture ({params_m:.1f}M "
        f"parameters, dropout 0.1), DDIM {args.steps} steps, batch {args.batch}, autocast {args.autocast}, median "
        f"of {args.rounds} "
        "interleaved rounds after a warm-up. Written by `bench/gpu.py`"
        + (" --tiny (a CPU smoke run of the script, not a GPU measurement)." if args.tiny else "."),
        table(["pass", "extra NFE / sample", "NFE ratio", "time ratio (wall)", "images / s",
               "paper time ratio (M = 5, GPU)"], rows),
        "Time ratio = wall-clock of the pass / plain DDIM in the same round. Sensitivity and MC-Dropout: M = 5 "
        "on steps 45..48; BayesDiff-Skip: S = 10 draws every 5th step (50 + 9 S NFEs at 50 steps).",
        metrics_table(args.metric_rows),
    ])
    if device.type == "cuda" and args.autocast == "off":  # the paper's comparison is in float32
        sens = next(r for r in rows if r[0] == "sensitivity")
        record_targets("gpu", [Target("GPU bench at batch 250 (paper: sensitivity 1.28-1.38x)",
                                      f"sensitivity {sens[3]:.2f}x on {card}", True, "bench/gpu.py -> gpu.md")])
    elif args.tiny and not (common.RESULTS / "targets" / "gpu.json").exists():
        record_targets("gpu", [Target("GPU bench ready and run on a GPU", "CPU smoke run only (gpu_tiny_cpu.md)",
                                      False, "no GPU was lent to the session that ran make bench; run "
                                      "`python bench/gpu.py` on a GPU to fill gpu.md")])


if __name__ == "__main__":
    main()
