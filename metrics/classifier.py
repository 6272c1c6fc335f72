"""A small CNN domain classifier: its logits score conditioning-label accuracy, its penultimate layer serves FID.

Input x [N,C,H,W] in [-1, 1] with (H, W) = `image_size` (an int for square images, or (H, W)), each side >= 8 px.
Inside the input path the images are padded with the background value -1 to the next multiple of 8 on each side
(e.g. 28 -> 32: 2 px left/top, 2 px right/bottom; an odd margin puts the extra pixel right/bottom); a size that is
already a multiple of 8 is not padded. The padding is part of the model, so every caller (training, the run's
classifier features, label accuracy) sees exactly the same input. Then three stages of conv3x3 -> BatchNorm ->
ReLU -> maxpool2 with widths (w, 2w, 4w), a linear map of the flattened [4w, H'/8, W'/8] map to `feature_dim`
units (ReLU), dropout, and a linear classifier.

A file written by `save` may carry `trained_on`: what data the classifier was trained on (its fingerprint, image
size, channels, class count, padding; see benchmark.training.classifier), checked by the run that loads it.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from benchmark.errors import ConfigError, MissingAssetError

MIN_SIZE = 8  # three 2x poolings
PAD_VALUE = -1.0  # the background of images in [-1, 1]


def image_hw(image_size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """(H, W) of an `image_size` (an int: square)."""
    if isinstance(image_size, (tuple, list)) and len(image_size) == 2:
        return int(image_size[0]), int(image_size[1])
    if isinstance(image_size, int) and not isinstance(image_size, bool):
        return image_size, image_size
    raise ConfigError("image_size", image_size, "an int or (H, W)")


def padding_for(image_size: int | tuple[int, int] | list[int]) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) pixels that bring (H, W) to the next multiples of 8; refuses a side below 8 px."""
    h, w = image_hw(image_size)
    if min(h, w) < MIN_SIZE:
        raise ConfigError("image size", f"{h}x{w} px", f"at least {MIN_SIZE} px per side (the classifier pools "
                          "three times by 2)", f"upsample or pad the images to >= {MIN_SIZE}x{MIN_SIZE} px")
    ph, pw = -h % 8, -w % 8
    return pw // 2, pw - pw // 2, ph // 2, ph - ph // 2


class DomainClassifier(nn.Module):
    """logits = head(dropout(features(x))); features(x) [N, feature_dim] is the penultimate activation."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int | tuple[int, int] = 32,
                 width: int = 32, feature_dim: int = 128, dropout: float = 0.3) -> None:
        super().__init__()
        h, w = image_hw(image_size)
        self.padding = padding_for((h, w))
        image_size = h if h == w else (h, w)
        self.config = dict(in_channels=in_channels, num_classes=num_classes, image_size=image_size, width=width,
                           feature_dim=feature_dim, dropout=dropout)
        self.in_channels, self.num_classes, self.image_size = in_channels, num_classes, image_size
        self.feature_dim = feature_dim
        self.trained_on: dict | None = None  # what `save` records about the training data (None: not recorded)
        layers: list[nn.Module] = []
        c_in = in_channels
        for c_out in (width, 2 * width, 4 * width):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
            c_in = c_out
        self.body = nn.Sequential(*layers)
        left, right, top, bottom = self.padding
        flat = 4 * width * ((h + top + bottom) // 8) * ((w + left + right) // 8)
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(flat, feature_dim), nn.ReLU(inplace=True))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(feature_dim, num_classes)

    @property
    def hw(self) -> tuple[int, int]:
        """(H, W) of the images the classifier takes (before its own padding)."""
        return image_hw(self.image_size)

    def _check(self, x: torch.Tensor) -> None:
        want = (self.in_channels, *self.hw)
        if x.ndim != 4 or tuple(x.shape[1:]) != want:
            raise ConfigError("x", tuple(x.shape), f"images of shape [N, {want[0]}, {want[1]}, {want[2]}]")

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """x [N,C,H,W] padded with -1 to multiples of 8 (unchanged when H and W are multiples of 8)."""
        return nn.functional.pad(x, self.padding, value=PAD_VALUE) if any(self.padding) else x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations [N, feature_dim] of images x [N,C,H,W] in [-1, 1]."""
        self._check(x)
        return self.embed(self.body(self.pad(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits [N, num_classes]."""
        return self.head(self.dropout(self.features(x)))

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """Softmax probabilities [N, num_classes] in eval mode (the training mode is restored)."""
        was_training = self.training
        self.eval()
        try:
            return torch.cat([self(x[i:i + batch_size]).softmax(-1) for i in range(0, x.shape[0], batch_size)])
        finally:
            self.train(was_training)

    def save(self, path: str | Path, trained_on: dict | None = None) -> None:
        """Write the weights, constructor kwargs and (when given, else `self.trained_on`) the record of the
        training data to one torch file, through a temporary file (a reader never sees half a file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = trained_on if trained_on is not None else self.trained_on
        blob = {"config": self.config, "state_dict": self.state_dict()}
        if record is not None:
            blob["trained_on"] = record
        tmp = path.with_name(path.name + ".tmp")
        torch.save(blob, tmp)
        tmp.replace(path)
        self.trained_on = record

    @classmethod
    def load(cls, path: str | Path, map_location: str | torch.device = "cpu", *, field: str = "classifier file",
             fix: str | None = None) -> "DomainClassifier":
        """Rebuild a classifier written by `save` (its `trained_on` record restored); returned in eval mode. A file
        that cannot be read is a ConfigError naming `field`, the file and `fix` (exit 2, never torch's internals)."""
        path = Path(path)
        if not path.is_file():
            raise MissingAssetError(f"classifier file {path} does not exist. Fix: train one with "
                                    "`python -m benchmark train --what classifier --dataset NAME --out FILE` "
                                    "(or --data PATH for your own images).")
        try:
            blob = torch.load(path, map_location=map_location, weights_only=True)
            model = cls(**blob["config"])
            model.load_state_dict(blob["state_dict"])
        except Exception as err:  # noqa: BLE001 - truncated, not a torch file, another layout: all name the file
            what = " ".join(f"{type(err).__name__}: {err}".split())[:160]
            raise ConfigError(field, str(path), f"a domain classifier written by `python -m benchmark train --what "
                              f"classifier`, but it cannot be read ({what})", fix or "retrain it with `python -m "
                              "benchmark train --what classifier ... --out FILE`, or delete the file") from None
        model.trained_on = blob.get("trained_on") if isinstance(blob, dict) else None
        return model.eval()
