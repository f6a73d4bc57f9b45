"""The RAE (vaelab.models.rae): its loss by hand, the gradient penalty against autograd on a tiny decoder, the
settings it refuses, and runs that resume bit for bit."""

from __future__ import annotations

import pytest
import torch

from tests.models.conftest import SMALL, assert_resumes_bit_for_bit, first_and_last_epoch
from vaelab.analysis.compare import run_label
from vaelab.config import ModelConfig, build_config
from vaelab.errors import ConfigError
from vaelab.models import PRESETS, build_model
from vaelab.models.distributions import bce_per_example
from vaelab.models.rae import decoder_l2, gradient_penalty
from vaelab.seeding import torch_generator


def test_rae_l2_loss_by_hand():
    model = build_model(ModelConfig(objective="rae", code_weight=0.5, decoder_weight=0.01, **SMALL), 0)
    x = torch.rand(6, 1, 28, 28, generator=torch_generator(0, "x"))
    terms = model.objective(model, x, x)
    code = model.encode(x)[0]
    recon = bce_per_example(model.decode(code), x).mean()
    code_penalty = 0.5 * (code ** 2).sum(1).mean()
    weights = sum((p ** 2).sum() for name, p in model.decoder.named_parameters() if name.endswith("weight"))
    torch.testing.assert_close(terms["recon"], recon)
    torch.testing.assert_close(terms["code"], code_penalty)
    torch.testing.assert_close(terms["decoder"], weights)  # the weights' squares, not the biases'
    torch.testing.assert_close(terms["loss"], recon + 0.5 * code_penalty + 0.01 * weights)


def test_the_gradient_penalty_is_the_squared_gradient_of_the_decoded_energy():
    torch.manual_seed(0)
    decoder = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Tanh(), torch.nn.Linear(3, 4))
    z = torch.randn(5, 2)
    # by hand, one code at a time: d/dz sum_k D(z)_k^2 = 2 J(z)^T D(z), with J from autograd's jacobian
    expected = []
    for row in z:
        jacobian = torch.autograd.functional.jacobian(decoder, row)  # (4, 2)
        gradient = 2.0 * jacobian.T @ decoder(row)
        expected.append((gradient ** 2).sum())
    torch.testing.assert_close(gradient_penalty(decoder, z), torch.stack(expected).mean())
    # differentiable while training: its gradient reaches the decoder's weights
    gradient_penalty(decoder, z).backward()
    assert decoder[0].weight.grad is not None and decoder[0].weight.grad.abs().sum() > 0
    with torch.no_grad():  # measured, not differentiated, for the test loss
        value = gradient_penalty(decoder, z)
    assert not value.requires_grad and torch.isclose(value, torch.stack(expected).mean())


def test_rae_gp_uses_the_gradient_penalty_and_l2_sums_weights_only():
    model = build_model(ModelConfig(objective="rae", decoder_penalty="gp", **SMALL), 0)
    x = torch.rand(4, 1, 28, 28, generator=torch_generator(1, "x"))
    terms = model.objective(model, x, x)
    code = model.encode(x)[0]
    torch.testing.assert_close(terms["decoder"], gradient_penalty(model.decode, code))
    assert model.config.decoder_weight == 5e-5 and ModelConfig(objective="rae").decoder_weight == 1e-4
    assert ModelConfig(objective="rae", decoder_penalty="gp", decoder_weight=0.1).decoder_weight == 0.1
    linear = torch.nn.Linear(2, 2)
    assert torch.isclose(decoder_l2(linear), (linear.weight ** 2).sum())


def test_its_presets_and_how_they_are_described():
    assert PRESETS["rae"] == {"encoder": "mlp", "decoder": "mlp", "objective": "rae", "prior": "normal"}
    assert PRESETS["rae-gp"]["decoder_penalty"] == "gp"
    settings = ModelConfig(objective="rae")
    assert settings.describe() == "rae β=0.0128" and settings.weight() == ("code_weight", "β", 0.0128)
    assert settings.settings_note() == " (β=0.0128) (decoder_penalty=l2) (decoder_weight=0.0001)"
    assert not build_model(settings.model_copy(update=SMALL), 0).objective.stochastic


def test_a_run_is_named_after_the_preset_that_names_its_penalty(tmp_path):
    gp = build_config({"model": {**PRESETS["rae-gp"]}})
    l2 = build_config({"model": {**PRESETS["rae"]}})
    assert run_label(gp).startswith("rae-gp (") and run_label(l2).startswith("rae (")


@pytest.mark.parametrize("values, message", [
    ({"prior": "mog"}, "the rae model takes the prior normal, not mog: it has no prior to train against"),
    ({"decoder_penalty": "sn"}, "Input should be 'l2' or 'gp'"),
    ({"code_weight": -1.0}, "code_weight"),
    ({"beta": 2.0}, "beta applies to the vae, btcvae, cvae objectives only, not rae"),
])
def test_settings_the_rae_does_not_have_are_refused_in_one_line(values, message):
    with pytest.raises(ConfigError, match=message):
        build_config({"model": {"objective": "rae", **values}})


@pytest.mark.parametrize("preset", ["rae", "rae-gp"])
def test_training_lowers_the_reconstruction_loss(preset, tiny_idx_folder, tmp_path):
    first, last = first_and_last_epoch(preset, tiny_idx_folder, tmp_path / preset)
    assert set(first) >= {"train_loss", "train_recon", "train_code", "train_decoder", "test_decoder"}
    assert last["train_recon"] < first["train_recon"] and last["test_recon"] < first["test_recon"]


@pytest.mark.parametrize("preset", ["rae", "rae-gp"])
def test_a_killed_run_resumes_bit_for_bit(preset, tiny_idx_folder, tmp_path):
    assert_resumes_bit_for_bit(preset, tiny_idx_folder, tmp_path)
