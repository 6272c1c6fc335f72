"""Config name -> protocol module. Each module has `run(inputs, params) -> list[MetricRow]`, a `VERSION` and, for the
ones with a pass of their own, `work_items` / `run_item` (benchmark.runner.phases)."""
from __future__ import annotations

from benchmark.protocols import (
                                 augmentation,
                                 conformal,
                                 cost,
                                 ensemble_agreement,
                                 failure_labels,
                                 filtered_fid,
                                 ground_truth,
                                 guided,
                                 hallucination,
                                 precision_recall,
                                 rectification,
                                 sparsification,
)

PROTOCOL_MODULES = {
    "filtered_fid": filtered_fid,
    "precision_recall": precision_recall,
    "sparsification": sparsification,
    "guidance": guided,
    "cost": cost,
    "ground_truth": ground_truth,
    "augmentation": augmentation,
    "rectification": rectification,
    "hallucination": hallucination,
    "failure_labels": failure_labels,
    "conformal": conformal,
    "ensemble_agreement": ensemble_agreement,
}
