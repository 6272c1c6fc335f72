"""The `random` reference estimator: random scores and maps, the floor every table is read against."""
from __future__ import annotations

from benchmark.seeding import per_sample_randn
from estimators.base import EstimatorResult, UncertaintyEstimator
from estimators.registry import register


@register("random")
class RandomEstimator(UncertaintyEstimator):
    """Pixel map |z| with z ~ N(0, I) per sample (seeded by sample index); score = sum of the map."""

    kind = "heuristic"
    reference_row = True
    comparison_baseline = True
    reference_explanation = "the floor: a score with no information (an estimator must beat it to be useful)"
    uses_network = False

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)

    def observe(self, step) -> None:  # noqa: D102 - nothing to accumulate
        return None

    def result(self) -> EstimatorResult:
        pixel = per_sample_randn(self.seed, self.batch.indices, self.batch.sample_shape,
                                 stream="random-estimator", device=self.batch.device).abs()
        return EstimatorResult(pixel=pixel, score=pixel.flatten(1).sum(1))
