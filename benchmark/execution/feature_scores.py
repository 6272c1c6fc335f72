"""Post-generation scoring: estimators whose score needs the run's features (e.g. `realism_oracle`).

An estimator opts in with a method `score_features(fake: ndarray [N, D], real: ndarray [M, D]) -> ndarray [N]`
and an attribute `features` naming the feature space. After the generation pass and the one feature
extraction of the run, the runner calls `apply_feature_scores`, which replaces that estimator's placeholder
scores in the merged generation (in memory; the shards keep the placeholders, so a resumed run recomputes the
same numbers from the same features). Spaces the run did not compute are extracted here (the generated
samples, and the real test images of the preset).
"""
from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
import torch

from benchmark.execution.generation import Generation


def feature_scorers(estimators: Iterable) -> dict[str, object]:
    """{instance name: estimator} of the estimators that score from features after generation."""
    return {est.name: est for est in estimators if callable(getattr(est, "score_features", None))}


def apply_feature_scores(gen: Generation, estimators: Iterable, fake_features: dict[str, np.ndarray],
                         real_features: dict[str, np.ndarray], extract: Callable[[str, torch.Tensor], np.ndarray],
                         load_real: Callable[[], torch.Tensor]) -> list[str]:
    """Fill in the scores of every feature-scoring estimator; returns their names.

    fake_features / real_features are the run's features per space (a space the estimator needs and the run
    lacks is extracted here, not added to them: protocols see only the run's spaces); `load_real()` returns
    the real test images [M,C,H,W] in [-1, 1].
    """
    scorers = feature_scorers(estimators)
    for name, est in scorers.items():
        space = est.features
        fake = fake_features[space] if space in fake_features else extract(space, gen.x0)
        real = real_features[space] if space in real_features else extract(space, load_real())
        scores = est.score_features(fake, real)
        gen.scores[name] = torch.as_tensor(np.asarray(scores, dtype=np.float64)).to(gen.scores[name].dtype)
    return list(scorers)


__all__ = ["apply_feature_scores", "feature_scorers"]
