"""Estimator cards: generated from the registry; docs/estimators.md's table is the generated one, `list --estimators`."""
from __future__ import annotations

import estimators
from benchmark.cli import main
from estimators.cards import PAGE, builtin_names, cards, generated_block, markdown_table


def test_the_docs_table_is_the_generated_one():
    """Regenerate with `python -m estimators.cards --write-docs` when an estimator or a default changes."""
    assert generated_block(PAGE.read_text(encoding="utf-8")) == markdown_table(cards())


def test_every_builtin_card_is_complete():
    found = cards()
    assert {c.name for c in found} >= {"sensitivity", "bayesdiff", "mc_dropout", "random", "generative_uncertainty",
                                        "x0_trajectory", "flip", "zigzag", "noise_perturbation", "realism_oracle"}
    for c in found:
        assert "(not stated)" not in (c.paper, c.needs, c.extra_nfe), c
        assert c.kind == estimators.get_class(c.name).kind
    by_name = {c.name: c for c in found}
    assert by_name["realism_oracle"].reference_row and by_name["random"].reference_row
    assert "laplace" not in by_name["generative_uncertainty"].parameters  # handed over by the run, not a setting
    assert "m = 5" in by_name["generative_uncertainty"].parameters


def test_list_estimators_prints_every_card(capsys):
    assert main(["list", "--estimators"]) == 0
    out = capsys.readouterr().out
    for name in builtin_names():
        assert f"{name}  [{estimators.get_class(name).kind}" in out
    assert "extra NFEs per sample: m x num_zigzag x window steps" in out
