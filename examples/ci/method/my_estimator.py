"""An example method: per-pixel |eps| over the last steps, the mean of its window as the map (0 extra NFEs)."""
import torch

from estimators import EstimatorResult, UncertaintyEstimator, register


@register("my_estimator")
class MyEstimator(UncertaintyEstimator):
    """Mean |eps| over the last `last_steps` steps; score = the map's sum."""

    kind = "heuristic"
    paper = "an example method (examples/ci)"

    def __init__(self, last_steps: int = 2):
        self.last_steps = last_steps

    def begin(self, batch):
        self.total, self.count = None, 0

    def observe(self, step):
        if step.index >= step.num_steps - self.last_steps:
            value = step.eps.abs()
            self.total = value if self.total is None else self.total + value
            self.count += 1

    def result(self):
        pixel = self.total / max(self.count, 1)
        return EstimatorResult(pixel=pixel, score=pixel.flatten(1).sum(1))
