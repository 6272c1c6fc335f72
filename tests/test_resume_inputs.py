"""A resume refuses changed inputs besides the config (plug-in files, data, the suite's source), naming what
changed, and `validate` reports a plug-in or data file changed after a finished run (issue 27)."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from benchmark.errors import ConfigError
from benchmark.execution.inputs_digest import input_changes, source_sha256, tree_sha256
from benchmark.execution.run_dir import FINGERPRINT, check_fingerprint, fingerprint


def _setup(tmp_path):
    plugin = tmp_path / "my_plugin.py"
    plugin.write_text("SCALE = 1.0\n")
    data = tmp_path / "images"
    data.mkdir()
    np.save(data / "a.npy", np.zeros(3))
    config = SimpleNamespace(plugins=("my_plugin.py",), source=str(tmp_path / "config.toml"),
                             data=SimpleNamespace(path=str(data), reference_stats=None))
    out = tmp_path / "run"
    out.mkdir()
    model = torch.nn.Linear(2, 2)
    (out / FINGERPRINT).write_text(json.dumps(fingerprint(model, None, config)))
    return plugin, data, config, out, model


def test_a_resume_refuses_an_edited_plugin_file_and_names_it(tmp_path):
    plugin, _, config, out, model = _setup(tmp_path)
    check_fingerprint(out, fingerprint(model, None, config))  # nothing changed: resumes
    plugin.write_text("SCALE = 2.0\n")
    with pytest.raises(ConfigError) as err:
        check_fingerprint(out, fingerprint(model, None, config))
    text = str(err.value)
    assert "a plug-in file my_plugin.py" in text and "--overwrite" in text and "--out" in text


def test_a_resume_refuses_changed_data_files(tmp_path):
    _, data, config, out, model = _setup(tmp_path)
    np.save(data / "b.npy", np.ones(3))  # one more image in the folder
    with pytest.raises(ConfigError, match="the data.s images images"):
        check_fingerprint(out, fingerprint(model, None, config))


def test_validate_reports_inputs_changed_after_the_run(tmp_path):
    plugin, data, _, out, _ = _setup(tmp_path)
    saved = json.loads((out / FINGERPRINT).read_text())
    assert input_changes(saved) == []
    plugin.write_text("SCALE = 3.0\n")
    (data / "a.npy").unlink()
    changes = input_changes(saved)
    assert len(changes) == 2 and "plug-in my_plugin.py" in changes[0] and "the data" in changes[1]


def test_tree_digest_sees_renames_and_content_and_the_source_digest_is_stable(tmp_path):
    (tmp_path / "x.txt").write_text("1")
    first = tree_sha256(tmp_path)
    (tmp_path / "x.txt").rename(tmp_path / "y.txt")
    assert tree_sha256(tmp_path) != first
    assert source_sha256() == source_sha256() and len(source_sha256()) == 64


def test_a_factory_models_source_file_is_part_of_the_fingerprint(tmp_path):
    glue = tmp_path / "glue.py"
    glue.write_text("def make(): pass\n")
    model_spec = SimpleNamespace(source_files=lambda: {"factory": str(glue)})
    config = SimpleNamespace(plugins=(), source="", data=None, model=model_spec)
    out = tmp_path / "run"
    out.mkdir()
    model = torch.nn.Linear(2, 2)
    (out / FINGERPRINT).write_text(json.dumps(fingerprint(model, None, config)))
    glue.write_text("def make(): return 1\n")
    with pytest.raises(ConfigError, match="the model factory's file factory"):
        check_fingerprint(out, fingerprint(model, None, config))
    assert "the model factory's file factory" in input_changes(json.loads((out / FINGERPRINT).read_text()))[0]


def test_a_deleted_plugin_is_said_to_be_gone_not_changed(tmp_path):
    """Issue 36: a deleted plug-in file read "changed after the run"; it no longer exists."""
    plugin, _, _, out, _ = _setup(tmp_path)
    plugin.unlink()
    [change] = input_changes(json.loads((out / FINGERPRINT).read_text()))
    assert change.endswith("no longer exists") and "my_plugin.py" in change and "changed" not in change


def test_a_retrained_domain_classifier_is_named_not_the_data_files(tmp_path):
    """Issue 36: a classifier retrained beside the data stopped a resume with a message blaming "the data files"."""
    data = tmp_path / "images"
    data.mkdir()
    np.save(data / "a.npy", np.zeros(3))
    classifier = data / "domain_classifier.pt"
    classifier.write_bytes(b"first")
    config = SimpleNamespace(plugins=(), source="", data=SimpleNamespace(
        path=str(data), reference_stats=None, classifier_file=lambda: classifier))
    out = tmp_path / "run"
    out.mkdir()
    model = torch.nn.Linear(2, 2)
    (out / FINGERPRINT).write_text(json.dumps(fingerprint(model, None, config)))
    classifier.write_bytes(b"retrained")
    with pytest.raises(ConfigError) as err:
        check_fingerprint(out, fingerprint(model, None, config))
    assert "the data's domain classifier domain_classifier.pt" in str(err.value)
    assert "the data files" not in str(err.value) and "images images" not in str(err.value)
    assert input_changes(json.loads((out / FINGERPRINT).read_text())) == [
        f"the data's domain classifier domain_classifier.pt ({classifier}) changed after the run"]
