"""model.json files written by vaelab 0.1 (one flat model section for every model) keep loading.

``legacy_model_json.json`` holds, for every preset, the model.json config and identity that vaelab 0.1.0
(commit 7b0c381) wrote, and the names and shapes of the weights it saved (hidden 16, latent 3).
"""

import json
from pathlib import Path

import pytest

from vaelab.models import build_model
from vaelab.records import read_model_json

LEGACY = json.loads((Path(__file__).parent / "legacy_model_json.json").read_text())["runs"]


def _read(tmp_path: Path, name: str):
    run = tmp_path / name
    run.mkdir()
    (run / "model.json").write_text(json.dumps(LEGACY[name]["model.json"]))
    return read_model_json(run)["config"]


@pytest.mark.parametrize("name", sorted(LEGACY))
def test_every_preset_loads_into_the_same_weights(tmp_path, name):
    config = _read(tmp_path, name)
    model = build_model(config.model, config.train.seed, (1, 28, 28), 10)
    shapes = {key: list(value.shape) for key, value in model.state_dict().items()}
    assert shapes == LEGACY[name]["weights"]


def test_the_flat_section_becomes_the_models_own_settings(tmp_path):
    cvae, factorvae, vae = (_read(tmp_path, name).model for name in ("cvae", "factorvae", "vae"))
    assert cvae.objective == "cvae" and cvae.conditional
    assert factorvae.objective == "factorvae" and factorvae.gamma == 30.0  # vaelab 0.1's "beta"
    assert vae.beta == 4.0 and "samples" not in vae.model_dump()
