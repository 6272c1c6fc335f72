"""Replicates over seeds (issue 31, point 5): Stouffer's combined test, its error rate and power by simulation, the
pooled family on hand-made tables, and `run --seeds` end to end on the toy preset (seed folders, pooled files,
`validate`), with bad seeds refused before anything is written."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from benchmark.cli import main
from benchmark.config import parse_config
from benchmark.errors import ConfigError
from benchmark.report.pooling import FLIPS, STABLE, metric_spread, pool_family
from metrics.combine import stouffer
from tests.test_distributed import TIMING_METRICS, TOY_PRESET

ALPHA = 0.05


def one_sided_better(p_two_sided: float, side: int) -> float:
    """The one-sided p-value for "better" of a two-sided p and the side of its effect (by hand, not via z)."""
    return {1: p_two_sided / 2, -1: 1 - p_two_sided / 2, 0: 0.5}[side]


def test_stouffer_equals_scipy_combine_pvalues():
    rng = np.random.default_rng(3)
    for k in (1, 2, 3, 5, 10):
        for _ in range(20):
            p = rng.uniform(1e-6, 1, size=k)
            sides = rng.choice([-1, 0, 1], size=k)
            ours = stouffer(p, sides)
            q = [one_sided_better(pi, si) for pi, si in zip(p, sides)]
            scipy_better = stats.combine_pvalues(q, method="stouffer").pvalue  # Phi(-Z)
            assert stats.norm.sf(ours.z) == pytest.approx(scipy_better, rel=1e-9, abs=1e-15)
            assert ours.p_value == pytest.approx(2 * min(scipy_better, 1 - scipy_better), rel=1e-9, abs=1e-15)


def test_opposite_seeds_cancel_and_agreeing_seeds_add_up():
    """Better at p = 0.01 in one seed and worse at p = 0.01 in another: Z = 0, p = 1. Two seeds better at
    p = 0.1 each: Z = 2 z(0.05) / sqrt(2) = sqrt(2) * 1.6449, below either's threshold alone."""
    assert stouffer([0.01, 0.01], [1, -1]).p_value == pytest.approx(1.0)
    both = stouffer([0.1, 0.1], [1, 1])
    assert both.z == pytest.approx(math.sqrt(2) * stats.norm.isf(0.05))
    assert both.p_value == pytest.approx(2 * stats.norm.sf(math.sqrt(2) * stats.norm.isf(0.05)))
    assert both.p_value < ALPHA and both.side == 1


def test_null_rejection_rate_is_nominal():
    """Under H0 (p uniform in each of 3 seeds, sides +/-1 at random) the pooled test rejects at 5 %: over 20000
    simulated families the rate lies within 4 binomial sd (0.0062) of 0.05."""
    rng = np.random.default_rng(0)
    runs, k = 20000, 3
    p = rng.uniform(size=(runs, k))
    sides = rng.choice([-1, 1], size=(runs, k))
    rate = np.mean([stouffer(pi, si).p_value <= ALPHA for pi, si in zip(p, sides)])
    assert abs(rate - ALPHA) <= 4 * math.sqrt(ALPHA * (1 - ALPHA) / runs), rate


def test_planted_effect_pooled_power_beats_one_seed():
    """Each seed's test statistic is N(delta, 1) (delta = 1.5: the effect shifts it); its two-sided p is
    2 Phi(-|t|), its side sign(t). One seed rejects with power P(|N(delta, 1)| > 1.96) = 0.32; three seeds pooled
    have Z ~ N(delta sqrt(3), 1) and power 0.74. Both rates match these closed forms within 4 binomial sd."""
    rng = np.random.default_rng(1)
    runs, k, delta = 4000, 3, 1.5
    t = rng.normal(delta, 1.0, size=(runs, k))
    p, sides = 2 * stats.norm.sf(np.abs(t)), np.sign(t).astype(int)
    one = np.mean(p[:, 0] <= ALPHA)
    pooled = np.mean([stouffer(pi, si).p_value <= ALPHA for pi, si in zip(p, sides)])
    crit = stats.norm.isf(ALPHA / 2)
    expected_one = stats.norm.sf(crit - delta) + stats.norm.cdf(-crit - delta)
    shift = delta * math.sqrt(k)
    expected_pooled = stats.norm.sf(crit - shift) + stats.norm.cdf(-crit - shift)
    for rate, expected in ((one, expected_one), (pooled, expected_pooled)):
        assert abs(rate - expected) <= 4 * math.sqrt(expected * (1 - expected) / runs), (rate, expected)
    assert pooled > one + 0.3


def frame(rows: list[tuple[str, str, str, float, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"protocol": p, "estimator": e, "metric": m, "value": v, "ci_low": np.nan,
                          "ci_high": np.nan, "n": 8, "seed": 0, "p_value": pv} for p, e, m, v, pv in rows])


def test_pooled_family_on_hand_made_seeds():
    """`a` beats the floor on AURG in both seeds (raw p 0.004, 0.03); `b` is better in seed 0 and worse in seed 1
    at p = 0.004: its pooled Z is 0 and it flips; `random`'s test is a check outside the family."""
    seeds = {
        0: frame([("sparsification", "a", "aurg", 0.2, 0.004), ("sparsification", "b", "aurg", 0.1, 0.004),
                  ("sparsification", "random", "aurg", 0.01, 0.5), ("sparsification", "a", "ause", 0.3, np.nan)]),
        5: frame([("sparsification", "a", "aurg", 0.1, 0.03), ("sparsification", "b", "aurg", -0.1, 0.004),
                  ("sparsification", "random", "aurg", -0.01, 0.5), ("sparsification", "a", "ause", 0.5, np.nan)]),
    }
    family = pool_family(seeds, lambda name: name == "random", "holm")
    a, b = family.verdicts
    assert (a.estimator, b.estimator) == ("a", "b") and family.seeds == (0, 5)
    z_a = (stats.norm.isf(0.002) + stats.norm.isf(0.015)) / math.sqrt(2)
    assert a.z == pytest.approx(z_a) and b.z == pytest.approx(0.0, abs=1e-12)
    p_a = 2 * stats.norm.sf(z_a)
    assert a.adjusted_p == pytest.approx(min(1.0, 2 * p_a))  # Holm over 2 tests, a's the smaller p
    assert a.outcome == 1 and b.outcome == 0 and b.adjusted_p == pytest.approx(1.0)
    # within each seed (Holm over 2): seed 0: a 0.008, b 0.008 -> both better; seed 5: a 0.03, b -> worse (0.008)
    assert a.outcomes == (1, 1) and a.stability == STABLE
    assert b.outcomes == (1, -1) and b.stability == FLIPS
    (check,) = family.floor_checks
    assert check.estimator == "random" and check.adjusted_p == check.combined_p and check.outcome == 0
    spread = metric_spread(seeds).set_index(["estimator", "metric"])
    values = np.array([0.3, 0.5])
    row = spread.loc[("a", "ause")]
    assert (row["mean"], row["sd"], row["min"], row["max"], row["n_seeds"]) == pytest.approx(
        (values.mean(), values.std(ddof=1), 0.3, 0.5, 2))


SEEDS_TOML = """
[run]
name = "toy"
preset = "toy"
steps = 4
num_samples = 12
keep = 10
batch_size = 6
bootstrap = 10
{seeds}

[estimators.sensitivity]
m = 2
window = [40, 50]

[protocols.filtered_fid]
curve_fractions = [1.0]
[protocols.sparsification]
num_images = 6
"""


def write_config(folder, seeds_line: str):
    path = folder / "toy.toml"
    path.write_text(SEEDS_TOML.format(seeds=seeds_line))
    return path


@pytest.mark.parametrize("line,shown", [("seeds = []", "[]"), ("seeds = [0, 0]", "[0, 0]"),
                                        ("seeds = [0, 1.5]", "[0, 1.5]"), ('seeds = ["0"]', "['0']"),
                                        ("seeds = [0, -1]", "[0, -1]"), ("seeds = 2", "2"),
                                        ("seed = 1\nseeds = [0, 1]", "[0, 1]")])
def test_bad_seeds_are_refused_in_one_line_before_anything_is_written(line, shown, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("UQBENCH_EXTRA_PRESETS", TOY_PRESET)
    out = tmp_path / "out"
    assert main(["run", "--config", str(write_config(tmp_path, line)), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"error: run.seeds = {shown} is invalid:") and "Fix:" in err
    assert not out.exists()


@pytest.mark.parametrize("text", ["", "0,0", "0,a", "-1,2", "1.5"])
def test_bad_cli_seeds_are_refused(text, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("UQBENCH_EXTRA_PRESETS", TOY_PRESET)
    out = tmp_path / "out"
    code = main(["run", "--config", str(write_config(tmp_path, "")), "--out", str(out), f"--seeds={text}"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith(f"error: --seeds = {text!r} is invalid")
    assert not out.exists()


def test_one_seed_is_a_plain_run_config():
    config = parse_config({"run": {"preset": "toy", "seeds": [3]}})
    assert config.seed == 3 and config.seeds == () and "seeds" not in config.to_dict()["run"]
    many = parse_config({"run": {"preset": "toy", "seeds": [4, 2]}})
    assert many.seeds == (4, 2) and many.to_dict()["run"]["seeds"] == [4, 2]
    with pytest.raises(ConfigError, match="run.seeds"):
        parse_config({"run": {"preset": "toy", "seeds": [True, 1]}})


@pytest.fixture(scope="module")
def replicates(tmp_path_factory):
    folder = tmp_path_factory.mktemp("seeds")
    out = folder / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UQBENCH_EXTRA_PRESETS", TOY_PRESET)
        code = main(["run", "--config", str(write_config(folder, "seeds = [0, 1]")), "--out", str(out), "--quiet"])
    assert code == 0
    return folder, out


def test_seeds_run_end_to_end_and_validate(replicates, monkeypatch, capsys):
    folder, out = replicates
    for seed in (0, 1):
        run = pd.read_csv(out / f"seed_{seed}" / "metrics.csv")
        assert set(run.seed) == {seed} and (out / f"seed_{seed}" / "report.md").is_file()
    first, second = (pd.read_csv(out / f"seed_{s}" / "metrics.csv") for s in (0, 1))
    spread = pd.read_csv(out / "seeds.csv")
    # the spread against the seed folders' own metrics.csv
    both = first.merge(second, on=["protocol", "estimator", "metric"], suffixes=("_0", "_1"))
    both = both[np.isfinite(both.value_0) & np.isfinite(both.value_1)]
    merged = both.merge(spread, on=["protocol", "estimator", "metric"])
    assert len(merged) == len(both) > 10
    pairs = merged[["value_0", "value_1"]].to_numpy()
    np.testing.assert_allclose(merged["mean"], pairs.mean(axis=1), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(merged["sd"], pairs.std(axis=1, ddof=1), rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(merged["min"], pairs.min(axis=1), rtol=1e-5, atol=1e-9)
    assert (merged.n_seeds == 2).all()
    pooled = pd.read_csv(out / "pooled_verdicts.csv")
    tests = pooled[pooled.role == "family"]
    assert {"sensitivity"} == set(tests.estimator) and len(tests) >= 2
    assert set(pooled[pooled.role == "floor check"].estimator) == {"random"}
    for row in tests.itertuples():  # per-seed p-values are the seed folders' own, the combination recomputed by hand
        p = [float(f[(f.estimator == row.estimator) & (f.metric == row.metric)].p_value.iloc[0])
             for f in (first, second)]
        assert [row.p_seed_0, row.p_seed_1] == pytest.approx(p, rel=1e-5)
        z = [s * stats.norm.isf(pi / 2) for pi, s in zip(p, np.sign([row.value_seed_0, row.value_seed_1]))]
        assert abs(row.z) == pytest.approx(abs(sum(z)) / math.sqrt(2), rel=1e-4)
        assert row.stability == (STABLE if row.outcome_seed_0 == row.outcome_seed_1 else FLIPS)
    text = (out / "seeds.md").read_text()
    assert "Stouffer" in text and "## Pooled verdicts" in text and "Stable across seeds:" in text
    monkeypatch.setenv("UQBENCH_EXTRA_PRESETS", TOY_PRESET)
    assert main(["validate", str(out)]) == 0
    assert "valid replicates (seeds 0, 1" in capsys.readouterr().out


def test_changed_pooled_file_or_seed_folder_is_invalid(replicates, tmp_path, monkeypatch, capsys):
    import shutil

    _, out = replicates
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    monkeypatch.setenv("UQBENCH_EXTRA_PRESETS", TOY_PRESET)
    (copy / "seeds.csv").write_text((copy / "seeds.csv").read_text().replace(",2\n", ",3\n", 1))
    (copy / "seed_1" / "metrics.csv").unlink()
    assert main(["validate", str(copy), "--skip-weights"]) == 2
    err = capsys.readouterr().err
    assert "seeds.csv was changed" in err and "seed_1: metrics.csv is missing" in err


def test_rerun_refuses_finished_replicates_and_resumes_an_unfinished_one(replicates, tmp_path, monkeypatch, capsys):
    """Finished: refused without --overwrite. A missing seed folder (as if killed before it): the same command runs
    only that seed, keeps the finished one (its files untouched) and writes the pooled files again."""
    import shutil

    folder, out = replicates
    monkeypatch.setenv("UQBENCH_EXTRA_PRESETS", TOY_PRESET)
    argv = ["run", "--config", str(folder / "toy.toml"), "--quiet"]
    assert main([*argv, "--out", str(out)]) == 2
    assert "finished replicates" in capsys.readouterr().err
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    shutil.rmtree(copy / "seed_1")
    (copy / "replicates.json").unlink()
    kept = (copy / "seed_0" / "manifest.json").read_bytes()
    assert main([*argv, "--out", str(copy)]) == 0
    assert (copy / "seed_0" / "manifest.json").read_bytes() == kept
    again, before = (pd.read_csv(r / "seed_1" / "metrics.csv") for r in (copy, out))
    again, before = (f[~f.metric.isin(TIMING_METRICS)].reset_index(drop=True) for f in (again, before))
    pd.testing.assert_frame_equal(again, before)  # the same seed gives the same numbers
    assert main(["validate", str(copy), "--skip-weights"]) == 0
