"""What a run records about itself (issue 36): metrics.csv holds measured values only (what did not run is in the
manifest's `not_run` and the report), a `[model]` run without run.features defaults to the domain classifier
beside its data (and says so), the sparsification protocol uses a null class for unlabelled test images (and says
so), and the warnings of the model's own code go to the run's warnings.log, never to stderr."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from benchmark.cli import main
from benchmark.config import parse_config
from benchmark.errors import ConfigError
from tests.bad_input_presets import VARIANTS
from tests.test_bad_inputs import BASE, to_toml
from tests.test_bad_inputs_factory import BASE as FACTORY_BASE
from tests.test_bad_inputs_factory import prepare_folder

ROOT = Path(__file__).resolve().parents[1]


def test_metrics_csv_holds_measured_values_and_the_manifest_what_did_not_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("UQBENCH_EXTRA_PRESETS", VARIANTS)
    config = {"run": {**BASE["run"], "num_samples": 24, "keep": 20, "batch_size": 24},
              "estimators": BASE["estimators"], "protocols": {"filtered_fid": {"curve_fractions": [0.5, 1.0]}}}
    (tmp_path / "run.toml").write_text(to_toml(config))
    out = tmp_path / "out"
    assert main(["run", "--config", str(tmp_path / "run.toml"), "--out", str(out), "--quiet"]) == 0, \
        capsys.readouterr().err
    metrics = pd.read_csv(out / "metrics.csv")
    assert "(not run)" not in set(metrics.estimator) and metrics.value.notna().all()  # every row measured
    manifest = json.loads((out / "manifest.json").read_text())
    # FID∞ needs >= 10 rows per classifier feature dimension in its smallest fit (0.5 K = 10 rows here): not run
    assert [(r["protocol"], r["space"], r["reason"]) for r in manifest["not_run"]] == [
        ("filtered_fid", "classifier", "fid_infinity_unsound")]
    assert "filtered_fid`'s FID∞ rows in the `classifier` space did not run" in (out / "report.md").read_text()
    assert main(["validate", str(out), "--skip-weights"]) == 0


def _data_folder(tmp_path: Path, classifier: bool) -> dict:
    (tmp_path / "imgs").mkdir()
    if classifier:
        (tmp_path / "imgs" / "domain_classifier.pt").write_bytes(b"(a trained classifier)")
    return {"model": {"factory": "net.py:make"}, "data": {"path": "imgs"}}


@pytest.mark.parametrize("beside", [True, False])
def test_a_model_run_without_features_uses_the_classifier_beside_its_data(tmp_path, beside):
    (tmp_path / "net.py").write_text("def make():\n    pass\n")
    config = parse_config(_data_folder(tmp_path, beside), source=str(tmp_path / "run.toml"))
    assert config.features == (("classifier",) if beside else ("inception",))
    expected = str(tmp_path / "imgs" / "domain_classifier.pt") if beside else "train --what classifier --data"
    assert expected in config.features_chosen
    explicit = parse_config({"model": {"factory": "net.py:make"}, "data": {"path": "imgs"},
                             "run": {"features": ["inception"]}}, source=str(tmp_path / "run.toml"))
    assert explicit.features == ("inception",) and explicit.features_chosen == ""  # given: no default, no note


def test_the_manifest_says_why_the_features_are_what_they_are(tmp_path):
    from benchmark.report.manifest import write_manifest

    (tmp_path / "net.py").write_text("def make():\n    pass\n")
    config = parse_config(_data_folder(tmp_path, True), source=str(tmp_path / "run.toml"))
    write_manifest(tmp_path, config, {}, notes=["a note"])
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["features"]["default"] == config.features_chosen and manifest["notes"] == ["a note"]


def _model(null: int | None, guided: bool = False) -> SimpleNamespace:
    return SimpleNamespace(num_classes=3, null_condition=null, cycled_conditions=False, guided=guided,
                           guidance_scale=3.0 if guided else 1.0)


UNLABELLED = SimpleNamespace(images=torch.zeros(2, 1, 8, 8), labels=None, num_classes=None, name="flat",
                             unlabelled_because=None)


def test_sparsification_uses_the_null_class_of_a_conditional_model_on_unlabelled_data():
    from benchmark.runner.setup import check_sparsification_labels, null_class_note

    check_sparsification_labels(_model(3), UNLABELLED)  # no refusal: the null class serves
    assert null_class_note(_model(3), UNLABELLED).startswith("sparsification: the test images have no labels")
    assert "null class (3)" in null_class_note(_model(3), UNLABELLED)
    labelled = SimpleNamespace(**{**vars(UNLABELLED), "labels": torch.zeros(2, dtype=torch.long), "num_classes": 3})
    assert null_class_note(_model(3), labelled) is None  # labels are used when there are any
    with pytest.raises(ConfigError, match="data = 'flat \\(test\\) without class labels'"):  # no null class
        check_sparsification_labels(_model(None), UNLABELLED)
    check_sparsification_labels(_model(3, guided=True), UNLABELLED)  # guided too: both branches get the null class


NOISY_NET = ("import warnings\nwarnings.warn('third-party meshgrid notice', UserWarning)\n"
             "from torch import nn\nimport torch\n\n\nclass Net(nn.Module):\n"
             "    def __init__(self):\n        super().__init__()\n        self.conv_out = nn.Conv2d(1, 1, 3, padding=1)\n\n"
             "    def forward(self, x, t):\n        warnings.warn('called forward', UserWarning)\n"
             "        return self.conv_out(x)\n\n\ndef make():\n    torch.manual_seed(0)\n    return Net()\n")


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env.pop("UQBENCH_EXTRA_PRESETS", None)
    return subprocess.run([sys.executable, "-m", "benchmark", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_warnings_of_the_models_code_go_to_the_runs_log_not_stderr(tmp_path):
    model = {k: v for k, v in FACTORY_BASE["model"].items() if k != "weights"}
    good = prepare_folder(tmp_path, {**FACTORY_BASE, "model": model}, [lambda f: (f / "net.py").write_text(NOISY_NET)])
    bad = tmp_path / "bad.toml"
    bad.write_text(to_toml({**FACTORY_BASE, "model": model, "protocols": {"sparsification": {"num_images": 99}}}))

    refused = _cli("run", "--config", str(bad), "--out", str(tmp_path / "refused"), cwd=tmp_path)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr  # the one line, no warning
    assert refused.stderr.startswith("error: protocols.sparsification.num_images")
    assert not (tmp_path / "refused").exists()

    done = _cli("run", "--config", str(good), "--out", str(tmp_path / "out"), "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr, done.stderr
    log = (tmp_path / "out" / "warnings.log").read_text()
    assert "third-party meshgrid notice" in log and "called forward" in log
    assert _cli("validate", str(tmp_path / "out"), cwd=tmp_path).returncode == 0  # the log is no result file

    shown = _cli("run", "--config", str(bad), "--out", str(tmp_path / "refused"), "--debug", cwd=tmp_path)
    assert "third-party meshgrid notice" in shown.stderr  # --debug shows them as Python does


def test_the_posterior_record_says_how_many_images_it_was_fitted_on(tmp_path, capsys):
    """The default fit_images (500) on data of 8 training images: the posterior is fitted on the 8 that exist, and
    posterior.json and the report say 8, not 500."""
    config = prepare_folder(tmp_path, {**FACTORY_BASE, "estimators": {"bayesdiff": {"mc_samples": 3}}}, [])
    out = tmp_path / "out"
    assert main(["run", "--config", str(config), "--out", str(out), "--quiet"]) == 0, capsys.readouterr().err
    record = json.loads((out / "posterior.json").read_text())
    assert record["fit_images"] == 8 and record["source"] == "fitted"
    assert "fitted in this run on 8 training images" in (out / "report.md").read_text()


def test_the_sparsification_pass_conditions_unlabelled_images_on_the_null_class(tmp_path, monkeypatch):
    """What denoise_batch hands the sampler for unlabelled test images of a model with a null class: that class for
    every image (guided or not), and the images' own labels when they have some."""
    from types import SimpleNamespace

    import torch

    from benchmark.protocols import sparsification

    seen = []

    def spy(model, x_t, **kwargs):
        seen.append(kwargs["y"])
        return SimpleNamespace(x0=x_t, uncertainty={})

    monkeypatch.setattr(sparsification, "sample", spy)
    model = SimpleNamespace(num_classes=3, null_condition=3, device="cpu", sample_shape=(1, 4, 4), guided=True,
                            alphas_cumprod=torch.linspace(0.99, 0.01, 100), num_train_timesteps=100)
    for labels, expected in ((None, [3, 3]), (torch.tensor([0, 2]), [0, 2])):
        data = SimpleNamespace(images=torch.zeros(2, 1, 4, 4), labels=labels)
        preset = SimpleNamespace(load_data=lambda split, n, data=data: data)
        cfg = SimpleNamespace(sampler="ddim", steps=10, seed=0, batch_size=2)
        folder = tmp_path / str(labels is None)
        folder.mkdir()
        sparsification.denoise_batch(folder, cfg, model, preset, lambda: [],
                                     {"num_images": 2, "noise_fraction": 0.5}, 0, 2)
        assert seen[-1].tolist() == expected
