"""Determinism, resume after SIGKILL, divergence, and the run directory."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import run_cli
from vaelab.api import make_config
from vaelab.errors import RunError, TrainingDiverged
from vaelab.training.checkpoint import load_checkpoint
from vaelab.training.trainer import fit, load_run


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "weights.safetensors"))


def _assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


def test_same_seed_gives_bit_identical_weights_and_losses(tmp_path):
    config = make_config("vae", epochs=2, seed=3)
    first = fit(config, tmp_path / "a", progress=False)
    second = fit(config, tmp_path / "b", progress=False)
    _assert_same_weights(tmp_path / "a", tmp_path / "b")
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(first.history) == strip(second.history)
    third = fit(make_config("vae", epochs=2, seed=4), tmp_path / "c", progress=False)
    assert strip(third.history) != strip(first.history)


def test_run_directory_holds_weights_config_and_metrics(tmp_path):
    run = fit(make_config("ae", epochs=2, seed=0), tmp_path / "run", progress=False)
    info = json.loads((tmp_path / "run" / "model.json").read_text())
    assert info["status"] == "finished" and info["epochs_done"] == 2 and info["seed"] == 0
    assert info["config"]["model"]["objective"] == "ae" and info["dataset"]["name"] == "mnist-5k"
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert {"train_loss", "train_recon", "test_loss", "test_recon", "seconds"} <= set(rows[0])
    assert rows[1]["train_loss"] < rows[0]["train_loss"]
    loaded = load_run(tmp_path / "run")
    for a, b in zip(loaded.model.state_dict().values(), run.model.state_dict().values()):
        assert torch.equal(a, b)


def test_vae_metrics_log_recon_and_kl_separately(tmp_path):
    run = fit(make_config("vae", epochs=1), tmp_path / "run", progress=False)
    row = run.history[0]
    assert row["train_loss"] == pytest.approx(row["train_recon"] + row["train_kl"], rel=1e-5)
    assert row["test_kl"] > 0


def test_an_existing_run_is_not_overwritten_without_resume(tmp_path):
    fit(make_config("ae", epochs=1), tmp_path / "run", progress=False)
    with pytest.raises(RunError, match="already holds a run"):
        fit(make_config("ae", epochs=1), tmp_path / "run", progress=False)


def test_resume_in_process_continues_to_the_same_weights(tmp_path):
    fit(make_config("vae", epochs=3, seed=1), tmp_path / "full", progress=False)
    fit(make_config("vae", epochs=1, seed=1), tmp_path / "part", progress=False)
    resumed = fit(make_config("vae", epochs=3, seed=1), tmp_path / "part", resume=True, progress=False)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    _assert_same_weights(tmp_path / "full", tmp_path / "part")


def _train_cmd(run_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "vaelab", "train", "--model", "vae", "--epochs", "6", "--seed", "2",
            "--quiet", "--out", str(run_dir), *extra]


@pytest.fixture(scope="module")
def uninterrupted_run(tmp_path_factory) -> Path:
    """The run that every killed-and-resumed run must equal, trained once, uninterrupted."""
    reference = tmp_path_factory.mktemp("uninterrupted") / "reference"
    result = run_cli(*_train_cmd(reference)[3:])  # in this process: the killed run is the one that needs its own
    assert result.returncode == 0, result.stderr
    return reference


@pytest.mark.parametrize("kill_after_epochs", [1, 3])
def test_resume_after_sigkill_equals_an_uninterrupted_run(tmp_path, uninterrupted_run, kill_after_epochs):
    reference = uninterrupted_run
    victim = tmp_path / "victim"
    process = subprocess.Popen(_train_cmd(victim), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    # Kill mid-epoch, shortly after the wanted checkpoint appears (writes may be under way).
    while time.time() < deadline:
        if (victim / "model.json").exists():
            try:
                if json.loads((victim / "model.json").read_text())["epochs_done"] >= kill_after_epochs:
                    break
            except (json.JSONDecodeError, KeyError):
                pass
        time.sleep(0.005)
    time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert load_checkpoint(victim).epoch < 6, "the run finished before it could be killed"
    resumed = run_cli("train", "--resume", str(victim), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    _assert_same_weights(reference, victim)
    assert not list(victim.glob(".*.tmp")), "temporary files of the killed run are left"
    rows = (victim / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == [1, 2, 3, 4, 5, 6]


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_checkpoint(tmp_path):
    config = make_config("vae", epochs=1, seed=0)
    fit(config, tmp_path / "run", progress=False)
    before = _weights(tmp_path / "run")
    # Poison the weights at the start of epoch 2, as a diverging optimiser would.
    diverging = make_config("vae", epochs=2, seed=0)
    from vaelab.training import trainer

    original = trainer.train_epoch

    def poisoned(model, *args, **kwargs):
        with torch.no_grad():
            model.decoder.net[0].weight.fill_(math.nan)
        return original(model, *args, **kwargs)

    trainer.train_epoch = poisoned
    try:
        with pytest.raises(TrainingDiverged, match="NaN/Inf in epoch 2; the checkpoint of epoch 1 is kept"):
            fit(diverging, tmp_path / "run", resume=True, progress=False)
    finally:
        trainer.train_epoch = original
    after = _weights(tmp_path / "run")
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert load_checkpoint(tmp_path / "run").epoch == 1


def test_bf16_precision_trains_and_stays_finite(tmp_path):
    # A tiny model: where the CPU emulates bf16 (AVX2 only) it runs 5x or more slower than fp32.
    run = fit(make_config("vae", epochs=1, precision="bf16", hidden=32, latent=4), tmp_path / "run", progress=False)
    assert math.isfinite(run.history[0]["test_loss"])
    assert run.hardware["precision"] == "bf16"  # asked for by name: kept even where it is emulated


def test_binarized_training_sees_binary_targets(tmp_path):
    from vaelab.training.trainer import prepare_targets
    from vaelab.seeding import torch_generator

    config = make_config("vae", binarize=True)
    images = torch.rand(10, 1, 28, 28)
    targets = prepare_targets(images, config, torch_generator(0, "b"))
    assert set(targets.unique().tolist()) <= {0.0, 1.0}
    run = fit(make_config("vae", epochs=1, binarize=True), tmp_path / "run", progress=False)
    assert math.isfinite(run.history[0]["test_loss"])


def test_ae_and_vae_with_one_seed_see_the_same_binarised_batches(monkeypatch):
    # Binarisation draws from its own stream: the VAE's sampling noise must not shift it.
    from vaelab.data.registry import load_dataset, to_tensor
    from vaelab.models import build_model
    from vaelab.training import trainer

    seen: dict[str, list[torch.Tensor]] = {"ae": [], "vae": []}
    real = trainer.prepare_targets
    images = to_tensor(load_dataset("mnist-5k", seed=0).train_images[:256])
    for name in seen:
        config = make_config(name, binarize=True, batch_size=64, hidden=32, latent=4, seed=5)
        monkeypatch.setattr(trainer, "prepare_targets",
                            lambda x, c, g, name=name: seen[name].append(real(x, c, g)) or seen[name][-1])
        model = build_model(config.model, 5)
        trainer.train_epoch(model, trainer.make_optimizer(model, config), images, config, 0)
    assert len(seen["ae"]) == len(seen["vae"]) == 4
    for a, b in zip(seen["ae"], seen["vae"]):
        assert torch.equal(a, b) and set(a.unique().tolist()) <= {0.0, 1.0}


def test_an_alternating_objective_steps_each_phase_with_its_own_adam():
    """train_step with the AAE's phases equals three Adams stepped by hand, each on its own term and parameters."""
    from vaelab.config import ModelConfig
    from vaelab.models import build_model
    from vaelab.seeding import torch_generator
    from vaelab.training.trainer import PhasedOptimizer, train_step

    settings = ModelConfig(objective="aae", hidden=16, latent=3)
    model, by_hand = build_model(settings, 0), build_model(settings, 0)
    optimizer = PhasedOptimizer(model.objective.phases(model), lr=0.01)
    assert optimizer.terms == ["recon", "discriminator", "adversarial"]
    encoder, decoder, critic = (list(part.parameters()) for part in
                                (by_hand.encoder, by_hand.decoder, by_hand.discriminator))
    adams = [torch.optim.Adam(encoder + decoder, lr=0.01, foreach=False),
             torch.optim.Adam(critic, lr=0.01, betas=(0.5, 0.9), foreach=False),
             torch.optim.Adam(encoder, lr=0.01, foreach=False)]
    x = torch.rand(8, 1, 28, 28, generator=torch_generator(0, "x"))
    for step in range(3):
        terms = train_step(model, optimizer, x, torch_generator(step, "noise"), None, "fp32")
        noise = torch_generator(step, "noise")
        for term, adam in zip(["recon", "discriminator", "adversarial"], adams):
            loss = by_hand.objective(by_hand, x, x, noise)[term]
            by_hand.zero_grad(set_to_none=True)
            loss.backward()
            adam.step()
        assert not terms["loss"].requires_grad  # the first pass's terms, detached
    for (name, a), b in zip(model.state_dict().items(), by_hand.state_dict().values()):
        assert torch.equal(a, b), name
    # the discriminator moved only in its own phase: the generator's step leaves it as it was
    state = optimizer.state_dict()
    assert len(state["phases"]) == 3 and len(state["phases"][2]["state"]) == len(encoder)


def test_a_phased_optimizer_refuses_a_checkpoint_of_other_phases():
    from vaelab.config import ModelConfig
    from vaelab.models import build_model
    from vaelab.training.trainer import PhasedOptimizer

    model = build_model(ModelConfig(objective="aae", hidden=16, latent=3), 0)
    optimizer = PhasedOptimizer(model.objective.phases(model), lr=0.01)
    with pytest.raises(ValueError, match="other phases"):
        optimizer.load_state_dict({"phases": [optimizer.optimizers[0].state_dict()]})
