"""Resuming never loses or silently changes a run: bad --epochs, damaged model.json, the API's resume."""

from __future__ import annotations

import json

import pytest

import vaelab
from vaelab.errors import RunError
from tests.conftest import run_cli

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
