"""The shared shape of the trivial baselines: a 0-NFE statistic of the final sample, no model knowledge.

A subclass maps the final x0 prediction [B,C,H,W] (the sampler's last x0_hat, what the run outputs) to a per-pixel
map; the score is the sum of that map over pixels. The class attributes make such a row a trivial baseline:
shown, never ranked (`reference_row`), a floor that per-item comparisons test every estimator against
(`comparison_baseline`), and `trivial_baseline` (estimators.base). Extra NFEs: 0.
"""
from __future__ import annotations

import abc
from typing import TYPE_CHECKING

import torch

from estimators.base import EstimatorResult, UncertaintyEstimator
from estimators.x0_trajectory import predicted_x0

if TYPE_CHECKING:
    from benchmark.sampling.context import StepContext


class FinalSampleBaseline(UncertaintyEstimator):
    """A trivial 0-NFE baseline: `pixel_map(final x0)`, score = its sum over pixels [B]."""

    kind = "heuristic"
    reference_row = True  # a trivial baseline: shown, never ranked
    comparison_baseline = True  # per-item comparisons (e.g. the sparsification protocol) test every estimator against it
    trivial_baseline = True
    uses_network = False
    nfe_formula = "0"

    def begin(self, batch) -> None:
        super().begin(batch)
        self._last: torch.Tensor | None = None

    def observe(self, step: "StepContext") -> None:
        self._last = predicted_x0(step.x_t, step.eps, step.ab_t)  # the last one seen is the final prediction

    @abc.abstractmethod
    def pixel_map(self, x0: torch.Tensor) -> torch.Tensor:
        """The per-pixel map [B,C,H,W] of the final x0 prediction [B,C,H,W]."""

    def result(self) -> EstimatorResult:
        pixel = self.pixel_map(self._last)
        return EstimatorResult(pixel=pixel, score=pixel.flatten(1).sum(1))


__all__ = ["FinalSampleBaseline"]
