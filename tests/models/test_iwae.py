"""vaelab.models.iwae: the IWAE bound (Burda et al. 2016) against the one-sample ELBO, its tightening, its prior."""

from __future__ import annotations


import torch

from vaelab.analysis.likelihood import iwae_log_likelihood, model_log_likelihood
from vaelab.config import ModelConfig
from vaelab.models import build_model
from vaelab.models.distributions import log_normal_diag
from vaelab.seeding import torch_generator
from tests.models.conftest import SMALL, one_component_standard_normal


def test_iwae_with_one_sample_is_the_one_sample_elbo():
    model = build_model(ModelConfig(objective="iwae", samples=1, **SMALL), 0)
    x = torch.rand(8, 1, 28, 28)
    with torch.no_grad():
        terms = model.objective(model, x, x, torch_generator(0, "noise"))
        mean, logvar = model.encode(x)
        z = model.posterior.sample(mean, logvar, torch_generator(0, "noise"))
        log_lik = model.likelihood.log_prob(model.decode(z), x)
        elbo = log_lik + model.prior.log_prob(z) - log_normal_diag(z, mean, logvar)
    torch.testing.assert_close(terms["loss"], -elbo.mean())
    torch.testing.assert_close(terms["loss"], terms["recon"] + terms["kl"])


def test_the_iwae_bound_tightens_with_more_samples():
    model = build_model(ModelConfig(objective="iwae", samples=1, **SMALL), 0)
    x = torch.bernoulli(torch.rand(32, 1, 28, 28), generator=torch_generator(0, "x"))
    with torch.no_grad():
        elbo = torch.stack([model.objective(model, x, x, torch_generator(0, "n", i))["loss"] for i in range(50)]).mean()
        model.objective.settings = model.objective.settings.model_copy(update={"samples": 50})
        iwae = torch.stack([model.objective(model, x, x, torch_generator(1, "n", i))["loss"] for i in range(5)]).mean()
    assert iwae < elbo - 1.0  # an untrained model's posterior is poor: importance weighting gains many nats


def test_the_iwae_estimate_uses_the_models_own_prior():
    vae = build_model(ModelConfig(**SMALL), 0)
    mog = build_model(ModelConfig(prior="mog", components=1, **SMALL), 0)
    x = torch.bernoulli(torch.rand(4, 1, 28, 28), generator=torch_generator(0, "x"))
    with torch.no_grad():
        mean, logvar = vae.encode(x)
        estimate = {}
        for name, model, shift in (("vae", vae, 0.0), ("same", mog, 0.0), ("shifted", mog, 3.0)):
            one_component_standard_normal(model) if name != "vae" else None
            if shift:
                model.prior.means.fill_(shift)
            estimate[name] = iwae_log_likelihood(x, mean, logvar, model_log_likelihood(model), 20,
                                                 torch_generator(0, "iwae"), log_prior=model.log_prior)
    torch.testing.assert_close(estimate["same"], estimate["vae"])
    assert (estimate["shifted"] < estimate["vae"] - 5).all()  # a prior far from the codes: a worse likelihood
