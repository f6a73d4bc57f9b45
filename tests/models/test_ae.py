"""The AE (vaelab.models.ae): its loss by hand, its deterministic code, the settings it refuses, one real run."""

from __future__ import annotations

import pytest
import torch

from vaelab.config import ModelConfig, build_config
from vaelab.errors import ConfigError
from vaelab.models import PRESETS, build_model
from vaelab.models.distributions import bce_per_example
from vaelab.seeding import torch_generator
from tests.models.conftest import SMALL, first_and_last_epoch


def test_ae_loss_is_the_reconstruction_alone():
    model = build_model(ModelConfig(objective="ae", **SMALL), 0)
    x = torch.rand(6, 1, 28, 28)
    terms = model.objective(model, x, x)
    assert set(terms) == {"loss", "recon"}
    torch.testing.assert_close(terms["loss"], bce_per_example(model.decode(model.encode(x)[0]), x).mean())


def test_the_code_is_deterministic_and_the_loss_draws_no_noise():
    model = build_model(ModelConfig(objective="ae", **SMALL), 0)
    x = torch.rand(4, 1, 28, 28, generator=torch_generator(0, "x"))
    code, logvar = model.encode(x)
    assert logvar is None and code.shape == (4, 3)
    assert not model.objective.stochastic
    with torch.no_grad():  # two different noise streams: the same loss, since nothing is drawn
        first = model.objective(model, x, x, torch_generator(1, "noise"))["loss"]
        second = model.objective(model, x, x, torch_generator(2, "noise"))["loss"]
    assert torch.equal(first, second)
    assert model.objective.clusters(model, x) is None and not model.objective.has_clusters(model)


def test_its_preset_and_how_it_is_described():
    assert PRESETS["ae"] == {"encoder": "mlp", "decoder": "mlp", "objective": "ae", "prior": "normal"}
    settings = ModelConfig(objective="ae")
    assert settings.describe() == "ae" and settings.settings_note() == ""
    assert settings.weight() is None and settings.divergence_advice() == ""


@pytest.mark.parametrize("values, message", [
    ({"prior": "mog"}, "the ae model takes the prior normal, not mog: prior applies to the stochastic objectives"),
    ({"beta": 2.0}, "beta applies to the vae, btcvae, cvae objectives only, not ae: remove it or choose that model"),
    ({"components": 10}, "components applies to the mog and vamp priors only"),
])
def test_settings_the_ae_does_not_have_are_refused_in_one_line(values, message):
    with pytest.raises(ConfigError, match=message):
        build_config({"model": {"objective": "ae", **values}})


def test_training_lowers_the_reconstruction_loss(tiny_idx_folder, tmp_path):
    first, last = first_and_last_epoch("ae", tiny_idx_folder, tmp_path / "ae")
    assert set(first) >= {"train_loss", "train_recon", "test_loss", "test_recon"}
    assert last["train_recon"] < first["train_recon"] and last["test_recon"] < first["test_recon"]
