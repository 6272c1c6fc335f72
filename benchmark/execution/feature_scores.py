"""Post-generation scoring: estimators whose score needs the run's features (e.g. `realism_oracle`).

An estimator opts in with a method `score_features(fake: ndarray [N, D], real: ndarray [M, D]) -> ndarray [N]`
and an attribute `features` naming the feature space. After the generation pass and the one feature
extraction of the run, the runner calls `apply_feature_scores`, which replaces that estimator's placeholder
scores in the merged generation (in memory; the shards keep the placeholders, so a resumed run recomputes the
same numbers from the same features). What such an estimator reads, `scorer_reads`, is part of the run's
feature plan (benchmark.execution.features.plan_features); what protocols do not see is extracted here (the
generated samples, and the real test images of the preset, in run-folder chunks).
"""
from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
import torch

from benchmark.execution.features import GENERATED, REAL_TEST, Pair
from benchmark.execution.generation import Generation


def feature_scorers(estimators: Iterable) -> dict[str, object]:
    """{instance name: estimator} of the estimators that score from features after generation."""
    return {est.name: est for est in estimators if callable(getattr(est, "score_features", None))}


def scorer_reads(config) -> dict[str, set[Pair]]:
    """{instance name: {(space, GENERATED), (space, REAL_TEST)}} of the configured estimators whose class scores
    from features (`score_features`), `space` their `features` parameter (or its constructor default); from the
    config alone, so every rank plans the same features before any estimator is built."""
    import inspect

    import estimators

    reads = {}
    for spec in config.estimators:
        cls = estimators.get_class(getattr(spec, "type", "") or spec.name)
        if not callable(getattr(cls, "score_features", None)):
            continue
        space = spec.params.get("features")
        if space is None:
            param = inspect.signature(cls.__init__).parameters.get("features")
            space = None if param is None or param.default is inspect.Parameter.empty else param.default
        if space is not None:
            reads[spec.name] = {(str(space), GENERATED), (str(space), REAL_TEST)}
    return reads


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
        gen.scores[name] = torch.as_tensor(np.asarray(scores, dtype=np.float64), device=gen.scores[name].device).to(
            gen.scores[name].dtype)
    return list(scorers)


__all__ = ["apply_feature_scores", "feature_scorers", "scorer_reads"]
