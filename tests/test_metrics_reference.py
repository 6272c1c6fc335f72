"""Parity with reference libraries: torchmetrics' FrechetInceptionDistance and torch-fidelity 0.4's PRC.

Both libraries are installed here without torchvision (see the Makefile). `torch_fidelity/__init__.py`
imports torchvision, and torchmetrics imports `torch_fidelity` whenever it is installed, so plain
imports fail on this machine. The loaders below import only the torchvision-free modules we need:
the `torch_fidelity` package object is created without running its `__init__.py`, and, for
`metric_prc`, its `torch_fidelity.utils` import (used only by the image-loading `calculate_prc`, never
by `prc_features_to_metric`) is bound to a placeholder that raises if called. The library code under
comparison runs unmodified. sys.modules is restored afterwards. `bench/metrics_bench.py` uses the same loaders.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
import types

import numpy as np
import pytest
import torch

from metrics import fid_from_features, precision_recall


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
    try:
        return importlib.import_module("torch_fidelity.metric_prc").prc_features_to_metric, "plain import"
    except ImportError:
        pass
    with _torch_fidelity_without_init(placeholder_utils=True):
        module = importlib.import_module("torch_fidelity.metric_prc")
    return module.prc_features_to_metric, "without torch_fidelity/__init__.py (torchvision absent)"


def load_torchmetrics_fid():
    """torchmetrics' FrechetInceptionDistance class (importing torchmetrics past its torch_fidelity import)."""
    try:
        return importlib.import_module("torchmetrics.image.fid").FrechetInceptionDistance
    except ImportError:
        pass
    for name in [name for name in sys.modules if name.split(".")[0] == "torchmetrics"]:
        del sys.modules[name]  # a failed partial import
    with _torch_fidelity_without_init(placeholder_utils=False):
        module = importlib.import_module("torchmetrics.image.fid")
    return module.FrechetInceptionDistance


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


def test_reference_loader_restores_sys_modules():
    before = {name for name in sys.modules if name.split(".")[0] == "torch_fidelity"}
    _, how = _skip_unless(load_prc_features_to_metric)
    after = {name for name in sys.modules if name.split(".")[0] == "torch_fidelity"}
    if how != "plain import":
        assert after == before
