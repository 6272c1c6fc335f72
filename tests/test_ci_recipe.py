"""The CI recipe for method repositories (examples/ci): the workflow's `python -m benchmark` commands, run on a copy
of the example method repository (an estimator plug-in, a config, a baseline written as its README says), pass."""
from __future__ import annotations

import json
import shlex
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml

from benchmark.cli import main
from tests.report_runs import use_toy_preset

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "ci"


def workflow_commands() -> list[list[str]]:
    """The argument lists of the workflow's `python -m benchmark ...` steps, in order."""
    workflow = yaml.safe_load((EXAMPLE / "uqbench.yml").read_text())
    steps = [s for job in workflow["jobs"].values() for s in job["steps"]]
    runs = [s["run"].strip() for s in steps if str(s.get("run", "")).startswith("python -m benchmark")]
    return [shlex.split(run)[3:] for run in runs]


def test_the_workflow_installs_runs_regresses_and_uploads(clean_registry):
    from benchmark.config import load_config

    config = load_config(EXAMPLE / "method" / "ci.toml")  # the example config as shipped (digits) is valid
    assert config.preset == "digits" and "my_estimator" in [e.name for e in config.estimators]
    workflow = yaml.safe_load((EXAMPLE / "uqbench.yml").read_text())
    steps = [s for job in workflow["jobs"].values() for s in job["steps"]]
    assert any("pip install" in str(s.get("run", "")) and "diffusion-uq-bench" in s["run"] for s in steps)
    assert [c[0] for c in workflow_commands()] == ["run", "regress"]
    upload = next(s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    assert "report/" in upload["with"]["path"] and upload["if"] == "always()"


def test_the_workflow_commands_pass_on_an_example_method_repository(tmp_path, monkeypatch, capsys, clean_registry):
    use_toy_preset()
    repo = tmp_path / "method-repo"
    shutil.copytree(EXAMPLE / "method", repo / "uqbench")
    config = repo / "uqbench" / "ci.toml"  # the toy preset stands in for digits, at test size
    config.write_text(config.read_text().replace('preset = "digits"', 'preset = "toy"')
                      .replace("steps = 20", "steps = 10").replace("num_samples = 60", "num_samples = 24")
                      .replace("keep = 50", "keep = 20").replace("batch_size = 60", "batch_size = 24")
                      .replace("window = [45, 49]", "window = [40, 49]").replace("num_images = 8", "num_images = 4"))
    monkeypatch.chdir(repo)
    # the baseline, written once as examples/ci/README.md says
    assert main(["run", "--config", "uqbench/ci.toml", "--out", "first", "--quiet"]) == 0
    assert main(["regress", "--baseline", "uqbench/baseline.csv", "--run", "first", "--write-baseline"]) == 0
    for argv in workflow_commands():
        assert main(argv) == 0, (argv, capsys.readouterr())
    report = json.loads((repo / "report" / "regress.json").read_text())
    names = {m["estimator"] for m in report["metrics"]}
    assert report["mode"] == "errors" and report["flagged"] == 0 and "my_estimator" in names
    assert ET.parse(repo / "report" / "regress.xml").getroot().get("failures") == "0"
    assert (repo / "report" / "regress.md").read_text().startswith("### uqbench regress (errors mode)")
    assert (repo / "ci-run" / "report.md").is_file()
