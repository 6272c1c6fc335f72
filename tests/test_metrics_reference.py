"""Parity with reference libraries: torchmetrics' FrechetInceptionDistance and torch-fidelity 0.4's PRC.

torchmetrics is a runtime dependency and imports plainly (torch-fidelity is not on the runtime import
path). torch-fidelity lives in the parity-only folder (tests/reference_libs.py) and its `__init__.py`
imports torchvision, which cannot be installed here: the loader below imports only the module we need,
`metric_prc`, with the `torch_fidelity` package object created without running its `__init__.py`, and
its `torch_fidelity.utils` import (used only by the image-loading `calculate_prc`, never by
`prc_features_to_metric`) bound to a placeholder that raises if called. The library code under comparison
runs unmodified. sys.modules and sys.path are restored afterwards. `bench/metrics_bench.py` uses the same loader.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import subprocess
import sys
import types

import numpy as np
import pytest
import torch

from metrics import fid_from_features, precision_recall
from tests import reference_libs


@contextlib.contextmanager
def _torch_fidelity_without_init(placeholder_utils: bool):
    """Temporarily register `torch_fidelity` as a bare package (its __init__ not run)."""
    saved = {name: module for name, module in sys.modules.items() if name.split(".")[0] == "torch_fidelity"}
    spec = importlib.util.find_spec("torch_fidelity")
    if spec is None:
        raise ImportError("torch-fidelity is not installed")
    for name in saved:
        del sys.modules[name]
    sys.modules["torch_fidelity"] = importlib.util.module_from_spec(spec)
    if placeholder_utils:
        utils = types.ModuleType("torch_fidelity.utils")

        def unavailable(*args, **kwargs):
            raise RuntimeError("torch_fidelity.utils needs torchvision, which is not installed here")

        for name in ("create_feature_extractor", "extract_featuresdict_from_input_id_cached",
                     "resolve_feature_extractor", "resolve_feature_layer_for_metric"):
            setattr(utils, name, unavailable)
        sys.modules["torch_fidelity.utils"] = utils
    try:
        yield
    finally:
        for name in [name for name in sys.modules if name.split(".")[0] == "torch_fidelity"]:
            del sys.modules[name]
        sys.modules.update(saved)


def load_prc_features_to_metric():
    """torch-fidelity 0.4's `metric_prc.prc_features_to_metric` -> (function, how it was imported)."""
    with reference_libs.on_path():
        with _torch_fidelity_without_init(placeholder_utils=True):
            module = importlib.import_module("torch_fidelity.metric_prc")
    return module.prc_features_to_metric, "from the parity-only folder, without torch_fidelity/__init__.py"


def load_torchmetrics_fid():
    """torchmetrics' FrechetInceptionDistance class (a runtime dependency: a plain import must work)."""
    return importlib.import_module("torchmetrics.image.fid").FrechetInceptionDistance


def _skip_unless(loader):
    try:
        return loader()
    except Exception as error:  # noqa: BLE001 - any import failure means the reference is unavailable
        pytest.skip(f"reference library not importable here: {type(error).__name__}: {error}")


class _Identity(torch.nn.Module):
    """The custom `feature` module torchmetrics is given: the 'images' are already feature vectors."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.num_features = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _torchmetrics_fid(real: np.ndarray, fake: np.ndarray) -> float:
    metric_class = _skip_unless(load_torchmetrics_fid)
    metric = metric_class(feature=_Identity(real.shape[1]))
    metric.update(torch.from_numpy(real), real=True)
    metric.update(torch.from_numpy(fake), real=False)
    return float(metric.compute())


@pytest.mark.parametrize("rows, dim", [(400, 32), (40, 64)], ids=["full-rank", "rank-deficient"])
def test_fid_matches_torchmetrics(rows, dim):
    rng = np.random.default_rng(1)
    mixing = rng.normal(size=(dim, dim)) / np.sqrt(dim)
    real = rng.normal(size=(rows, dim)) @ mixing
    fake = rng.normal(size=(rows + 7, dim)) @ (mixing + 0.1 * np.eye(dim)) + 0.3
    reference = _torchmetrics_fid(real, fake)
    assert fid_from_features(real, fake) == pytest.approx(reference, rel=1e-6)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_precision_recall_matches_torch_fidelity(seed):
    prc_features_to_metric, _ = _skip_unless(load_prc_features_to_metric)
    rng = np.random.default_rng(seed)
    real = torch.from_numpy(rng.normal(size=(300, 24)).astype(np.float32))
    fake = torch.from_numpy((rng.normal(size=(250, 24)) * 1.2 + 0.4).astype(np.float32))
    # torch-fidelity's convention: generated first, then real
    reference = prc_features_to_metric(fake, real, prc_neighborhood=3, prc_batch_size=64, save_cpu_ram=False,
                                       verbose=False)
    ours = precision_recall(real, fake, k=3, chunk_size=70)
    assert 0.0 < ours.precision < 1.0 and 0.0 < ours.recall < 1.0  # a case where the two can disagree
    # torch-fidelity averages in float32: compare the number of points inside the other manifold
    assert round(ours.precision * len(fake)) == round(reference["precision"] * len(fake))
    assert round(ours.recall * len(real)) == round(reference["recall"] * len(real))
    assert ours.f1 == pytest.approx(reference["f_score"], rel=1e-6)


def test_reference_loader_restores_sys_modules_and_path():
    before = {name for name in sys.modules if name.split(".")[0] == "torch_fidelity"}
    path = list(sys.path)
    _skip_unless(load_prc_features_to_metric)
    assert {name for name in sys.modules if name.split(".")[0] == "torch_fidelity"} == before
    assert sys.path == path


def test_torchmetrics_imports_in_the_runtime_environment():
    """A fresh interpreter without the parity folder: `import torchmetrics` (and its FID) must work."""
    code = ("import torchmetrics, torchmetrics.image.fid, importlib.util; "
            "print(importlib.util.find_spec('torch_fidelity'))")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "None"  # torch-fidelity is not on the runtime import path
