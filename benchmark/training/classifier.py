"""Training of a domain classifier (`python -m benchmark train --what classifier`): the small CNN whose features serve
the fast classifier-space FID, precision/recall, the realism oracle and the label accuracy of generated samples.

`train_classifier` trains a built-in preset's classifier (`--dataset`); `train_data_classifier` one for the user's
labelled images (`--data`: a folder with class subfolders or an .npz with labels), any size >= 8 px (the classifier
pads to multiples of 8 inside its input path, metrics.classifier), saved where a run on that data finds it
(benchmark.data.user_data.default_classifier_path) with a record of the data it was trained on.
"""
from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from benchmark.data.datasets import ImageDataset, load_dataset
from benchmark.data.user_data import (ARRAY_SUFFIXES, DataSpec, data_fingerprint, default_classifier_path)
from benchmark.errors import ConfigError

MIN_STEPS_OWN_DATA = 300  # default training length on the user's data: 4 epochs, and at least this many steps
#: the fewest training images of every class a classifier is trained on (fewer: classes go missing from the fit
#: and the held-out accuracy measures nothing; issue 36 measured 0.0 on one image per class)
MIN_IMAGES_PER_CLASS = 5
LABELS_FIX = ("sort the images into one subfolder per class (<folder>/<class>/*.png), or save the array with "
              "np.savez(path, images=images, labels=labels)")


def train_classifier(dataset: str, out: str | Path, epochs: int = 4, batch_size: int = 128, lr: float = 2e-3,
                     width: int = 32, max_steps: int | None = None, seed: int = 0, threads: int = 2,
                     data_dir: str | None = None, download: bool = False, progress: bool = True) -> dict:
    """Train a DomainClassifier on a built-in dataset with random +-2 px shifts; save it to `out`; report its test
    accuracy."""
    train = load_dataset(dataset, "train", root=data_dir, download=download)
    test = load_dataset(dataset, "test", root=data_dir, download=download)
    if train.labels is None:
        raise ConfigError("dataset", dataset, "a labelled dataset to train a classifier on")
    summary = _with_threads(threads, lambda: _fit(train, test, dataset, Path(out), epochs, batch_size, lr, width,
                                                  max_steps, seed, progress, shift=2))
    return {"dataset": dataset, "steps": summary["steps"], "test_accuracy": summary["accuracy"],
            "wall_clock_s": summary["wall_clock_s"]}


def train_data_classifier(data: str | Path, out: str | Path | None = None, epochs: int | None = None,
                          batch_size: int = 128, lr: float = 2e-3, width: int = 32, max_steps: int | None = None,
                          seed: int = 0, threads: int = 2, value_range: str | None = None,
                          progress: bool = True) -> dict:
    """Train a DomainClassifier on the labelled images at `data`; save it to `out` (default: where a run on that
    data looks, `default_classifier_path`). Every check (labels, size, a writable place) runs before training, so a
    refusal writes nothing. Without `epochs`: 4 epochs and at least MIN_STEPS_OWN_DATA steps.

    Accuracy is measured on the test split when the data has one (train/ and test/ subfolders, an .npz's train and
    test arrays), else on a held-out fifth of the images (seeded; the classifier is trained on the rest).
    """
    path = Path(data).expanduser()
    if not path.exists() or (path.is_file() and path.suffix.lower() not in ARRAY_SUFFIXES):
        raise ConfigError("--data", str(data), "a folder of PNG/JPEG images (one subfolder per class) or an .npz "
                          "array with labels" + ("" if path.exists() else " that exists"),
                          "give the path of such a folder or file")
    path = path.resolve()
    if value_range is not None and path.is_dir():
        raise ConfigError("--range", value_range, "only with an .npy/.npz array (PNG/JPEG images in a folder are "
                          "always read as 0..255)", "remove --range")
    spec = DataSpec(path=str(path), value_range=value_range)
    fingerprint = data_fingerprint(path, value_range)
    train, test = spec.load("train"), spec.load("test")
    if train.labels is None or train.num_classes is None:
        what = "its images sit in no class subfolders" if path.is_dir() else "it has no labels / train_labels array"
        raise ConfigError("--data", str(path), f"labelled images to train a classifier on, but {what}", LABELS_FIX)
    if train.num_classes < 2:
        raise ConfigError("--data", str(path), f"at least 2 classes, but its labels hold {train.num_classes}",
                          LABELS_FIX)
    c, h, w = train.sample_shape
    if min(h, w) < 8:
        raise ConfigError("--data", f"{path} ({h}x{w} px images)", "images of at least 8x8 px (the classifier pools "
                          "three times by 2)", "upsample the images to >= 8x8 px, e.g. with PIL's Image.resize")
    _check_class_counts(path, train)
    target = Path(out).expanduser().resolve() if out is not None else default_classifier_path(path)
    _check_writable(target, default=out is None)
    train, test, accuracy_on = _held_out(train, test, seed)
    summary = _with_threads(threads, lambda: _fit(
        train, test, path.name, target, epochs, min(batch_size, len(train)), lr, width, max_steps, seed, progress,
        shift=2 if min(h, w) >= 16 else 1, min_steps=MIN_STEPS_OWN_DATA if epochs is None else 0,
        record={"data": str(path), "fingerprint": fingerprint, "value_range": value_range, "channels": c,
                "image_size": [h, w], "num_classes": train.num_classes, "train_images": len(train)}))
    found = target == default_classifier_path(path)
    return {"data": str(path), "classifier": str(target), "num_classes": train.num_classes, "image_size": [h, w],
            "padding_lrtb": summary["padding"], "steps": summary["steps"], "accuracy": summary["accuracy"],
            "accuracy_on": accuracy_on, "wall_clock_s": summary["wall_clock_s"],
            "runs_find_it": "automatically ([data] path)" if found else f'with [data] classifier = "{target}"'}


def _check_class_counts(path: Path, train: ImageDataset) -> None:
    """Every class needs MIN_IMAGES_PER_CLASS training images (ConfigError naming the sparsest class)."""
    counts = torch.bincount(train.labels, minlength=int(train.num_classes)).tolist()
    sparse = [(label, count) for label, count in enumerate(counts) if count < MIN_IMAGES_PER_CLASS]
    if sparse:
        label, count = min(sparse, key=lambda item: item[1])
        names = getattr(train, "class_names", None)
        name = f"class {names[label]!r} (label {label})" if names else f"class {label}"
        raise ConfigError("--data", str(path), f"at least {MIN_IMAGES_PER_CLASS} images of every class, but {name} "
                          f"has {count}" + (f" ({len(sparse) - 1} more classes have fewer than "
                                            f"{MIN_IMAGES_PER_CLASS})" if len(sparse) > 1 else ""),
                          f"add images to the sparse classes (>= {MIN_IMAGES_PER_CLASS} each; a few dozen train a "
                          "useful classifier), or drop those classes")


def _check_writable(target: Path, default: bool) -> None:
    """Refuse a place the classifier cannot be written to before any training."""
    folder = next((p for p in (target.parent, *target.parent.parents) if p.exists()), None)
    if folder is not None and os.access(folder, os.W_OK) and not target.is_dir():
        return
    where = f"{target} (not writable)" if not target.is_dir() else f"{target} (a folder)"
    raise ConfigError("--out", "next to the data" if default else str(target), f"a writable file path, but {where}",
                      'pass --out FILE somewhere writable and add [data] classifier = "FILE" to the run\'s config'
                      if default else "choose another --out FILE")


def _held_out(train: ImageDataset, test: ImageDataset, seed: int) -> tuple[ImageDataset, ImageDataset, str]:
    """(train, test, what the accuracy is measured on): a fifth of each class's images held out (seeded) when the
    data has no test split of its own (test equal to train, or unlabelled), so every class stays in the fit."""
    if test.labels is not None and not (len(test) == len(train) and torch.equal(test.images, train.images)):
        return train, test, f"the test split ({len(test)} images)"
    n = len(train)
    if n < 10:
        return train, train, f"the {n} training images (too few to hold any out)"
    gen = torch.Generator().manual_seed(seed)
    held, kept = [], []
    for label in range(int(train.num_classes)):
        members = (train.labels == label).nonzero().flatten()
        members = members[torch.randperm(members.numel(), generator=gen)]
        held.append(members[:members.numel() // 5])
        kept.append(members[members.numel() // 5:])
    held_idx, kept_idx = torch.cat(held).sort().values, torch.cat(kept).sort().values
    part = lambda idx: ImageDataset(train.images[idx], train.labels[idx], train.num_classes, train.name)  # noqa: E731
    return part(kept_idx), part(held_idx), (f"{len(held_idx)} held-out images (a fifth of each class; trained on the "
                                            f"other {len(kept_idx)})")


def _with_threads(threads: int, action):
    """Run `action` with `threads` torch threads and a forked RNG (the caller's state is restored)."""
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        with torch.random.fork_rng(devices=[]):
            return action()
    finally:
        torch.set_num_threads(previous_threads)


def _fit(train: ImageDataset, test: ImageDataset, label: str, out: Path, epochs: int | None, batch_size: int,
         lr: float, width: int, max_steps: int | None, seed: int, progress: bool, shift: int, min_steps: int = 0,
         record: dict | None = None) -> dict:
    """Train with random shifts of up to `shift` px (AdamW, one-cycle lr); save to `out`; accuracy on `test`."""
    from metrics.classifier import DomainClassifier

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    c, h, w = train.sample_shape
    model = DomainClassifier(in_channels=c, num_classes=train.num_classes, image_size=(h, w), width=width)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    batch_size = min(batch_size, len(train))
    steps_per_epoch = max(1, len(train) // batch_size)
    total = max(steps_per_epoch * (4 if epochs is None else epochs), min_steps)
    total = total if max_steps is None else min(max_steps, total)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total)
    start = time.perf_counter()
    batches = shuffled_batches(len(train), batch_size, gen)
    model.train()
    if progress:  # what is about to happen and how long it takes: the bar's [elapsed<remaining] is the estimate
        tqdm.write(f"training the domain classifier on {len(train)} images of {label} ({train.num_classes} classes, "
                   f"{c}x{h}x{w}): {total} steps of batch {batch_size}", file=sys.stderr)
    for _ in tqdm(range(total), disable=not progress, desc=f"classifier {label}", mininterval=1, file=sys.stderr,
                  bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} steps [{elapsed}<{remaining} left, {rate_fmt}]"):
        idx = next(batches)
        x = random_shift(train.images[idx], shift, gen)
        loss = nn.functional.cross_entropy(model(x), train.labels[idx])
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"classifier training loss is {loss.item()}; lower --lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    model.eval()
    acc = float((model.predict(test.images).argmax(-1) == test.labels).float().mean())
    left, right, top, bottom = model.padding
    if record is not None:
        record = {**record, "padding_lrtb": [left, right, top, bottom], "pad_value": -1.0,
                  "padded_size": [h + top + bottom, w + left + right], "width": width, "steps": total,
                  "accuracy": acc}
    model.save(out, trained_on=record)
    return {"steps": total, "accuracy": acc, "padding": [left, right, top, bottom],
            "wall_clock_s": round(time.perf_counter() - start, 1)}


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
