"""GPU readiness on a CPU machine (issue 35, item 4): the device-dependent code paths run here through the same
`run.device` / `run.autocast` arguments a GPU run takes, so that a GPU run cannot fail first on a device mismatch.

Technique. On a CPU run, a tensor created without `device=` lands on the CPU, which is the run's device: a forgotten
device is invisible. `tests.device_audit.ImplicitDeviceRecorder` (a TorchFunctionMode) records every tensor factory
call (torch.zeros, randn, arange, tensor, as_tensor of non-tensors, ... : torch's own list of device constructors)
made without a device from a file of the run path (sampling, models, estimators, generation, features, the protocols
that sample), with its file:line. A tiny run of the digits preset with every estimator of configs/smoke.toml and the
protocols that sample (sparsification, guidance, augmentation, rectification) must record none. CPU-side bookkeeping
(sample indices, the per-sample noise draws, records written to shards) names `device="cpu"`.

(`torch.set_default_device("meta")` around the run, the other way to see such calls, also catches them, since torch
2.13 refuses meta + cpu operands, but it flags `torch.as_tensor(t)` of a CPU tensor and every legitimate CPU-side
tensor, and says only that some operation failed, not where the tensor was made.)

Noise: every draw is made on the CPU by a CPU generator and then moved (benchmark.seeding.per_sample_randn), so a
run's noise is the same bits on any device.

Autocast: `run.autocast = "bf16"` wraps the network's forward calls only; their outputs are cast back to float32
before any sampler or uncertainty maths (benchmark.models.precision). The tiny run above runs under bf16, and on the
digits network bf16 maps stay within the tolerances below of float32.
"""
from __future__ import annotations

import json
import tomllib

import pytest
import torch

from benchmark.config import parse_config
from benchmark.errors import ConfigError
from tests.device_audit import ROOT, ImplicitDeviceRecorder

#: bf16 vs fp32 on the digits network (8 samples, 20 DDIM steps): per estimator, the relative L2 distance of the
#: maps and their Pearson correlation (measured: rel L2 0.015-0.19, correlation >= 0.98; x0 differs by <= 0.05)
BF16_MAP_REL_L2, BF16_MAP_CORRELATION, BF16_X0_ABS = 0.3, 0.95, 0.1


def tiny_smoke_config() -> dict:
    """configs/smoke.toml at a tiny size (10 steps, N = 20), with the sampling protocols it leaves out, under bf16."""
    data = tomllib.loads((ROOT / "configs" / "smoke.toml").read_text())
    data["run"].update(steps=10, num_samples=20, keep=16, batch_size=10, bootstrap=10, autocast="bf16")
    for params in data["estimators"].values():
        if "window" in params:
            params["window"] = [40, 50]
        if "fit_images" in params:
            params["fit_images"] = 16
    data["estimators"]["generative_uncertainty"] = {"m": 2}
    data["protocols"]["guidance"].update(num_samples=4, window=[40, 50])
    data["protocols"]["sparsification"].update(num_images=4, noise_draws=1)
    data["protocols"]["augmentation"] = {"num_samples": 4, "variants": 2}
    data["protocols"]["rectification"] = {"tries": 1}
    return data


@pytest.fixture(scope="module")
def audited_run(tmp_path_factory):
    from benchmark.runner.run import run_benchmark

    out = tmp_path_factory.mktemp("device") / "run"
    recorder = ImplicitDeviceRecorder()
    with recorder:
        run_benchmark(parse_config(tiny_smoke_config()), out, progress=False)
    return out, recorder


def test_the_run_path_names_the_device_of_every_tensor_it_creates(audited_run):
    out, recorder = audited_run
    assert (out / "metrics.csv").is_file()
    assert not recorder.found, "tensors created without device= (on a GPU run they land on the CPU):\n" + \
        recorder.report()


def test_the_run_records_its_autocast(audited_run):
    out, _ = audited_run
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["run"]["autocast"] == "bf16"
    assert manifest["track"]["run"]["autocast"] == "bf16"  # other numbers: another leaderboard track
    assert "autocast" not in parse_config({"run": {"preset": "digits"}}).to_dict()["run"]  # "off": as before


def test_the_recorder_sees_a_factory_call_without_a_device():
    recorder = ImplicitDeviceRecorder(run_path=("tests/",))
    cpu = torch.ones(2, device="cpu")
    with recorder:
        torch.zeros(3)
        torch.zeros(3, device="cpu")
        torch.as_tensor(cpu)  # keeps its tensor's device
        torch.zeros_like(cpu)
    assert [c.function for c in recorder.found] == ["zeros"]
    assert next(iter(recorder.found)).location.startswith("tests/test_device_placement.py:")


def digits_maps(mode: str):
    from benchmark.presets.loading import load_preset
    from benchmark.sampling import condition_labels, initial_noise, sample
    from estimators import create

    model = load_preset("digits").load_model()
    model.autocast = mode
    idx = torch.arange(8, device="cpu")
    made = [create("sensitivity", m=5, window=(40, 50)), create("mc_dropout", m=5, window=(40, 50)),
            create("x0_trajectory", last_steps=3), create("tweedie_posterior_variance", probes=4, window=(40, 50)),
            create("zigzag", m=2, num_zigzag=1, window=(40, 50)), create("flip", window=(40, 50))]
    return sample(model, initial_noise(0, idx, model.sample_shape), steps=20, seed=0, indices=idx, estimators=made,
                  y=condition_labels(model, 0, idx))


def test_bf16_maps_are_within_the_stated_tolerance_of_float32():
    full, half = digits_maps("off"), digits_maps("bf16")
    assert half.x0.dtype == torch.float32 and (full.x0 - half.x0).abs().max() <= BF16_X0_ABS
    for name, result in full.uncertainty.items():
        a, b = result.pixel, half.uncertainty[name].pixel
        assert b.dtype == torch.float32 and half.uncertainty[name].score.dtype == torch.float32, name
        assert (a - b).norm() / a.norm() <= BF16_MAP_REL_L2, name
        assert torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1] >= BF16_MAP_CORRELATION, name


def test_autocast_casts_the_networks_outputs_back_to_float32(unet_model):
    x, t = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0), device="cpu"), 500
    plain = unet_model.eps(x, t)
    unet_model.autocast = "bf16"
    half = unet_model.eps(x, t)
    unet_model.autocast = "off"
    assert half.dtype == torch.float32 and not torch.equal(half, plain)  # the forward ran in bf16
    assert torch.equal(unet_model.eps(x, t), plain)  # "off" is the plain call, bit for bit


@pytest.mark.parametrize(("mode", "allowed"), [("fp16", "'off' or 'bf16' on device cpu"), ("bf17", "one of off, bf16")])
def test_an_autocast_the_device_lacks_is_refused_with_the_fix(mode, allowed, unet_model):
    with pytest.raises(ConfigError) as err:
        parse_config({"run": {"preset": "digits", "autocast": mode}})
    message = str(err.value)
    assert "run.autocast" in message and mode in message and allowed in message and "Fix:" in message
    assert parse_config({"run": {"preset": "digits", "device": "cuda", "autocast": "fp16"}}).autocast == "fp16"
    from benchmark.models.run_settings import apply_run_settings

    with pytest.raises(ConfigError, match="run.autocast"):  # the Python API's path: the model's own device
        apply_run_settings(unet_model, autocast=mode)


def test_the_command_line_exits_2_on_fp16_on_the_cpu(tmp_path):
    import subprocess
    import sys

    config = tmp_path / "fp16.toml"
    config.write_text('[run]\npreset = "digits"\nautocast = "fp16"\n')
    done = subprocess.run([sys.executable, "-m", "benchmark", "run", "--config", str(config), "--out",
                           str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "run.autocast = 'fp16'" in lines[0] and 'set run.autocast = "bf16"' in lines[0]
    assert not (tmp_path / "out").exists()

