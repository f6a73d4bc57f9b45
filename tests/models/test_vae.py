"""The VAE and β-VAE (vaelab.models.vae): the ELBO's terms by hand, β, its priors, its presets, one real run."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Normal

from vaelab.config import ModelConfig, build_config
from vaelab.errors import ConfigError
from vaelab.models import PRESETS, build_model
from vaelab.models.distributions import bce_per_example, kl_standard_normal, reparameterize
from vaelab.seeding import torch_generator
from tests.models.conftest import SMALL, first_and_last_epoch


def test_vae_loss_is_recon_plus_beta_times_kl_averaged_over_the_batch():
    model = build_model(ModelConfig(objective="vae", beta=4.0, hidden=16, latent=3), 0)
    x = torch.rand(6, 1, 28, 28)
    terms = model.objective(model, x, x, torch_generator(0, "noise"))
    torch.testing.assert_close(terms["loss"], terms["recon"] + 4.0 * terms["kl"])
    mean, logvar = model.encode(x)
    torch.testing.assert_close(terms["kl"], kl_standard_normal(mean, logvar).sum(1).mean())
    z = reparameterize(mean, logvar, torch_generator(0, "noise"))
    torch.testing.assert_close(terms["recon"], bce_per_example(model.decode(z), x).mean())


def test_beta_zero_leaves_the_reconstruction_of_a_posterior_draw():
    model = build_model(ModelConfig(objective="vae", beta=0.0, **SMALL), 1)
    x = torch.rand(5, 1, 28, 28, generator=torch_generator(0, "x"))
    with torch.no_grad():
        terms = model.objective(model, x, x, torch_generator(3, "noise"))
    torch.testing.assert_close(terms["loss"], terms["recon"])
    assert terms["kl"] > 0  # still measured, not trained against


def test_with_a_learned_prior_the_kl_is_the_one_sample_estimate_at_the_draw():
    model = build_model(ModelConfig(objective="vae", prior="mog", components=3, **SMALL), 2)
    x = torch.rand(5, 1, 28, 28, generator=torch_generator(0, "x"))
    with torch.no_grad():
        terms = model.objective(model, x, x, torch_generator(4, "noise"))
        mean, logvar = model.encode(x)
        z = reparameterize(mean, logvar, torch_generator(4, "noise"))
        # log q(z|x) - log p(z), both densities from torch.distributions: log sum_k pi_k N(z; mu_k, sigma_k^2)
        weights = torch.log_softmax(model.prior.logits, 0)
        components = torch.stack([Normal(model.prior.means[k], (0.5 * model.prior.logvars[k]).exp()).log_prob(z).sum(-1)
                                  for k in range(3)], dim=1)
        posterior = Normal(mean, (0.5 * logvar).exp()).log_prob(z).sum(-1)
        expected = (posterior - torch.logsumexp(components + weights, 1)).mean()
    torch.testing.assert_close(terms["kl"], expected)


def test_its_presets_and_how_beta_is_described():
    assert PRESETS["conv-vae"] == {"encoder": "conv", "decoder": "conv", "objective": "vae", "prior": "normal"}
    assert PRESETS["convenc-vae"]["encoder"] == "conv" and PRESETS["convenc-vae"]["decoder"] == "mlp"
    assert PRESETS["vamp"]["prior"] == "vamp" and PRESETS["mog-vae"]["prior"] == "mog"
    beta4 = ModelConfig(objective="vae", beta=4.0, prior="vamp")
    assert beta4.describe() == "vae β=4 (vamp prior)" and beta4.describe(weight=False) == "vae (vamp prior)"
    assert beta4.settings_note() == " (β=4.0), vamp prior"
    assert beta4.divergence_advice() == " or --beta below 4"
    assert ModelConfig(objective="vae").divergence_advice() == ""  # β = 1: lowering it is not the advice


@pytest.mark.parametrize("values, message", [
    ({"beta": -1.0}, "greater than or equal to 0"),
    ({"beta": float("nan")}, "finite number"),
    ({"prior": "vamp", "components": 0}, "greater than 0"),
    ({"samples": 7}, "samples applies to"),
])
def test_settings_that_do_not_fit_are_refused_in_one_line(values, message):
    with pytest.raises(ConfigError, match=message):
        build_config({"model": {"objective": "vae", **values}})


def test_training_raises_the_elbo(tiny_idx_folder, tmp_path):
    first, last = first_and_last_epoch("vae", tiny_idx_folder, tmp_path / "vae")
    assert set(first) >= {"train_loss", "train_recon", "train_kl", "test_loss", "test_recon", "test_kl"}
    assert last["test_loss"] < first["test_loss"]
