"""The rectification protocol's measurements: the whole generated set before and after replacing samples.

Every comparison is paired by sample index (the sets differ only in the replaced rows): FID differences by
`paired_sets_fid_difference` (one resample of the sample indices applied to both sets), precision by the
per-sample membership of the fixed real k-NN manifold, class agreement / density / score over the replaced
samples; FID∞ beside FID. Rows: protocol `rectification`, estimator = the run's label (`<est>`, `<est>|random_trigger`,
`<est>|random_mask`), metric `<procedure>.<name>[<feature space>]`. Names lead with the word that gives their
direction in the report (benchmark/report/metric_info.py): `delta_*` and `fid*` lower is better, `precision*`
and `class_agreement*` higher (hence `precision_change`, not `delta_precision`).
"""
from __future__ import annotations

import numpy as np
import torch

from benchmark.protocols.application_utils import mean_row, precision_membership, predicted_classes, to_pixels
from benchmark.protocols.base import ProtocolInputs
from benchmark.protocols.fid_utils import bootstrap_replicates, fid_ci, paired_delta_ci
from benchmark.protocols.table import MetricRow, row_from_ci
from metrics import fid_infinity_bootstrap, fid_infinity_difference_bootstrap

NAME = "rectification"
BASELINES = {"rejection": ("random_trigger",), "region": ("random_trigger", "random_mask")}


def fid_infinity_rows(before: np.ndarray, after: np.ndarray, replaced: np.ndarray, reference, n_boot: int,
                      seed: int) -> dict:
    """FID∞ (Chong & Forsyth 2020) of the set after replacement, and FID∞(after) - FID∞(before) with a bootstrap
    of the pool [before rows; new rows] in which the unchanged rows carry the same counts in both sets."""
    pool = np.vstack([before, after[replaced]])
    kept = np.setdiff1d(np.arange(before.shape[0]), replaced)
    after_rows = np.concatenate([kept, before.shape[0] + np.arange(replaced.size)])
    return {"fid_infinity_after": fid_infinity_difference_bootstrap(pool, None, reference, n_boot, seed,
                                                                    index_a=after_rows),
            "delta_fid_infinity": fid_infinity_difference_bootstrap(pool, np.arange(before.shape[0]), reference,
                                                                    n_boot, seed, index_a=after_rows)}


class Outcomes:
    """Collects the replaced sets of every (procedure, label) and turns them into rows."""

    def __init__(self, inputs: ProtocolInputs) -> None:
        self.inputs = inputs
        cfg, gen = inputs.config, inputs.generation
        self.seed, self.n_boot, self.size = cfg.seed, cfg.bootstrap, gen.size
        self.member_before = {space: precision_membership(real, inputs.fake_features[space])
                              for space, real in inputs.real_features.items() if space in inputs.fake_features}
        classifier = inputs.preset.load_classifier() if gen.y is not None else None
        self.classify = (lambda x: predicted_classes(classifier, x)) if classifier is not None else None
        self.class_before = self.classify(gen.x0) if self.classify else None  # gen.x0: images (decoded if latent)
        self.oracle = inputs.preset.oracle() if hasattr(inputs.preset, "oracle") else None
        self.after: dict[tuple[str, str], dict[str, np.ndarray]] = {}
        self.member_after: dict[tuple[str, str], dict[str, np.ndarray]] = {}
        self._rows: list[MetricRow] = []

    def add(self, procedure: str, label: str, indices: torch.Tensor, new_x0: torch.Tensor, nfe_per_replaced: float,
            *, old_score: torch.Tensor | None = None, new_score: torch.Tensor | None = None,
            mask_fraction: float | None = None) -> None:
        """Replace the samples `indices` [m] of the generated set by new_x0 [m,C,H,W] and measure."""
        inputs, gen, seed, n_boot = self.inputs, self.inputs.generation, self.seed, self.n_boot
        idx = indices.numpy()
        images = to_pixels(inputs.model, new_x0.to(inputs.model.device)).cpu()
        row = (lambda metric, ci, n: self._rows.append(row_from_ci(NAME, label, f"{procedure}.{metric}", ci, n, seed)))
        mean = (lambda metric, values: self._rows.append(mean_row(NAME, label, f"{procedure}.{metric}", values,
                                                                    n_boot, seed)))
        self.after[(procedure, label)], self.member_after[(procedure, label)] = {}, {}
        for space, before in inputs.fake_features.items():
            after = before.copy()
            if idx.size:
                after[idx] = inputs.extract(space, images)
            self.after[(procedure, label)][space] = after
            ref = inputs.reference_stats[space]
            row(f"fid_after[{space}]", fid_ci(after, ref, bootstrap_replicates(space, n_boot), seed), after.shape[0])
            row(f"delta_fid[{space}]", paired_delta_ci(after, before, ref, bootstrap_replicates(space, n_boot), seed),
                after.shape[0])
            if idx.size:
                for metric, ci in fid_infinity_rows(before, after, idx, ref, max(10, n_boot // 4), seed).items():
                    row(f"{metric}[{space}]", ci, after.shape[0])
            if space in self.member_before:
                member = self.member_before[space].copy()
                if idx.size:
                    member[idx] = precision_membership(inputs.real_features[space], after[idx])
                self.member_after[(procedure, label)][space] = member
                mean(f"precision_after[{space}]", member.astype(float))
                mean(f"precision_change[{space}]", member.astype(float) - self.member_before[space])
        if self.classify is not None and idx.size:
            labels = gen.y.numpy()[idx]
            now, was = self.classify(images) == labels, self.class_before[idx] == labels
            mean("class_agreement_after", now.astype(float))
            mean("class_agreement_change", now.astype(float) - was)
        if self.oracle is not None and idx.size:
            delta = -self.oracle.log_density(images) + self.oracle.log_density(gen.x0[idx])
            mean("delta_neg_log_density", delta.numpy())
        if old_score is not None and new_score is not None and idx.size:
            mean("delta_score", (new_score - old_score).numpy())
        extra = [("replaced", float(idx.size)), ("extra_nfe_per_replaced", nfe_per_replaced),
                 ("extra_nfe_per_sample", nfe_per_replaced * idx.size / self.size)]
        if mask_fraction is not None:
            extra.append(("mask_fraction", mask_fraction))
        for metric, value in extra:
            self._rows.append(MetricRow(NAME, label, f"{procedure}.{metric}", value, n=int(idx.size), seed=seed))

    def rows(self) -> list[MetricRow]:
        """All rows, the set before replacement, and each estimator against its baselines (paired, equal NFE)."""
        inputs, seed, n_boot = self.inputs, self.seed, self.n_boot
        rows = list(self._rows)
        for space, feats in inputs.fake_features.items():
            rows.append(row_from_ci(NAME, "(before)", f"fid[{space}]", fid_ci(
                feats, inputs.reference_stats[space], bootstrap_replicates(space, n_boot), seed), feats.shape[0], seed))
            rows.append(row_from_ci(NAME, "(before)", f"fid_infinity[{space}]", fid_infinity_bootstrap(
                feats, inputs.reference_stats[space], max(10, n_boot // 4), seed), feats.shape[0], seed))
            if space in self.member_before:
                rows.append(mean_row(NAME, "(before)", f"precision[{space}]",
                                     self.member_before[space].astype(float), n_boot, seed))
        for (procedure, label), after in self.after.items():
            for baseline in BASELINES[procedure]:
                other = (procedure, f"{label}|{baseline}")
                if "|" in label or other not in self.after:
                    continue
                for space, feats in after.items():
                    ci = paired_delta_ci(feats, self.after[other][space], inputs.reference_stats[space],
                                         bootstrap_replicates(space, n_boot), seed)
                    rows.append(row_from_ci(NAME, label, f"{procedure}.delta_vs_{baseline}.fid[{space}]", ci,
                                            feats.shape[0], seed))
                    if space in self.member_after[(procedure, label)]:
                        diff = (self.member_after[(procedure, label)][space].astype(float)
                                - self.member_after[other][space])
                        rows.append(mean_row(NAME, label, f"{procedure}.delta_vs_{baseline}.precision[{space}]", diff,
                                             n_boot, seed))
        return rows
