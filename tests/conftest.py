"""Shared fixtures: a tiny Gaussian mixture oracle, a tiny diffusers UNet adapter, one CPU thread."""
from __future__ import annotations

import os

import pytest
import torch

from benchmark.models import DiffusersUNet, GaussianMixtureModel
from tests.helpers import tiny_gmm_means, tiny_unet


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """The whole suite runs torch on one intra-op thread: the test networks are tiny, and on a 2-core machine
    that is shared (CI, or helpers working beside it) two spinning threads made them 30x slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def restore_extra_presets_env():
    """A test that makes the toy preset visible through $UQBENCH_EXTRA_PRESETS (tests/report_runs.py) leaves the
    variable as it found it: later tests run the CLI in fresh processes from other folders, where the
    `tests` package cannot be imported."""
    key = "UQBENCH_EXTRA_PRESETS"
    saved = os.environ.get(key)
    yield
    if saved is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = saved


@pytest.fixture
def single_thread():
    """Run torch on one thread: on a small shared CPU, tiny networks are several times faster that way."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def gmm() -> GaussianMixtureModel:
    """Three-component mixture on 1x4x4 images, std 0.2, unequal weights, DDPM linear schedule (T = 1000)."""
    return GaussianMixtureModel(tiny_gmm_means(3, (1, 4, 4)), std=0.2, weights=[0.5, 0.3, 0.2])


@pytest.fixture
def unet_model() -> DiffusersUNet:
    """The tiny 1x8x8 UNet (dropout 0.1) wrapped as a DiffusionModel on the DDPM linear schedule."""
    return DiffusersUNet(tiny_unet())


@pytest.fixture
def clean_registry():
    """Estimators registered by a test's plug-ins are removed afterwards (the registry is process-wide)."""
    from estimators import registry

    saved, origins = dict(registry._REGISTRY), dict(registry._ORIGIN)
    yield
    registry._REGISTRY.clear(), registry._REGISTRY.update(saved)
    registry._ORIGIN.clear(), registry._ORIGIN.update(origins)
