"""Device and precision resolution (with the hardware checks replaced by fakes), device plumbing on CPU,
CPU-loadable checkpoints, and the one-line note when a run or study resumes on other hardware."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from vaelab import hardware
from vaelab.api import make_config
from vaelab.errors import ConfigError
from vaelab.studies.study import study_hardware
from vaelab.training.trainer import fit, load_run
from tests.conftest import make_tiny_idx, run_cli


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def fake_cuda(monkeypatch):
    """Pretend one CUDA GPU is there; ``capability`` sets its compute capability."""
    state = {"capability": (8, 0)}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: state["capability"])
    return state


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_precision_on_cpu_follows_native_bf16(monkeypatch, no_cuda, native, expected):
    monkeypatch.setattr(hardware, "cpu_native_bf16", lambda: native)
    device, resolved = hardware.resolve("auto", "auto")
    assert device == torch.device("cpu")
    assert resolved.precision == expected and resolved.device == "cpu"


@pytest.mark.parametrize("asked", ["fp32", "bf16"])
def test_explicit_precision_is_kept(monkeypatch, no_cuda, asked):
    monkeypatch.setattr(hardware, "cpu_native_bf16", lambda: asked == "fp32")
    assert hardware.resolve("cpu", asked)[1].precision == asked


@pytest.mark.parametrize("capability, expected", [((8, 0), "bf16"), ((9, 0), "bf16"), ((7, 5), "fp32")])
def test_auto_picks_a_cuda_gpu_and_bf16_only_from_ampere_on(fake_cuda, capability, expected):
    fake_cuda["capability"] = capability
    device, resolved = hardware.resolve("auto", "auto")
    assert device == torch.device("cuda", 0)
    assert resolved.precision == expected


def test_emulated_bf16_is_not_native(monkeypatch):
    # ATEN_CPU_CAPABILITY=avx2 on an AVX-512 BF16 CPU: PyTorch's AVX2 kernels emulate bf16.
    monkeypatch.setattr(hardware, "cpu_capability", lambda: "AVX2")
    assert hardware.cpu_native_bf16() is False
    assert hardware.resolve_precision("auto", torch.device("cpu")) == "fp32"


def test_this_machine_resolves_to_what_its_cpu_can_do():
    device, resolved = hardware.resolve("cpu", "auto")
    native = hardware.cpu_native_bf16()
    assert resolved.precision == ("bf16" if native else "fp32")
    assert resolved.cpu_capability == torch.backends.cpu.get_cpu_capability()


@pytest.mark.parametrize("spec, words", [
    ("cuda", "no CUDA GPU"), ("cuda:1", "no CUDA GPU"), ("tpu", "unknown device"), ("cuda:x", "unknown device"),
])
def test_unavailable_or_unknown_devices_are_config_errors(no_cuda, spec, words):
    with pytest.raises(ConfigError, match=words):
        hardware.resolve_device(spec)


def test_a_gpu_index_past_the_last_one_is_refused(fake_cuda):
    with pytest.raises(ConfigError, match="cuda:0 to cuda:0"):
        hardware.resolve_device("cuda:2")


def test_unknown_precision_is_a_config_error():
    with pytest.raises(ConfigError, match="auto, fp32 or bf16"):
        hardware.resolve_precision("fp8", torch.device("cpu"))


def test_determinism_switches_are_left_alone_on_cpu():
    before = torch.are_deterministic_algorithms_enabled()
    hardware.make_deterministic(torch.device("cpu"))
    assert torch.are_deterministic_algorithms_enabled() == before


def test_fit_on_cpu_records_device_and_precision(tmp_path):
    run = fit(make_config("ae", epochs=1, hidden=32, latent=4), tmp_path / "run", progress=False, device="cpu")
    recorded = json.loads((tmp_path / "run" / "model.json").read_text())["hardware"]
    expected = hardware.resolve("cpu", "auto")[1].as_dict()
    assert recorded == expected == run.hardware
    assert next(run.model.parameters()).device.type == "cpu"


def test_checkpoints_hold_contiguous_cpu_tensors_whatever_the_training_layout(tmp_path):
    # The conv models train in channels_last (a non-default layout, as a GPU run is on a
    # non-default device): the files must still hold plain CPU tensors that load anywhere.
    data = make_tiny_idx(tmp_path / "tiny")  # the layout, not the data, is under test
    run = fit(make_config("convenc-vae", dataset=f"idx:{data}", epochs=1, batch_size=64, precision="fp32"),
              tmp_path / "run", progress=False, device="cpu")
    assert run.model.encoder.trunk[0].weight.is_contiguous(memory_format=torch.channels_last)
    with safe_open(str(tmp_path / "run" / "weights.safetensors"), framework="pt", device="cpu") as handle:
        for key in handle.keys():
            tensor = handle.get_tensor(key)
            assert tensor.device.type == "cpu" and tensor.is_contiguous()
    loaded = load_run(tmp_path / "run", device="cpu")
    for (name, a), b in zip(run.model.state_dict().items(), loaded.model.state_dict().values()):
        assert torch.equal(a.cpu(), b), name


def test_weights_round_tripped_through_another_dtype_load_on_cpu(tmp_path):
    # A run written by a process whose tensors went through another dtype (as on a GPU in
    # half precision and back) must load as the float32 CPU model it describes.
    run = fit(make_config("vae", epochs=1, hidden=32, latent=4), tmp_path / "run", progress=False, device="cpu")
    from safetensors.torch import load_file, save_file

    path = tmp_path / "run" / "weights.safetensors"
    round_trip = {k: v.double().float() for k, v in load_file(str(path)).items()}
    save_file(round_trip, str(path))
    loaded = load_run(tmp_path / "run", device="cpu")
    for a, b in zip(run.model.state_dict().values(), loaded.model.state_dict().values()):
        assert torch.equal(a, b)


def test_resume_on_a_machine_that_resolves_otherwise_keeps_the_precision_and_says_so(tmp_path, monkeypatch, capsys):
    config = make_config("vae", epochs=2, hidden=32, latent=4)
    monkeypatch.setattr(hardware, "cpu_native_bf16", lambda: True)
    first = fit(config.model_copy(update={"train": config.train.model_copy(update={"epochs": 1})}),
                tmp_path / "run", progress=False, device="cpu")
    assert first.hardware["precision"] == "bf16"
    monkeypatch.setattr(hardware, "cpu_native_bf16", lambda: False)
    capsys.readouterr()
    resumed = fit(config, tmp_path / "run", resume=True, progress=False, device="cpu")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("note: ") and "continuing in bf16" in err[0]
    assert "would choose fp32" in err[0]
    assert resumed.hardware["precision"] == "bf16"
    assert json.loads((tmp_path / "run" / "model.json").read_text())["hardware"]["precision"] == "bf16"


def test_a_study_resumed_elsewhere_keeps_its_precision_and_says_so(tmp_path, capsys):
    started = hardware.Resolved("cpu", "bf16", "AVX512", "2.13.0")
    assert study_hardware(tmp_path, started, 2) == started
    here = hardware.Resolved("cpu", "fp32", "AVX2", "2.13.0")
    capsys.readouterr()
    kept = study_hardware(tmp_path, here, 2)
    err = capsys.readouterr().err.strip().splitlines()
    assert kept.precision == "bf16" and kept.cpu_capability == "AVX2"
    assert len(err) == 1 and "continuing in bf16" in err[0] and "another --out" in err[0]
    assert json.loads((tmp_path / "hardware.json").read_text())["precision"] == "bf16"


def test_info_command_reports_capability_and_auto(tmp_path):
    result = run_cli("info", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"cpu capability  {torch.backends.cpu.get_cpu_capability()}" in out
    assert "precision auto  " + hardware.resolve("auto", "auto")[1].precision in out
    assert "threads" in out and "mnist-5k" in out


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cli_asking_for_a_missing_gpu_gets_one_line_and_exit_2(tmp_path):
    result = run_cli("train", "--device", "cuda", "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: device 'cuda' is not available: torch sees no CUDA GPU here; use --device cpu or auto"]
    assert not (tmp_path / "run").exists()


@pytest.mark.gpu
def test_gpu_training_is_deterministic_and_loads_on_cpu(tmp_path):
    config = make_config("conv-vae", epochs=1, batch_size=64)
    a = fit(config, tmp_path / "a", progress=False, device="cuda")
    b = fit(config, tmp_path / "b", progress=False, device="cuda")
    for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()):
        assert torch.equal(x, y)
    loaded = load_run(tmp_path / "a", device="cpu")
    assert next(loaded.model.parameters()).device.type == "cpu"
    for x, y in zip(a.model.state_dict().values(), loaded.model.state_dict().values()):
        assert torch.equal(x.cpu(), y)
