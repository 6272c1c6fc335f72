"""The run's estimators as a factory of fresh instances (one set per batch), with what the runner supplied to them
(benchmark.runner.resources builds it)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class EstimatorFactory:
    """Returns fresh estimator instances (one set per batch) for the configured specs when called.

    `posterior` is the run's shared fitted posterior (None when no estimator asks for one); `posterior_path` is
    where it is saved (None while it lives only in memory; see `persist`); `posterior_choice` records which file
    served the run and why others were passed over (`record()` is the manifest's entry).
    """

    params: dict[str, dict]
    posterior: object | None = None
    posterior_path: Path | None = None
    posterior_choice: object | None = None
    types: dict[str, str] = field(default_factory=dict)  # instance name -> registered estimator (default: same)
    fitted: dict[str, object] = field(default_factory=dict)  # instance name -> the resource it fitted itself

    def __call__(self) -> list:
        import estimators

        made = []
        for name, params in self.params.items():
            estimator = estimators.create(self.types.get(name, name), **params)
            estimator.name = name  # a named variant ([estimators.<variant>] type = "<estimator>") keeps its name
            made.append(estimator)
        return made

    def persist(self, path: Path) -> None:
        """Save an in-memory posterior to `path` (the run folder) so other ranks and a resumed run load it; likewise
        every in-memory resource an estimator fitted itself (one with `save_in(folder)` and `path` None)."""
        for resource in self.fitted.values():
            if callable(getattr(resource, "save_in", None)) and getattr(resource, "path", "") is None:
                resource.save_in(path.parent)
        if self.posterior is not None and self.posterior_path is None:
            self.posterior_path = self.posterior.save(path)
            if self.posterior_choice is not None:
                self.posterior_choice.path = self.posterior_path
