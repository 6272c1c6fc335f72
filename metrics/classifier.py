"""A small CNN domain classifier: its logits score conditioning-label accuracy, its penultimate layer serves FID.

Input x [N,C,H,W] in [-1, 1] with H = W = image_size (divisible by 8). Three stages of
conv3x3 -> BatchNorm -> ReLU -> maxpool2 with widths (w, 2w, 4w), then a linear map of the flattened
[4w, H/8, W/8] map to `feature_dim` units (ReLU), dropout, and a linear classifier.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from benchmark.errors import ConfigError, MissingAssetError


class DomainClassifier(nn.Module):
    """logits = head(dropout(features(x))); features(x) [N, feature_dim] is the penultimate activation."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 32, width: int = 32,
                 feature_dim: int = 128, dropout: float = 0.3) -> None:
        super().__init__()
        if image_size % 8 != 0:
            raise ConfigError("image_size", image_size, "a multiple of 8 (three 2x poolings)")
        self.config = dict(in_channels=in_channels, num_classes=num_classes, image_size=image_size, width=width,
                           feature_dim=feature_dim, dropout=dropout)
        self.in_channels, self.num_classes, self.image_size = in_channels, num_classes, image_size
        self.feature_dim = feature_dim
        layers: list[nn.Module] = []
        c_in = in_channels
        for c_out in (width, 2 * width, 4 * width):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
                       nn.MaxPool2d(2)]
            c_in = c_out
        self.body = nn.Sequential(*layers)
        flat = 4 * width * (image_size // 8) ** 2
        self.embed = nn.Sequential(nn.Flatten(), nn.Linear(flat, feature_dim), nn.ReLU(inplace=True))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(feature_dim, num_classes)

    def _check(self, x: torch.Tensor) -> None:
        want = (self.in_channels, self.image_size, self.image_size)
        if x.ndim != 4 or tuple(x.shape[1:]) != want:
            raise ConfigError("x", tuple(x.shape), f"images of shape [N, {want[0]}, {want[1]}, {want[2]}]")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations [N, feature_dim] of images x [N,C,H,W] in [-1, 1]."""
        self._check(x)
        return self.embed(self.body(x))

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

    def save(self, path: str | Path) -> None:
        """Write the weights and constructor kwargs to one torch file."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        torch.save({"config": self.config, "state_dict": self.state_dict()}, path)

    @classmethod
    def load(cls, path: str | Path, map_location: str | torch.device = "cpu") -> "DomainClassifier":
        """Rebuild a classifier written by `save`; returned in eval mode."""
        path = Path(path)
        if not path.is_file():
            raise MissingAssetError(f"classifier file {path} does not exist. Fix: train one with "
                                    "`python -m benchmark train --what classifier --dataset NAME --out FILE`.")
        blob = torch.load(path, map_location=map_location, weights_only=True)
        model = cls(**blob["config"])
        model.load_state_dict(blob["state_dict"])
        return model.eval()
