"""The report's text on hand-made tables (known verdicts), metric semantics, CI comparisons, file modes."""
from __future__ import annotations

import math
import os
import stat

import numpy as np
import pandas as pd
import pytest

from benchmark.config import parse_config
from benchmark.execution.io import atomic_write, save_text
from benchmark.protocols.table import COLUMNS
from benchmark.report import metric_info, ranking
from benchmark.report.document import ReportData, render_report
from benchmark.report.manifest import EstimatorRecord

NAN = math.nan
# good beats the floor on both quality metrics, bad is worse on both, meh overlaps random everywhere
ROWS = [
    ("filtered_fid", "(all)", "fid_all[classifier]", 10.0, 9.0, 11.0),
    ("filtered_fid", "random", "fid_kept[classifier]", 10.0, 9.0, 11.0),
    ("filtered_fid", "good", "fid_kept[classifier]", 7.0, 6.5, 7.5),
    ("filtered_fid", "bad", "fid_kept[classifier]", 12.0, 11.5, 12.5),
    ("filtered_fid", "meh", "fid_kept[classifier]", 10.5, 9.0, 12.0),
    ("filtered_fid", "good", "delta_vs_random[classifier]", -3.0, -4.0, -2.0, 1e-4),
    ("filtered_fid", "bad", "delta_vs_random[classifier]", 2.0, 1.0, 3.0, 1e-3),
    ("filtered_fid", "meh", "delta_vs_random[classifier]", 0.5, -1.0, 2.0, 0.6),
    ("filtered_fid", "random", "delta_vs_random[classifier]", 0.2, -1.0, 1.4, 0.7),
    ("sparsification", "(all)", "rmse", 0.3, NAN, NAN),
    ("sparsification", "(all)", "start_timestep", 500.0, NAN, NAN),
    ("sparsification", "random", "ause", 0.3, 0.29, 0.31),
    ("sparsification", "good", "ause", 0.1, 0.09, 0.11),
    ("sparsification", "bad", "ause", 0.5, 0.45, 0.55),
    ("sparsification", "meh", "ause", 0.3, 0.25, 0.35),
    ("sparsification", "good", "ause_delta_vs_trivial", -0.2, -0.22, -0.18, 1e-5),
    ("sparsification", "bad", "ause_delta_vs_trivial", 0.2, 0.15, 0.25, 1e-4),
    ("sparsification", "meh", "ause_delta_vs_trivial", 0.0, -0.05, 0.05, 0.9, 0.07),
    ("sparsification", "good", "ause_pooled", 0.1, NAN, NAN),
    ("sparsification", "bad", "ause_pooled", 0.5, NAN, NAN),
    ("sparsification", "random", "ause_pooled", 0.3, NAN, NAN),
    ("cost", "(sampler)", "nfe_per_sample", 50.0, NAN, NAN),
    ("cost", "random", "extra_nfe_per_sample", 0.0, NAN, NAN),
    ("cost", "good", "extra_nfe_per_sample", 20.0, NAN, NAN),
    ("cost", "bad", "extra_nfe_per_sample", 20.0, NAN, NAN),
    ("cost", "meh", "extra_nfe_per_sample", 40.0, NAN, NAN),
]


def _frame() -> pd.DataFrame:
    return pd.DataFrame([(*r[:6], 24, 0, r[6] if len(r) > 6 else NAN, r[7] if len(r) > 7 else NAN) for r in ROWS],
                        columns=COLUMNS)


def _report() -> str:
    config = parse_config({"run": {"preset": "digits", "num_samples": 24, "keep": 20, "steps": 10},
                           "protocols": {"filtered_fid": {}, "sparsification": {}, "cost": {}}})
    records = {name: EstimatorRecord("random" if name == "random" else "sensitivity", "heuristic",
                                     name == "random", {}) for name in ("random", "good", "bad", "meh")}
    return render_report(ReportData(config, _frame(), records, ["plots/extremes_good.png"],
                                    {"generation": 3.0, "generation.sampler": 2.0, "report.figures": 1.0,
                                     "report.figures.stepwise_pass": 0.5}))


def _section(text: str, title: str) -> str:
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_headline_comes_first_with_arrows_bold_winner_and_reference_rows_apart():
    text = _report()
    assert text.index("## Headline") < text.index("## Findings") < text.index("## Results by protocol")
    head = _section(text, "Headline")
    lines = [line for line in head.splitlines() if line.startswith("|")]
    assert "ΔFID vs random K [classifier] ↓" in lines[0] and "AUSE ↓" in lines[0]
    assert "extra NFE / sample ↓" in lines[0]
    names = [line.split("|")[1].strip() for line in lines[2:]]
    assert names == ["`good`", "`bad`", "`meh`", "*random*"]  # ranked rows first, the floor apart in italics
    good = lines[2]
    # good beats the floor on ΔFID and on AUSE (its test: ΔAUSE vs random) after Holm over the family of 6; cost
    # is no test
    assert "**-3 [-4, -2]**" in good and "**0.1 [0.09, 0.11]**" in good
    assert head.count("**") == 4 and "**20**" not in head
    assert "Reference rows (italic, never ranked): *random* = the floor" in head


def test_findings_state_which_estimators_beat_or_lose_to_random():
    findings = _section(_report(), "Findings")
    line = {n: next(li for li in findings.splitlines() if li.startswith(f"- `{n}`")) for n in ("good", "bad", "meh")}
    assert "**beats the floor**" in line["good"] and "ΔAUSE vs best trivial ↓: -0.2 [-0.22, -0.18], adjusted p = 6e-05" in line["good"]
    assert "**worse than the floor**" in line["bad"] and "ΔFID vs random K [classifier] ↓: 2 [1, 3], adjusted p = 0.003" in line["bad"]
    assert "not distinguishable from the floor" in line["meh"]
    # a "not distinguishable" quotes what it could have seen: the raw-level MDE 0.07 moved to Holm's alpha / 6, with
    # the t law of the paired test over the row's 24 images
    from scipy.stats import t
    q = t(23)
    family_mde = 0.07 * (q.ppf(1 - 0.05 / 12) + q.ppf(0.8)) / (q.ppf(0.975) + q.ppf(0.8))
    assert f"ΔAUSE vs best trivial ↓ (could not see |Δ| < {family_mde:.3g})" in line["meh"]
    assert "extra NFE" not in findings  # cost is no verdict
    # the family is named with its size and method; the floor's own tests are a check, outside the family
    assert "the family is 6 tests of ranked estimators" in findings and "holm" in findings
    assert "the `random` row's own 1 tests give 0 significant" in findings


def test_protocol_tables_drop_reference_only_columns_and_move_settings():
    text = _report()
    fid = _section(text, "Results by protocol").split("### filtered_fid · classifier\n", 1)[1].split("###")[0]
    header = fid.strip().splitlines()[0]
    assert "FID of all N" not in header and "FID of kept K ↓" in header
    assert "Reference values: *(all)* FID of all N ↓ = 10 [9, 11]." in fid
    spars = text.split("### sparsification\n", 1)[1].split("###")[0]
    assert "start_timestep" not in spars and "*(all)* rmse ↓ = 0.3" in spars
    assert "| `good` | 0.1 [0.09, 0.11] | -0.2 [-0.22, -0.18] | 0.1 |" in spars  # compact tables bold nothing
    settings = _section(text, "Settings")
    assert "| sparsification start_timestep | 500 |" in settings and "| steps | 10 |" in settings
    times = _section(text, "Time by stage")
    assert "| generation | 3.00 | 75 % |" in times and "| total | 4.00 | 100 % |" in times
    assert "| ↳ generation.sampler | 2.00 | 50 % |" in times and "| ↳ report.figures.stepwise_pass | 0.50 | 12 % |" in times
    assert "![extremes_good](plots/extremes_good.png)" in text


@pytest.mark.parametrize("metric, sign", [
    ("fid_kept[classifier]", -1), ("delta_vs_random[inception]", -1), ("precision[classifier]", 1), ("aurg", 1),
    ("ause_pooled", -1), ("spearman_score_vs_neg_log_density", 1), ("auroc_between_modes", 1),
    ("mean_abs_change_x0", 0), ("extra_nfe_per_sample", -1), ("time_ratio", -1), ("start_timestep", 0),
    ("delta_vs_isotropic[bayesdiff].vendi[classifier]", 1), ("rejection.delta_vs_random_trigger.fid[classifier]", -1),
    ("delta_vs_redraw.class_agreement", 1), ("delta_vs_random_at_keep_0.50[classifier]", -1)])
def test_metric_direction_from_its_name(metric, sign):
    assert metric_info.direction(metric) == sign


def test_metric_names_parse_into_space_and_curve_points():
    parsed = metric_info.parse("fid_at_keep_0.50[inception]")
    assert (parsed.base, parsed.space, parsed.family, parsed.point) == ("fid_at_keep_0.50", "inception",
                                                                        "fid_at_keep", "0.50")
    assert metric_info.is_cost("extra_nfe_per_sample") and not metric_info.is_cost("ause")
    assert metric_info.parse("calibration_ratio[skip=5]").space is None  # a setting, not a feature space
    assert metric_info.direction("calibration_ratio[skip=5]") == 0
    assert metric_info.label("delta_vs_random[classifier]") == "ΔFID vs random K [classifier] ↓"


def test_significance_needs_intervals_clear_of_every_other():
    values, lows, highs = (pd.Series(d) for d in ({"a": 1.0, "b": 2.5, "c": 3.0}, {"a": 0.8, "b": 2.0, "c": 2.4},
                                                   {"a": 1.2, "b": 3.0, "c": 3.6}))
    assert ranking.significantly_best(values, lows, highs, higher_is_better=False) == "a"
    assert ranking.significantly_best(values, lows, highs, higher_is_better=True) is None  # b and c overlap
    assert ranking.compare(1.0, 0.8, 1.2, 2.5, 2.0, 3.0, higher_is_better=False) == 1
    assert ranking.compare(1.0, 0.8, 1.2, 1.1, 0.9, 1.3, higher_is_better=False) == 0
    assert ranking.compare(1.0, NAN, NAN, 0.5, 0.4, 0.6, higher_is_better=True) == 1  # no interval: the point
    assert ranking.ci_aware_ranks(values, lows, highs, higher_is_better=True).to_dict() == {"a": 3, "b": 1, "c": 1}


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_atomic_writes_get_the_mode_open_would_give(tmp_path, umask):
    previous = os.umask(umask)
    try:
        save_text("x", tmp_path / "sub" / "a.txt")
        atomic_write(tmp_path / "b.bin", lambda tmp: tmp.write_bytes(b"y"))
    finally:
        os.umask(previous)
    for name in ("sub/a.txt", "b.bin"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "sub").stat().st_mode) == 0o777 & ~umask
    assert (tmp_path / "sub" / "a.txt").read_text() == "x" and not list(tmp_path.glob(".*tmp"))


def test_protocol_baseline_rows_are_references_and_dotted_metrics_get_their_own_table():
    """Rows that are no configured estimator (a protocol's baselines) are never bolded or ranked; a paired
    difference `group.measure` goes to a table per group; the applications' findings lines are included."""
    rows = [("augmentation", "bayesdiff", "vendi[classifier]", 3.0, 2.9, 3.1),
            ("augmentation", "redraw", "vendi[classifier]", 5.0, 4.9, 5.1),
            ("augmentation", "bayesdiff", "delta_vs_redraw.vendi[classifier]", -2.0, -2.2, -1.8)]
    frame = pd.DataFrame([(*r, 8, 0, NAN, NAN) for r in rows], columns=COLUMNS)
    config = parse_config({"run": {"preset": "digits", "num_samples": 24, "keep": 20, "steps": 10},
                           "protocols": {"cost": {}}})
    records = {"bayesdiff": EstimatorRecord("bayesdiff", "epistemic", False, {}),
               "random": EstimatorRecord("random", "heuristic", True, {})}
    text = render_report(ReportData(config, frame, records))
    assert "| *redraw* | 5 [4.9, 5.1] |" in text and "**" not in text.split("## Results by protocol")[1]
    assert "### augmentation · classifier: delta_vs_redraw" in text and "| vendi ↑ |" in text
    assert "*redraw* = a baseline row of the protocol, not a configured estimator" in text
    assert "- augmentation: bayesdiff vs redraw: difference in vendi[classifier] -2 [-2.2, -1.8] -> worse" in text


def test_a_run_without_preset_names_its_model_and_data_not_an_empty_preset():
    """A [model] section only (no run.preset): the report's first line, its settings and the leaderboard's track
    line name the model path and the data, never "Preset ``"."""
    from benchmark.publish.leaderboard import describe_track
    from benchmark.report.manifest import track_of

    config = parse_config({"run": {"num_samples": 24, "keep": 20, "steps": 10},
                           "model": {"path": "some/unet-folder"}, "data": {"name": "fashion"},
                           "protocols": {"cost": {}}})
    text = render_report(ReportData(config, _frame(), {}))
    intro = text.splitlines()[2]
    assert intro.startswith("Model `some/unet-folder` · data `fashion` · sampler `ddim`, 10 steps")
    assert "Preset" not in text and "| preset |" not in _section(text, "Settings")
    assert "| model.path | `some/unet-folder` |" in _section(text, "Settings")
    track = describe_track(track_of(config.to_dict(), "0.0"))
    assert "preset" not in track and "model path=some/unet-folder" in track and "data name=fashion" in track
    with_preset = parse_config({"run": {"preset": "digits", "num_samples": 24, "keep": 20, "steps": 10},
                                "protocols": {"cost": {}}})
    assert render_report(ReportData(with_preset, _frame(), {})).splitlines()[2].startswith("Preset `digits` · ")


def test_a_configured_measurement_that_cannot_run_is_a_row_and_a_report_line():
    """Issue 11.5: P&R in a space with committed statistics only is not skipped in silence."""
    from benchmark.protocols import precision_recall
    from benchmark.protocols.table import NOT_RUN, not_run_row, to_frame

    class Gen:
        size, scores = 12, {}

    class Inputs:
        config = parse_config({"run": {"preset": "digits", "num_samples": 12, "keep": 10, "steps": 10},
                               "protocols": {"cost": {}}})
        generation, estimator_names = Gen(), []
        fake_features, real_features = {"inception": np.zeros((12, 4))}, {}
        artifacts: dict = {}

    rows = precision_recall.run(Inputs(), {"k": 3})
    assert rows == [not_run_row("precision_recall", "no_real_features", "inception", 0)]
    frame = pd.concat([_frame(), to_frame(rows)])
    text = render_report(ReportData(Inputs.config, frame, {}))
    assert "- `precision_recall` in the `inception` space did not run: only reference statistics" in text
    assert NOT_RUN not in text.split("## Results by protocol")[1]


def test_class_confound_is_flagged_when_the_verdict_changes_within_classes():
    from benchmark.report import findings, verdicts

    rows = [("filtered_fid", "good", "delta_vs_random[classifier]", -3.0, -4.0, -2.0, 1e-4),
            ("filtered_fid", "meh", "delta_vs_random[classifier]", 0.5, -1.0, 2.0, 0.6),
            # good's gain disappears when the filter keeps every class's share: it removed a class
            ("filtered_fid", "good", "delta_vs_random_stratified[classifier]", -0.2, -1.2, 0.8, 0.7),
            ("filtered_fid", "meh", "delta_vs_random_stratified[classifier]", 0.4, -1.0, 1.8, 0.5),
            ("filtered_fid", "good", "kept_class_tvd", 0.3, NAN, NAN, 1e-6),
            ("filtered_fid", "meh", "kept_class_tvd", 0.02, NAN, NAN, 0.8),
            ("filtered_fid", "random", "kept_class_tvd", 0.03, NAN, NAN, 1e-9)]  # a reference row: never flagged
    frame = pd.DataFrame([(*r[:6], 24, 0, r[6], NAN) for r in rows], columns=COLUMNS)
    is_reference = lambda name: name == "random"  # noqa: E731
    fam = verdicts.family(frame, is_reference)
    lines = findings.class_confound_lines(frame, fam, is_reference)
    assert len(lines) == 2 and lines[1].startswith("- `good` keeps a class histogram 0.30 (TVD)")
    assert "better than random, filtered within classes -0.2 [-1.2, 0.8] -> not distinguishable" in lines[1]


def test_choices_the_run_made_are_said_under_settings():
    config = parse_config({"run": {"preset": "digits", "num_samples": 24, "keep": 20, "steps": 10},
                           "protocols": {"filtered_fid": {}, "sparsification": {}, "cost": {}}})
    note = "run.features defaulted to [\"classifier\"]: the domain classifier beside the data serves it"
    text = render_report(ReportData(config, _frame(), {}, notes=[note]))
    settings = _section(text, "Settings")
    assert "Choices the run made for you:" in settings and f"- {note}" in settings
    assert "Choices the run made" not in render_report(ReportData(config, _frame(), {}))
