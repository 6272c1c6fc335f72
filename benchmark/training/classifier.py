"""Training of a preset's domain classifier (`python -m benchmark train --what classifier`): the small CNN whose
features serve the fast classifier-space FID, precision/recall and the label accuracy of generated samples."""
from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from benchmark.data.datasets import load_dataset
from benchmark.errors import ConfigError


def train_classifier(dataset: str, out: str | Path, epochs: int = 4, batch_size: int = 128, lr: float = 2e-3,
                     width: int = 32, max_steps: int | None = None, seed: int = 0, threads: int = 2,
                     data_dir: str | None = None, download: bool = False, progress: bool = True) -> dict:
    """Train a DomainClassifier with random +-2 px shifts; save it to `out`; report its test accuracy."""
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        with torch.random.fork_rng(devices=[]):
            return _train_classifier(dataset, out, epochs, batch_size, lr, width, max_steps, seed, data_dir, download,
                                     progress)
    finally:
        torch.set_num_threads(previous_threads)


def _train_classifier(dataset: str, out: str | Path, epochs: int, batch_size: int, lr: float, width: int,
                      max_steps: int | None, seed: int, data_dir: str | None, download: bool, progress: bool) -> dict:
    from metrics.classifier import DomainClassifier

    train = load_dataset(dataset, "train", root=data_dir, download=download)
    test = load_dataset(dataset, "test", root=data_dir, download=download)
    if train.labels is None:
        raise ConfigError("dataset", dataset, "a labelled dataset to train a classifier on")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    c, h, _ = train.sample_shape
    model = DomainClassifier(in_channels=c, num_classes=train.num_classes, image_size=h, width=width)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps_per_epoch = max(1, len(train) // batch_size)
    total = steps_per_epoch * epochs if max_steps is None else min(max_steps, steps_per_epoch * epochs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total)
    start = time.perf_counter()
    batches = shuffled_batches(len(train), min(batch_size, len(train)), gen)
    model.train()
    for _ in tqdm(range(total), disable=not progress, desc=f"classifier {dataset}", mininterval=5):
        idx = next(batches)
        x = random_shift(train.images[idx], 2, gen)
        loss = nn.functional.cross_entropy(model(x), train.labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    acc = float((model.predict(test.images).argmax(-1) == test.labels).float().mean())
    model.save(out)
    return {"dataset": dataset, "steps": total, "test_accuracy": acc, "wall_clock_s": round(time.perf_counter() - start, 1)}


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image of x [B,C,H,W] by up to +-max_shift pixels, filling with the background -1."""
    if max_shift <= 0:
        return x
    b, _, h, w = x.shape
    padded = nn.functional.pad(x, (max_shift,) * 4, value=-1.0)
    dx = torch.randint(0, 2 * max_shift + 1, (b,), generator=generator)
    dy = torch.randint(0, 2 * max_shift + 1, (b,), generator=generator)
    return torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(b)])


def shuffled_batches(n: int, batch_size: int, generator: torch.Generator):
    while True:
        perm = torch.randperm(n, generator=generator)
        for i in range(0, n - batch_size + 1, batch_size):
            yield perm[i:i + batch_size]
