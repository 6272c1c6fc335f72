"""configs/applications.toml (BayesDiff's augmentation and rectification on fashion) runs end to end through the CLI
at reduced sizes, and its report states the application verdicts with their error-rate control (Holm)."""
from __future__ import annotations

import pandas as pd

from tests.test_roster_configs import reduced_run

SMALL = {"augmentation": {"num_samples": 2, "variants": 3}, "rectification": {"tries": 2}}


def test_applications_config_runs_and_states_adjusted_verdicts(tmp_path, monkeypatch):
    import tests.test_roster_configs as roster

    monkeypatch.setattr(roster, "SMALL_PROTOCOL", {**roster.SMALL_PROTOCOL, **SMALL})
    data, out = reduced_run("applications", tmp_path)
    frame = pd.read_csv(out / "metrics.csv")
    assert {"augmentation", "rectification", "filtered_fid", "cost"} <= set(frame.protocol)
    paired = frame[frame.metric.str.contains("delta_vs_", regex=False) & frame.protocol.isin(
        ["augmentation", "rectification"])]
    assert not paired.empty and paired.p_value.notna().any()  # the application comparisons are tests
    report = (out / "report.md").read_text()
    assert "Holm over the run's" in report and "application comparisons" in report
