"""A run's numbers beside a paper's: the shipped values of De Vita & Belagiannis (WACV 2025) parse, name metrics the
paper config produces, and the order / sign comparison is right on a stand-in run, including where it differs."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmark.publish.published import compare, comparison_lines, load_published, published_file
from metrics.info import metric_info

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "paper_cifar10.toml"


def _frame(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["protocol", "estimator", "metric", "value"])


def test_the_paper_values_ship_beside_the_paper_config():
    path = published_file(CONFIG)
    assert path == ROOT / "configs" / "published" / "paper_cifar10.toml"
    entries = load_published(path)
    assert {e.metric for e in entries} == {"fid_kept[inception]", "ause_pooled", "aurg_pooled_mono_uncertainty"}
    assert entries[0].values == {"random": 13.494, "sensitivity": 13.416, "mc_dropout": 13.435}
    assert all(metric_info(e.metric) is not None for e in entries)  # names the suite writes


def test_order_and_signs_on_a_stand_in_run():
    entries = load_published(published_file(CONFIG))
    frame = _frame([
        ("filtered_fid", "random", "fid_kept[inception]", 20.0),
        ("filtered_fid", "sensitivity", "fid_kept[inception]", 19.0),   # below random, as in the paper
        ("filtered_fid", "mc_dropout", "fid_kept[inception]", 21.0),    # above random: sign and order differ
        ("sparsification", "sensitivity", "ause_pooled", 0.02),
        ("sparsification", "mc_dropout", "ause_pooled", 0.05),          # same order as the paper
        ("sparsification", "sensitivity", "aurg_pooled_mono_uncertainty", 0.3),
        ("sparsification", "mc_dropout", "aurg_pooled_mono_uncertainty", 0.1),
    ])
    fid, ause, aurg = compare(frame, entries)
    assert (fid.order_agrees, fid.signs_agree, fid.signs_compared) == (False, 1, 2)
    assert (ause.order_agrees, ause.signs_agree) == (True, 2) and aurg.order_agrees
    lines = comparison_lines(frame, published_file(CONFIG))
    assert "paper sensitivity 13.42 < mc_dropout 13.44 < random 13.49" in lines[1]
    assert "this run sensitivity 19 < random 20 < mc_dropout 21; order differs; signs agree for 1 of 2" in lines[1]
    assert "paper sensitivity 18.48 > mc_dropout 16.19" in lines[3]
