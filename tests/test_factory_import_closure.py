"""A `[model] factory`'s import closure is fingerprinted (issue 36): the glue file imports the network from a file
beside it, as the README's pattern does; editing that network file after a run makes a resume refuse (exit 2,
naming the file, nothing written) and `validate` call the finished run invalid. Nested imports, sys.path additions
made by the glue, and modules of the standard library / site-packages (never recorded) are covered too."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from benchmark.cli import main
from benchmark.models.factory import FactorySpec, build_network
from benchmark.models.import_closure import closure_files
from tests.test_bad_inputs import snapshot, to_toml
from tests.test_bad_inputs_factory import BASE, NET

GLUE = "import torch\nfrom mynet import make_net\n\n\ndef make():\n    torch.manual_seed(0)\n    return make_net()\n"


def _folder(tmp_path: Path) -> Path:
    """glue.py importing mynet.py (the network), weights, data and a config: a factory run as the README shows."""
    (tmp_path / "mynet.py").write_text(NET.replace("def make():", "def make_net():"))
    (tmp_path / "glue.py").write_text(GLUE)
    network = build_network(f"{tmp_path / 'glue.py'}:make")
    torch.save(network.state_dict(), tmp_path / "net.pth")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "data.npz", train=rng.integers(0, 256, (8, 1, 8, 8), dtype=np.uint8),
             test=rng.integers(0, 256, (4, 1, 8, 8), dtype=np.uint8))
    config = {**BASE, "model": {**BASE["model"], "factory": "glue.py:make"}}
    (tmp_path / "run.toml").write_text(to_toml(config))
    return tmp_path / "run.toml"


def test_the_closure_holds_the_imported_network_file_not_the_glue_nor_torch(tmp_path):
    _folder(tmp_path)
    factory = f"{tmp_path / 'glue.py'}:make"
    build_network(factory)
    assert closure_files(factory) == {"mynet.py": str((tmp_path / "mynet.py").resolve())}
    files = FactorySpec(factory=factory).source_files()
    assert files["import mynet.py"] == str((tmp_path / "mynet.py").resolve()) and files["factory"].endswith("glue.py")


def test_nested_imports_and_sys_path_additions_are_recorded_and_edits_are_reloaded(tmp_path):
    lib = tmp_path / "vendor"
    (lib / "pkg").mkdir(parents=True)
    (lib / "pkg" / "__init__.py").write_text("")
    (lib / "pkg" / "layers.py").write_text("WIDTH = 4\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "glue.py").write_text(
        f"import sys\nsys.path.append({str(lib)!r})\nfrom torch import nn\nimport pkg.layers\n\n\n"
        "def make():\n    return nn.Linear(pkg.layers.WIDTH, 1)\n")
    factory = f"{tmp_path / 'sub' / 'glue.py'}:make"
    assert build_network(factory).in_features == 4
    recorded = closure_files(factory)
    assert set(recorded.values()) == {str((lib / "pkg" / "__init__.py").resolve()), str((lib / "pkg" / "layers.py").resolve())}
    (lib / "pkg" / "layers.py").write_text("WIDTH = 7\n")  # the next load reads the edited file, not a cached module
    assert build_network(factory).in_features == 7


def test_an_edited_network_file_stops_a_resume_and_fails_validate(tmp_path, capsys):
    config = _folder(tmp_path)
    out = tmp_path / "out"
    assert main(["run", "--config", str(config), "--out", str(out), "--quiet"]) == 0, capsys.readouterr().err
    recorded = json.loads((out / "fingerprint.json").read_text())["model_files"]
    assert recorded["import mynet.py"] == str((tmp_path / "mynet.py").resolve())
    assert main(["validate", str(out), "--skip-weights"]) == 0
    capsys.readouterr()

    (tmp_path / "mynet.py").write_text((tmp_path / "mynet.py").read_text().replace("nn.SiLU()", "nn.Tanh()"))
    assert main(["validate", str(out), "--skip-weights"]) == 2
    assert "the model factory's file import mynet.py" in capsys.readouterr().err

    (out / "manifest.json").unlink()  # an unfinished run: the same command resumes it
    before = snapshot(tmp_path)
    assert main(["run", "--config", str(config), "--out", str(out), "--quiet"]) == 2
    line = capsys.readouterr().err.strip()
    assert "\n" not in line and "mynet.py" in line and "Fix:" in line and "--overwrite" in line, line
    assert snapshot(tmp_path) == before
