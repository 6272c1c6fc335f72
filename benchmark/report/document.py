"""The Markdown report of a run: headline table, findings, compact tables per protocol, settings, plots.

A reader sees in the first screen which estimators beat the `random` floor, by how much and at what cost:
the headline table (key metrics with ↑/↓, 95 % intervals, the significantly best entry in bold, reference
rows apart) and the findings generated from the numbers.
"""
from __future__ import annotations

import json

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from benchmark.config import RunConfig
from benchmark.errors import ConfigError
from benchmark.execution.generation import PER_STEP_SAMPLES, Generation
from benchmark.execution.io import save_text
from benchmark.protocols.application_findings import application_findings
from benchmark.protocols.base import ProtocolInputs
from benchmark.protocols.table import NOT_RUN, not_run_lines
from benchmark.report import findings, plots, verdicts
from benchmark.report import tables as report_tables
from benchmark.report.manifest import EstimatorRecord, estimator_records
from benchmark.report.filter_character import characterise
from benchmark.report.sample_truth import hallucination_lines, width_ratio_lines
from benchmark.report.value_findings import agreement_lines, value_lines

POSTERIOR_RECORD = "posterior.json"  # the run folder's record of the shared posterior (written by the runner)
CAPTIONS = {
    "sparsification": "Sparsification: RMSE of the remaining pixels as the most uncertain are removed (lower is "
                      "better); dashed: the oracle that removes by true error.",
    "fid_vs_kept": "ΔFID of the kept set (lowest scores) against the mean of random sets of the same size, by kept "
                   "fraction; below 0 the score filters better than chance (95 % randomization-test bands).",
    "stepwise_uncertainty": "Mean per-pixel uncertainty per denoising step of every estimator that keeps per-step "
                            "maps, at the steps it computes (a windowed estimator: its window, zoomed on the right), "
                            f"over the first {PER_STEP_SAMPLES} samples of the generation pass.",
    "extremes": "Lowest- and highest-score samples (score above each) with their pixel maps on one colour scale.",
}


@dataclass
class ReportData:
    """Everything the Markdown text is made of (no model, no tensors): testable on hand-made tables."""

    config: RunConfig
    frame: pd.DataFrame
    records: dict[str, EstimatorRecord]
    figures: list[str] = field(default_factory=list)  # paths relative to the run folder
    timings: dict[str, float] = field(default_factory=dict)
    #: the shared last-layer posterior's record (estimators.laplace_reuse.LaplaceChoice.record, saved as
    #: posterior.json by the runner), None when no estimator used one
    posterior: dict | None = None
    #: choices the run made for the user (a default feature space, the null class for unlabelled test images)
    notes: list[str] = field(default_factory=list)

    @property
    def roles(self) -> report_tables.Roles:
        refs = frozenset({report_tables.FLOOR} | {n for n, r in self.records.items() if r.reference_row})
        configured = frozenset(self.records) if self.records else None
        return report_tables.Roles(refs, {n: r.kind for n, r in self.records.items()}, configured,
                                   {n: r.explanation for n, r in self.records.items() if r.explanation})


def render_report(data: ReportData) -> str:
    cfg, roles = data.config, data.roles
    not_run = not_run_lines(data.frame)
    frame = data.frame[data.frame.estimator != NOT_RUN]
    spaces = list(cfg.features)
    lines = [f"# diffusion-uq-bench report: {cfg.name}", "",
             f"{report_tables.source_label(cfg)} · sampler `{cfg.sampler}`, {cfg.steps} steps · N = {cfg.num_samples} "
             f"samples, K = {cfg.keep} kept · seed {cfg.seed} · features {', '.join(spaces)}. Values: point "
             f"estimate [95 % interval]; ↑ higher is better, ↓ lower is better; **bold**: beats the floor (the `random` "
             f"floor; on sparsification the best trivial baseline) after the run's multiplicity adjustment "
             f"({cfg.multiplicity}, see Findings).", "",
             *replicates_lines(cfg), ""]
    fam = verdicts.family(frame, roles.is_reference, cfg.multiplicity)
    headline, names = report_tables.headline_table(frame, roles, spaces, fam)
    if headline:
        lines += ["## Headline", "", headline, "", report_tables.reference_note(names, roles), ""]
    negatable = _negatable(data.records)
    lines += ["## Findings", "", *findings.findings_lines(fam, names, negatable), ""]
    confounds = findings.class_confound_lines(frame, fam, roles.is_reference, cfg.multiplicity)
    lines += [*confounds, ""] if confounds else []
    characters = [c for c in characterise(frame) if not c.estimator.startswith("(")]
    lines += ["Fidelity or spread (each filter's ΔFID split into its mean, trace and cross terms against the same "
              "random K-subsets, with ΔKID and Δcoverage; raw tests, descriptive):", "",
              *[f"- {c.sentence}" for c in characters], ""] if characters else []
    values = value_lines(frame) + width_ratio_lines(frame)
    lines += ["What the values mean (calibration against the spread each estimator models; conformal width against "
              "a constant map's at the same coverage):", "", *values, ""] if values else []
    agreement = agreement_lines(frame)
    lines += ["Agreement with the gold standard (rank correlation with the ensemble on the same samples):", "",
              *agreement, ""] if agreement else []
    hallucinations = hallucination_lines(frame)
    lines += ["Hallucinations (exact labels; per sampler and step count):", "", *hallucinations,
              ""] if hallucinations else []
    against = findings.baseline_lines(frame, roles.is_reference, cfg.multiplicity)
    lines += ["Trivial baselines (reference rows that use no model information beyond the sample):", "", *against,
              ""] if against else []
    applications = application_findings(frame)
    if applications:
        lines += ["Applications (paired differences against each protocol's equal-cost baseline):", "",
                  *applications, ""]
    if not_run:
        lines += ["Configured but not run:", "", *not_run, ""]
    lines += ["## Results by protocol", ""]
    for protocol in dict.fromkeys(frame.protocol):
        for group in report_tables.protocol_groups(frame, protocol):
            table, reference_values = report_tables.compact_table(group, roles)
            if not table and not reference_values:
                continue
            lines += [f"### {group.title}", ""]
            lines += [table, ""] if table else []
            lines += [text for text in (group.note, reference_values) if text]
            lines.append("")
    note = report_tables.reference_note(frame.estimator, roles)
    lines += [note, ""] if note else []
    lines += ["## Settings", "", report_tables.settings_table(cfg, frame), ""]
    lines += ["Choices the run made for you:", "", *[f"- {note}" for note in data.notes], ""] if data.notes else []
    if data.records:
        lines += ["### Estimators", "", report_tables.estimator_table(data.records, roles), ""]
    lines += posterior_lines(data.posterior)
    if data.timings:
        lines += ["## Time by stage", "",
                  "Stages are wall-clock seconds; their sub-stages (↳) are seconds of work summed over the work "
                  "items and processes that did it (with several processes they add up to more than the stage).",
                  "", report_tables.time_table(data.timings), ""]
    if data.figures:
        lines += ["## Figures", ""]
        for rel in data.figures:
            stem = Path(rel).stem
            caption = next((text for key, text in CAPTIONS.items() if stem.startswith(key)), "")
            lines += [f"![{stem}]({rel})", "", f"*{stem}*: {caption}", ""]
    lines += ["Tidy numbers: `metrics.csv`; config, versions, checksums and timings: `manifest.json`.", ""]
    return "\n".join(lines)


def posterior_lines(record: dict | None) -> list[str]:
    """What the shared last-layer posterior was: loaded from a file, or fitted (on how many images, with which
    labels: the data's, the null class or uniform random labels for a class-conditional model on unlabelled data)."""
    if not record:
        return []
    settings = f"prior precision {record.get('prior_precision')}, Hessian {record.get('hessian')}"
    if record.get("source") == "loaded":
        text = f"loaded from `{record.get('path')}` (fitted on {record.get('fit_images')} images, {settings})"
    else:
        text = (f"fitted in this run on {record.get('fit_images')} training images ({settings}); labels: "
                f"{record.get('fit_labels') or 'not recorded'}")
    return ["### Last-layer posterior", "", f"Shared by the estimators that need one: {text}.", ""]


def replicates_lines(cfg: RunConfig) -> list[str]:
    """What each protocol's intervals are made of, with its replicate counts (metrics.METRIC_INFO says what each
    interval covers)."""
    from benchmark.protocols.fid_utils import DEFAULT_RANDOM_SUBSETS, bootstrap_replicates

    fid = bootstrap_replicates("", cfg.bootstrap)
    subsets = int(cfg.protocols.get("filtered_fid", {}).get("random_subsets", DEFAULT_RANDOM_SUBSETS))
    text = {
        "filtered_fid": f"FIDs: {fid} subsamples of 80 % without replacement; ΔFID vs random K: randomization test against "
                        f"{subsets} random K-subsets (their mean is the baseline)",
        "precision_recall": f"precision/recall: {bootstrap_replicates('', cfg.bootstrap // 2)} bootstrap replicates "
                            "(percentile); Δprecision vs random: exact hypergeometric test",
        "sparsification": f"AUSE: {cfg.bootstrap} bootstrap replicates over images; AURG, ΔAUSE vs the trivial "
                          "baselines and the partial ρ given them: t intervals and t-tests over images",
        "guidance": f"guided vs placebo (the verdict) and vs plain: {fid} paired subsamples",
        "ground_truth": f"ground truth: {cfg.bootstrap} bootstrap replicates over samples; tests of ρ = 0 "
                        "(Spearman) and AUROC = 0.5 (Mann-Whitney)",
        "cost": "time ratio: t interval over the generation batches (wall-clock is machine-dependent)",
    }
    return ["Intervals by protocol: " + "; ".join(v for k, v in text.items() if k in cfg.protocols) + "."]


def write_report(inputs: ProtocolInputs, frame: pd.DataFrame, timings: dict[str, float] | None = None,
                 notes: list[str] = ()) -> Path:
    """Figures, then report.md. `timings` (the run's stages so far) is shown in the report; the sub-stages
    measured here are added to it: `report.figures` (all plots). `notes`: choices the run made for the user
    (benchmark.runner.setup.run_notes), said under Settings."""
    timings = timings if timings is not None else {}
    tick = time.perf_counter()
    out = inputs.run_dir
    figures = [p.relative_to(out).as_posix() for p in _figures(inputs)]
    timings["report.figures"] = time.perf_counter() - tick
    saved = out / POSTERIOR_RECORD
    posterior = json.loads(saved.read_text()) if saved.is_file() else None
    notes = ([inputs.config.features_chosen] if inputs.config.features_chosen else []) + list(notes)
    data = ReportData(inputs.config, frame, estimator_records(inputs.config), figures, dict(timings), posterior, notes)
    path = out / "report.md"
    save_text(render_report(data), path)
    return path


def safe_name(name: str) -> str:
    """A file-name-safe form of an estimator instance name (letters, digits, `_`, `-`, `.`)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _figures(inputs: ProtocolInputs) -> list[Path]:
    out, gen = inputs.run_dir / "plots", inputs.generation
    colours = plots.palette(inputs.estimator_names)  # one colour per estimator in every figure
    paths = []
    if "sparsification_curves" in inputs.artifacts:
        paths.append(plots.sparsification_curves(inputs.artifacts["sparsification_curves"], out / "sparsification.png",
                                                 colours))
    curves = inputs.artifacts.get("fid_curves", {})
    for space in inputs.fake_features:
        if any(key[0] == space for key in curves):
            paths.append(plots.fid_curves(curves, space, out / f"fid_vs_kept_{space}.png", colours))
    if "augmentation_grid" in inputs.artifacts:  # drawn by the augmentation protocol itself
        paths.append(Path(inputs.artifacts["augmentation_grid"]))
    per_step = stepwise_uncertainty(gen, inputs.estimator_names)
    if per_step:
        paths.append(plots.stepwise(per_step, out / "stepwise_uncertainty.png", colours))
    grid = plots.ExtremesGrid(plots.extremes_count(gen.size), tuple(gen.x0.shape[1:]))  # laid out once for all
    try:
        for name in inputs.estimator_names:
            paths.append(grid.write(gen.x0, gen.pixels[name], gen.scores[name], name,
                                    out / f"extremes_{safe_name(name)}.png"))
    finally:
        grid.close()
    return paths


def stepwise_uncertainty(gen: Generation, names: list[str]) -> dict[str, dict[int, float]]:
    """Mean per-pixel uncertainty at every step an estimator computed (Fig. 3 of the aleatoric paper), from the
    per-step maps the generation pass kept for its first samples ({} where no estimator kept any)."""
    return {name: {int(t): float(m.mean()) for t, m in gen.per_step[name].items()}
            for name in names if gen.per_step.get(name)}


def _negatable(records: dict[str, EstimatorRecord]) -> set[str]:
    """Instances whose estimator accepts the common `negate` option (and are not already negated)."""
    import estimators

    found = set()
    for name, rec in records.items():
        try:
            if "negate" in estimators.parameters(rec.type) and not rec.params.get("negate"):
                found.add(name)
        except ConfigError:
            continue
    return found
