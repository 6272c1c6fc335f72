"""`torchmetrics.Metric` versions of the sparsification error and the filtered-set FID, for evaluation loops
outside the runner: `update` accumulates declared states, `compute` gives the value, and the states are
merged across processes by torchmetrics (`dist_reduce_fx="cat"`), so a sharded evaluation gives the same
numbers as one process on all the data.

    ause = SparsificationError(fractions=50)          # AUSE / AURG per image, averaged (metrics.sparsification)
    ause.update(error, uncertainty)                   # [B, C, H, W] each, any number of calls
    ause.compute()                                    # {"ause": tensor, "aurg": tensor}

    ffid = FilteredFID(reference_stats, keep_fraction=5 / 6, seed=0)   # metrics.filtered_fid
    ffid.update(features, scores, indices)            # features [B, D] (or images with feature=extractor)
    ffid.compute()                                    # {"fid_kept", "fid_random", "delta_vs_random"}

FilteredFID's `indices` (global sample indices) make the result independent of the order in which
processes' rows are gathered: rows are sorted by index before the K lowest and the random K are chosen.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from benchmark.errors import ConfigError
from metrics.filtered import filtered_fid
from metrics.frechet import FeatureStats
from metrics.sparsification import sparsification


class SparsificationError(Metric):
    """AUSE (lower is better) and AURG (higher is better) per image, averaged over every image seen."""

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    def __init__(self, fractions: int = 50, metric: str = "rmse", **kwargs) -> None:
        super().__init__(**kwargs)
        self.fractions, self.metric = fractions, metric
        self.add_state("ause_per_image", default=[], dist_reduce_fx="cat")
        self.add_state("aurg_per_image", default=[], dist_reduce_fx="cat")

    def update(self, error: torch.Tensor, uncertainty: torch.Tensor) -> None:
        """error, uncertainty [B, ...] per pixel (the error's sign is ignored)."""
        result = sparsification(error, uncertainty, fractions=self.fractions, metric=self.metric)
        self.ause_per_image.append(torch.from_numpy(result.ause_per_image))
        self.aurg_per_image.append(torch.from_numpy(result.aurg_per_image))

    def compute(self) -> dict[str, torch.Tensor]:
        return {"ause": dim_zero_cat(self.ause_per_image).mean(), "aurg": dim_zero_cat(self.aurg_per_image).mean()}


class FilteredFID(Metric):
    """FID of the K lowest-score samples, of a random K-subset, and their difference (metrics.filtered)."""

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, reference: FeatureStats, keep: int | None = None, keep_fraction: float | None = None,
                 seed: int = 0, feature: Callable[[torch.Tensor], object] | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        if (keep is None) == (keep_fraction is None):
            raise ConfigError("keep", keep, "exactly one of keep (K) or keep_fraction")
        self.reference, self.keep, self.keep_fraction, self.seed, self.feature = (reference, keep, keep_fraction,
                                                                                   seed, feature)
        self.add_state("features", default=[], dist_reduce_fx="cat")
        self.add_state("scores", default=[], dist_reduce_fx="cat")
        self.add_state("indices", default=[], dist_reduce_fx="cat")

    def update(self, inputs, scores: torch.Tensor, indices: torch.Tensor | None = None) -> None:
        """inputs: features [B, D] (or images for `feature`), scores [B], indices [B] global sample indices
        (give them in every call or in none)."""
        features = self.feature(inputs) if self.feature is not None else inputs
        features = torch.as_tensor(np.asarray(features) if not isinstance(features, torch.Tensor) else features)
        self.features.append(features.detach().to(torch.float64))
        self.scores.append(torch.as_tensor(scores).detach().reshape(-1).to(torch.float64))
        if indices is not None:
            self.indices.append(torch.as_tensor(indices).detach().reshape(-1).to(torch.int64))

    def compute(self) -> dict[str, torch.Tensor]:
        features, scores = dim_zero_cat(self.features), dim_zero_cat(self.scores)
        if len(self.indices) if isinstance(self.indices, list) else self.indices.numel():
            order = torch.argsort(dim_zero_cat(self.indices))
            features, scores = features[order], scores[order]
        result = filtered_fid(features.cpu().numpy(), scores.cpu().numpy(), self.reference, self.keep,
                              keep_fraction=self.keep_fraction, seed=self.seed)
        return {name: torch.tensor(getattr(result, name), dtype=torch.float64)
                for name in ("fid_kept", "fid_random", "delta_vs_random")}
