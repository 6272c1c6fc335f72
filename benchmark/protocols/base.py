"""What every protocol gets: the run's config, the shared generation, features computed once, helpers."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from benchmark.config import RunConfig
from benchmark.execution.generation import Generation


@dataclass
class ProtocolInputs:
    config: RunConfig
    run_dir: Path
    model: Any
    preset: Any
    generation: Generation
    fake_features: dict[str, np.ndarray]  # feature space -> [N, D] features of the generated x0
    real_features: dict[str, np.ndarray]  # feature space -> [M, D] features of real test images (may lack a space)
    reference_stats: dict[str, Any]  # feature space -> FeatureStats of the real reference set
    extract: Callable[[str, Any], np.ndarray]  # (feature space, images [N,C,H,W]) -> features
    make_estimators: Callable[[], list]
    progress: bool = True
    artifacts: dict[str, Any] = field(default_factory=dict)  # curves etc. for the report

    @property
    def estimator_names(self) -> list[str]:
        """Estimators of the run (internal observers such as the ground-truth oracle start with '_')."""
        return [name for name in self.generation.scores if not name.startswith("_")]

    @property
    def seed(self) -> int:
        return self.config.seed
