"""WAE-MMD (Tolstikhin et al. 2018): its settings, its loss, and one real training run."""

import pytest
import torch

from vaelab.config import ModelConfig, build_config
from vaelab.errors import ConfigError
from vaelab.models import build_model
from vaelab.models.mmd import imq_kernels, mmd_unbiased
from vaelab.seeding import torch_generator

SMALL = dict(hidden=16, latent=3)


def test_the_encoder_is_deterministic_and_lambda_is_its_setting():
    model = build_model(ModelConfig(objective="wae", mmd_weight=4.0, **SMALL), 0)
    x = torch.rand(5, 1, 28, 28, generator=torch_generator(0, "x"))
    code, logvar = model.encode(x)
    assert logvar is None and code.shape == (5, 3)
    assert model.config.weight() == ("mmd_weight", "λ", 4.0)
    assert model.config.describe() == "wae λ=4"


def test_the_loss_is_the_reconstruction_plus_lambda_times_the_mmd_to_prior_draws():
    model = build_model(ModelConfig(objective="wae", mmd_weight=10.0, **SMALL), 0)
    x = torch.bernoulli(torch.rand(8, 1, 28, 28, generator=torch_generator(0, "x")))
    with torch.no_grad():
        terms = model.objective(model, x, x, torch_generator(0, "noise"))
        code, _ = model.encode(x)
        draws = model.sample_prior(8, torch_generator(0, "noise"))
        expected_mmd = mmd_unbiased(code, draws, imq_kernels())
        recon = -model.likelihood.log_prob(model.decode(code), x).mean()
    torch.testing.assert_close(terms["mmd"], expected_mmd)
    torch.testing.assert_close(terms["recon"], recon)
    torch.testing.assert_close(terms["loss"], recon + 10.0 * expected_mmd)


def test_with_lambda_zero_it_is_the_ae():
    ae = build_model(ModelConfig(objective="ae", **SMALL), 3)
    wae = build_model(ModelConfig(objective="wae", mmd_weight=0.0, **SMALL), 3)
    x = torch.bernoulli(torch.rand(6, 1, 28, 28, generator=torch_generator(1, "x")))
    with torch.no_grad():
        a = ae.objective(ae, x, x, torch_generator(0, "n"))["loss"]
        w = wae.objective(wae, x, x, torch_generator(0, "n"))["loss"]
    torch.testing.assert_close(a, w)  # same seed: the same weights, the same reconstruction


@pytest.mark.parametrize("values, message", [
    ({"objective": "wae", "prior": "mog"}, "scaled to the N\\(0, I\\) prior"),
    ({"objective": "vae", "mmd_weight": 3.0}, "mmd_weight applies to the wae objective only, not vae"),
    ({"objective": "wae", "mmd_weight": -1.0}, "greater than or equal to 0"),
])
def test_settings_that_do_not_fit_are_refused_in_one_line(values, message):
    with pytest.raises(ConfigError, match=message):
        build_config({"model": values})


def test_training_lowers_the_mmd(tiny_idx_folder, tmp_path):
    import vaelab

    run = vaelab.train("wae", out=tmp_path / "wae", dataset=f"idx:{tiny_idx_folder}", epochs=4, batch_size=20,
                       **SMALL)
    first, last = run.history[0], run.history[-1]
    assert last["train_loss"] < first["train_loss"]
    assert last["train_mmd"] < first["train_mmd"]
