"""Resuming never loses or silently changes a run: bad --epochs, damaged model.json, the API's resume."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

import vaelab
from vaelab.errors import RunError
from tests.conftest import run_cli, wait_until_locked

TINY = dict(hidden=32, latent=4, precision="fp32")


@pytest.fixture
def seed3_run(tmp_path):
    run_dir = tmp_path / "run"
    vaelab.train("vae", out=run_dir, epochs=1, seed=3, **TINY)
    return run_dir


@pytest.mark.parametrize("epochs", ["0", "-2"])
def test_resume_with_an_invalid_epoch_count_changes_nothing(seed3_run, epochs):
    before = (seed3_run / "model.json").read_bytes()
    result = run_cli("train", "--resume", str(seed3_run), "--epochs", epochs)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "'train.epochs'" in lines[0] and "Traceback" not in result.stderr
    assert (seed3_run / "model.json").read_bytes() == before


def test_resume_with_fewer_epochs_than_done_is_refused(seed3_run, tmp_path):
    vaelab.train(None, out=seed3_run, resume=True, epochs=2)
    before = (seed3_run / "model.json").read_bytes()
    result = run_cli("train", "--resume", str(seed3_run), "--epochs", "1")
    assert result.returncode == 2 and "has trained 2 epochs already" in result.stderr
    assert (seed3_run / "model.json").read_bytes() == before


@pytest.mark.parametrize("damage", [lambda info: info.pop("config"), lambda info: info.update(config=[])])
def test_model_json_without_its_config_is_refused_not_retrained_from_defaults(seed3_run, damage):
    path = seed3_run / "model.json"
    info = json.loads(path.read_text())
    damage(info)
    path.write_text(json.dumps(info))
    with pytest.raises(RunError, match="holds no run config"):
        vaelab.train(None, out=seed3_run, resume=True, epochs=2)
    result = run_cli("train", "--resume", str(seed3_run))
    assert result.returncode == 2 and "holds no run config" in result.stderr


def test_api_resume_continues_the_saved_seed(seed3_run):
    run = vaelab.train("vae", out=seed3_run, resume=True, epochs=2)
    assert run.config.train.seed == 3 and len(run.history) == 2
    assert json.loads((seed3_run / "model.json").read_text())["seed"] == 3


def test_api_resume_with_a_conflicting_setting_is_refused(seed3_run):
    before = (seed3_run / "model.json").read_bytes()
    with pytest.raises(RunError, match="train.seed=3"):
        vaelab.train("vae", out=seed3_run, resume=True, epochs=2, seed=0)
    with pytest.raises(RunError, match="model.encoder='mlp'"):
        vaelab.train("conv-vae", out=seed3_run, resume=True, epochs=2)
    assert (seed3_run / "model.json").read_bytes() == before


def test_a_kill_after_the_last_checkpoint_leaves_no_stale_weights_or_metrics(tmp_path):
    # The kill window: the last epoch's checkpoint is renamed into place, then the process dies
    # before weights.safetensors, metrics.jsonl and model.json are rewritten.
    from safetensors.torch import load_file

    from vaelab.api import make_config
    from vaelab.training.trainer import fit

    run_dir, reference = tmp_path / "run", tmp_path / "reference"
    config = make_config("vae", epochs=2, seed=1, **TINY)
    fit(config, reference, progress=False)
    stale: dict[str, bytes] = {}

    def keep_epoch_1_files(row):
        if row["epoch"] == 1:
            stale.update({n: (run_dir / n).read_bytes() for n in ("weights.safetensors", "metrics.jsonl", "model.json")})

    fit(config, run_dir, progress=False, on_epoch=keep_epoch_1_files)
    for name, content in stale.items():  # as the kill would have left them
        (run_dir / name).write_bytes(content)

    loaded = vaelab.load(run_dir)  # reads the checkpoint: the truth, even before any repair
    assert len(loaded.history) == 2
    expected = load_file(str(reference / "weights.safetensors"))
    for key, value in loaded.model.state_dict().items():
        assert torch.equal(value, expected[key]), key

    result = run_cli("train", "--resume", str(run_dir), "--quiet")
    assert result.returncode == 0, result.stderr
    assert (run_dir / "weights.safetensors").read_bytes() != stale["weights.safetensors"]
    repaired = load_file(str(run_dir / "weights.safetensors"))
    assert all(torch.equal(repaired[k], expected[k]) for k in expected)
    assert [json.loads(r)["epoch"] for r in (run_dir / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    info = json.loads((run_dir / "model.json").read_text())
    assert info["status"] == "finished" and info["epochs_done"] == 2


def test_a_damaged_metrics_line_does_not_make_the_run_unloadable(seed3_run):
    (seed3_run / "metrics.jsonl").write_text("{not json\n")
    assert len(vaelab.load(seed3_run).history) == 1  # the checkpoint holds the history


def test_a_second_writer_of_a_run_folder_gets_one_line_and_the_first_finishes(tmp_path):
    run_dir = tmp_path / "run"
    # 12 epochs: the first writer holds the folder for seconds after taking its lock (the data loads and trains
    # under it), and the second asks in well under one
    command = [sys.executable, "-m", "vaelab", "train", "--model", "vae", "--epochs", "12", "--hidden", "64",
               "--latent", "4", "--quiet", "--out", str(run_dir)]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_locked(run_dir)
        second = run_cli("train", "--resume", str(run_dir), "--quiet")
        assert second.returncode == 2
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and "is being written by another vaelab process (pid" in lines[0], second.stderr
        assert first.wait(timeout=300) == 0, first.stderr.read()
    finally:
        if first.poll() is None:
            first.kill()
    info = json.loads((run_dir / "model.json").read_text())
    assert info["status"] == "finished" and info["epochs_done"] == 12
