"""Issue 38: the Python API (`benchmark.run`, `load`, `compare`, `Run`) gives what the command line and the files a
run wrote give: the CLI's metrics.csv bit for bit, the CLI's refusals as exceptions, the report's headline and
family, the shards' per-sample results, the site's ranks. `import benchmark` stays cheap (a fresh process).

The smoke comparison runs configs/smoke.toml at a reduced size (every estimator and protocol, N = 24) once through
`python -m benchmark run` in a fresh process and once through `benchmark.run` here; the other tests use the toy runs
of tests/report_runs.py.
"""
from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import benchmark
from benchmark.errors import ConfigError, UQBenchError
from tests.report_runs import BASE, TOY_PRESET, toy_run

ROOT = Path(__file__).resolve().parents[1]
#: configs/smoke.toml at a reduced size (line edits of the committed file, so the CLI reads a TOML file)
REDUCTIONS = {"num_samples": 24, "keep": 20, "batch_size": 12, "bootstrap": 20}
TIMING_METRICS = ("seconds_per_sample", "time_ratio")  # wall-clock: differ between any two runs


def small_smoke_toml(**run_changes) -> str:
    text = (ROOT / "configs" / "smoke.toml").read_text()
    for key, value in {**REDUCTIONS, **run_changes}.items():
        text, count = re.subn(rf"^{key} = \S+", f"{key} = {value}", text, count=1, flags=re.M)
        assert count == 1, key
    text = re.sub(r"(\[protocols\.guidance\]\n)num_samples = \d+", r"\1num_samples = 8", text)
    text = re.sub(r"(\[protocols\.sparsification\]\n)num_images = \d+", r"\1num_images = 4", text)
    data = tomllib.loads(text)
    assert data["protocols"]["guidance"]["num_samples"] == 8 and data["protocols"]["sparsification"]["num_images"] == 4
    return text


def cli(*argv: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "benchmark", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)


def one_line(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> dict[str, Path]:
    """The reduced smoke config run by the CLI (fresh process) and by benchmark.run (this process)."""
    folder = tmp_path_factory.mktemp("api_smoke")
    config = folder / "small.toml"
    config.write_text(small_smoke_toml())
    done = cli("run", "--config", str(config), "--out", str(folder / "cli"), "--quiet")
    assert done.returncode == 0, done.stderr[-3000:]
    run = benchmark.run(tomllib.loads(config.read_text()), out=folder / "api", progress=False)
    assert isinstance(run, benchmark.Run) and run.path == folder / "api"
    return {"config": config, "cli": folder / "cli", "api": folder / "api", "run": run}


def test_run_gives_the_clis_metrics_csv_bit_for_bit(smoke):
    cli_lines = (smoke["cli"] / "metrics.csv").read_text().splitlines()
    api_lines = (smoke["api"] / "metrics.csv").read_text().splitlines()
    assert len(api_lines) == len(cli_lines) > 300
    timing = [i for i, line in enumerate(cli_lines) if line.split(",")[2] in TIMING_METRICS]
    assert 0 < len(timing) < len(cli_lines) / 10  # the cost protocol's wall-clock rows
    same = [i for i in range(len(cli_lines)) if i not in timing]
    assert [api_lines[i] for i in same] == [cli_lines[i] for i in same]  # every measured number, bit for bit
    assert [api_lines[i].split(",")[:3] for i in timing] == [cli_lines[i].split(",")[:3] for i in timing]
    assert (smoke["api"] / "config.json").read_bytes() == (smoke["cli"] / "config.json").read_bytes()
    assert sorted(p.name for p in (smoke["api"] / "shards").iterdir()) == \
        sorted(p.name for p in (smoke["cli"] / "shards").iterdir())
    assert cli("validate", str(smoke["api"]), "--skip-weights").returncode == 0  # the folder the CLI accepts


def test_a_finished_folder_is_refused_as_the_cli_refuses_it(smoke):
    done = cli("run", "--config", str(smoke["config"]), "--out", str(smoke["api"]), "--quiet")
    assert done.returncode == 2
    with pytest.raises(UQBenchError) as refused:
        benchmark.run(smoke["config"], out=smoke["api"], progress=False)
    assert one_line(done.stderr) == f"error: {one_line(str(refused.value))}"


def test_bad_input_raises_the_clis_error_before_anything_is_written(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text(small_smoke_toml(keep=30))  # K > N
    done = cli("run", "--config", str(config), "--out", str(tmp_path / "cli"), "--quiet")
    assert done.returncode == 2
    with pytest.raises(ConfigError) as refused:
        benchmark.run(tomllib.loads(config.read_text()), out=tmp_path / "api")
    assert one_line(done.stderr) == f"error: {one_line(str(refused.value))}"
    assert "run.keep" in str(refused.value)
    assert not (tmp_path / "api").exists() and not (tmp_path / "cli").exists()
    with pytest.raises(ConfigError, match="seeds"):
        benchmark.run(config, seeds=[1, 1])


def test_scores_maps_and_images_are_the_shards_in_index_order(smoke):
    run = smoke["run"]
    shards = [torch.load(p, weights_only=False) for p in sorted((run.path / "shards").glob("gen_*.pt"))]
    assert len(shards) == 2  # 24 samples in batches of 12: the indices below cross the shard boundary
    raw_scores = torch.cat([s["scores"]["sensitivity"] for s in shards]).numpy()
    scores = run.scores("sensitivity")
    assert list(scores.index) == list(range(24)) and np.array_equal(scores.to_numpy(), raw_scores.astype(float))
    picked = [13, 2, 23, 11, 12]
    raw_maps = torch.cat([s["pixels"]["bayesdiff"] for s in shards]).numpy()
    assert np.array_equal(run.maps("bayesdiff", picked), raw_maps[picked])
    raw_x0 = torch.cat([s["x0"] for s in shards]).numpy()
    assert np.array_equal(run.images(picked), raw_x0[picked])
    with pytest.raises(ConfigError, match="features after generation"):
        run.scores("realism_oracle")  # its shard scores are placeholders: refused, not returned
    with pytest.raises(ConfigError, match="one of the run's estimators"):
        run.scores("nope")
    with pytest.raises(ConfigError, match="0..23"):
        run.maps("sensitivity", [24])


def test_plot_is_the_reports_figure(smoke):
    from matplotlib.figure import Figure
    from matplotlib.image import imread

    run = smoke["run"]
    linked = re.findall(r"!\[[^]]*\]\(plots/([^)]+)\.png\)", run.report)
    assert linked and sorted(linked) == run.plots
    figure = run.plot("sparsification")
    assert isinstance(figure, Figure)
    shown = figure.axes[0].images[0].get_array()
    assert np.array_equal(np.asarray(shown), imread(run.path / "plots" / "sparsification.png"))
    with pytest.raises(ConfigError, match="one of the run's figures"):
        run.plot("nope")


def test_metrics_are_metrics_csv_typed():
    run = benchmark.load(toy_run("base"), check_weights=False)
    raw = pd.read_csv(run.path / "metrics.csv")
    assert list(run.metrics.columns) == list(raw.columns)
    assert run.metrics.n.dtype == "Int64" and run.metrics.seed.dtype == "Int64"
    assert all(run.metrics[c].dtype == "float64" for c in ("value", "ci_low", "ci_high", "p_value"))
    pd.testing.assert_frame_equal(run.metrics[["value", "ci_low", "ci_high", "p_value"]],
                                  raw[["value", "ci_low", "ci_high", "p_value"]])
    assert list(run.metrics.estimator) == list(raw.estimator)
    assert run.config == json.loads((run.path / "config.json").read_text())
    assert run.manifest == json.loads((run.path / "manifest.json").read_text())


def holm(p: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, written out here (the oracle of the family's adjustment)."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    adjusted, running = [0.0] * len(p), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def test_verdicts_are_the_reports_family_with_holm_over_metrics_csv():
    run = benchmark.load(toy_run("base"), check_weights=False)
    verdicts, raw = run.verdicts, pd.read_csv(run.path / "metrics.csv").set_index(["protocol", "estimator", "metric"])
    stated = re.search(r"the family is (\d+) tests", run.report)
    assert stated and len(verdicts) == int(stated.group(1)) == verdicts.attrs["family_size"] > 0
    assert set(verdicts.estimator) == {"sensitivity", "mc_dropout"}  # ranked estimators only, never `random`
    for row in verdicts.itertuples():
        source = raw.loc[(row.protocol, row.estimator, row.metric)]
        assert row.p_value == source.p_value and row.value == source.value and row.n == source.n
        assert row.detectable_effect == source.detectable_effect
        assert row.detectable_at_family_level >= row.detectable_effect  # a stricter level needs a larger effect
    assert np.allclose(verdicts.adjusted_p, holm(list(verdicts.p_value)), rtol=1e-12, atol=0)
    assert (verdicts.outcome[verdicts.adjusted_p > 0.05] == 0).all()
    assert set(verdicts.verdict) <= {"better", "worse", "not distinguishable"}
    assert verdicts.attrs["method"] == "holm"


def markdown_rows(section: str) -> tuple[list[str], list[list[str]]]:
    lines = [line for line in section.splitlines() if line.startswith("|")]
    split = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    return split[0], split[2:]


def test_headline_is_the_reports_headline_table():
    from benchmark.report.metric_info import format_value

    run = benchmark.load(toy_run("base"), check_weights=False)
    header, rows = markdown_rows(run.report.split("## Headline", 1)[1].split("\n## ", 1)[0].split("\n\n")[1])
    headline = run.headline
    assert header[1:] == [c for c in dict.fromkeys(headline.columns.get_level_values(0)) if c != "reference"]
    assert [row[0].strip("`*") for row in rows] == list(headline.index)
    assert [row[0].startswith("*") for row in rows] == list(headline["reference"])
    for row in rows:
        name = row[0].strip("`*")
        for column, cell in zip(header[1:], row[1:]):
            entry = headline.loc[name, column]
            text = "–" if math.isnan(entry["value"]) else format_value(entry["value"], entry["ci_low"],
                                                                       entry["ci_high"])
            assert cell.strip("*") == text and cell.startswith("**") == bool(entry["beats_floor"])


def site_ranks(site: Path) -> dict[tuple[str, str], tuple[int | None, dict[str, int]]]:
    """(run, estimator) -> (quality rank, {metric label: rank}) of every ranked row of the site's index.html."""
    import html

    page = (site / "index.html").read_text()
    found = {}
    for board in re.findall(r"<table id=\"board-[^\"]+\"[^>]*>(.*?)</table>", page, re.S):
        header = [html.unescape(h) for h in re.findall(r"<th>(.*?)</th>", board)]
        for row in re.findall(r"<tr>(.*?)</tr>", board.split("<tbody>", 1)[1]):
            cells = [html.unescape(re.sub(r"<[^>]+>", "", c)) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]
            record = dict(zip(header, cells))
            ranks = {label: int(m.group(1)) for label, text in record.items()
                     if label not in ("quality rank", "mean rank", "run", "estimator") and (m := re.search(r"#(\d+)$", text))}
            quality = None if record["quality rank"] == "–" else int(record["quality rank"])
            found[(record["run"], record["estimator"])] = (quality, ranks)
    return found


def test_compare_gives_the_sites_ranks(tmp_path):
    runs = [toy_run("base"), toy_run("seed1"), toy_run("other_track")]
    done = cli("leaderboard", *map(str, runs), "--out", str(tmp_path / "site"), "--skip-weights",
               env={"UQBENCH_EXTRA_PRESETS": TOY_PRESET})
    assert done.returncode == 0, done.stderr
    site = site_ranks(tmp_path / "site")
    board = benchmark.compare([benchmark.load(runs[0], check_weights=False), *runs[1:]], check_weights=False)
    ranked = board[~board["reference"]]
    assert set(ranked.index) == set(site) and len(set(board["track_id"])) == 2
    for key, (quality, ranks) in site.items():
        row = ranked.loc[key]
        assert row["quality_rank"].item() == quality
        mine = {label: int(row[(label, "rank")]) for label in dict.fromkeys(board.columns.get_level_values(0))
                if (label, "rank") in board.columns and not pd.isna(row[(label, "rank")])}
        assert mine == ranks
    references = board[board["reference"]]
    assert set(references.index.get_level_values("estimator")) == {"random"}
    assert references["quality_rank"].isna().all()
    markdown = (tmp_path / "site" / "leaderboard.md").read_text()
    assert len(re.findall(r"\|\s*reference\s*\|", markdown)) == len(references)


def test_a_replicate_folder_loads_as_its_seed_runs_and_pooled_tables(tmp_path):
    from tests.report_runs import use_toy_preset

    use_toy_preset()
    config = {**BASE, "run": {**BASE["run"], "name": "toy-seeds"}}
    replicates = benchmark.run(config, out=tmp_path / "seeds", progress=False, seeds=[3, 4])
    assert isinstance(replicates, benchmark.Replicates) and replicates.seeds == [3, 4]
    assert [r.path for r in replicates.runs] == [tmp_path / "seeds" / "seed_3", tmp_path / "seeds" / "seed_4"]
    for run in replicates.runs:
        raw = pd.read_csv(run.path / "metrics.csv")
        assert np.array_equal(run.metrics.value.to_numpy(), raw.value.to_numpy(), equal_nan=True)
    spread = pd.read_csv(tmp_path / "seeds" / "seeds.csv")
    assert np.array_equal(replicates.spread["mean"].to_numpy(), spread["mean"].to_numpy(), equal_nan=True)
    assert len(replicates.verdicts) == len(pd.read_csv(tmp_path / "seeds" / "pooled_verdicts.csv"))
    assert isinstance(benchmark.load(tmp_path / "seeds", check_weights=False), benchmark.Replicates)
    board = benchmark.compare([replicates], check_weights=False)
    assert set(board.index.get_level_values("run")) == {"seed_3", "seed_4"}


def test_import_benchmark_is_cheap_and_loads_the_api_on_first_use():
    code = ("import sys, time\nt = time.perf_counter()\nimport benchmark\nt = time.perf_counter() - t\n"
            "heavy = [m for m in ('torch', 'pandas', 'numpy', 'benchmark.api') if m in sys.modules]\n"
            "names = sorted(benchmark.__all__)\nload = benchmark.load\n"
            "import json; print(json.dumps({'seconds': t, 'heavy': heavy, 'names': names, "
            "'load': load.__module__, 'after': 'pandas' in sys.modules}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["heavy"] == []
    assert found["names"] == ["Replicates", "Run", "compare", "load", "run"]
    assert found["load"] == "benchmark.api.results" and found["after"]
    assert found["seconds"] < 0.5, found  # measured: 1 to 6 ms on a shared 2-core machine
    assert all(callable(getattr(benchmark, name)) for name in benchmark.__all__)
    with pytest.raises(AttributeError):
        benchmark.no_such_name  # noqa: B018
