"""vaelab.models.gmvae: the GMVAE against the VAE's one-sample ELBO, its balance term, its code and clusters."""

from __future__ import annotations

import math

import pytest
import torch

from vaelab.config import ModelConfig
from vaelab.models import build_model
from vaelab.models.distributions import log_normal_diag
from vaelab.seeding import torch_generator
from tests.models.conftest import SMALL, one_component_standard_normal


def test_gmvae_with_one_cluster_is_the_vaes_one_sample_elbo():
    model = build_model(ModelConfig(objective="gmvae", prior="mog", components=1, **SMALL), 0)
    one_component_standard_normal(model)
    x = torch.rand(8, 1, 28, 28)
    with torch.no_grad():
        terms = model.objective(model, x, x, torch_generator(0, "noise"))
        _, means, logvars = model.encoder.posterior(x)
        z = reparameterize_like(means, logvars, torch_generator(0, "noise"))
        log_lik = model.likelihood.log_prob(model.decode(z[:, 0]), x)
        kl = log_normal_diag(z[:, 0], means[:, 0], logvars[:, 0]) - model.prior.log_prob(z[:, 0])
    assert float(terms["kl_y"]) == pytest.approx(0.0, abs=1e-6) and float(terms["balance"]) == pytest.approx(0, abs=1e-6)
    torch.testing.assert_close(terms["loss"], (-log_lik + kl).mean())


def test_gmvae_balance_term_is_log_k_when_one_cluster_takes_everything():
    model = build_model(ModelConfig(objective="gmvae", prior="mog", components=4, **SMALL), 0)
    with torch.no_grad():
        model.encoder.cluster.weight.zero_()
        model.encoder.cluster.bias.copy_(torch.tensor([50.0, 0.0, 0.0, 0.0]))
        collapsed = model.objective(model, torch.rand(8, 1, 28, 28), torch.rand(8, 1, 28, 28))
        model.encoder.cluster.bias.zero_()
        balanced = model.objective(model, torch.rand(8, 1, 28, 28), torch.rand(8, 1, 28, 28))
    assert float(collapsed["balance"]) == pytest.approx(math.log(4), abs=1e-4)
    assert float(balanced["balance"]) == pytest.approx(0.0, abs=1e-6)
    assert not model.prior.logits.requires_grad  # p(y) stays uniform


def reparameterize_like(means, logvars, generator):
    from vaelab.models.distributions import reparameterize

    return reparameterize(means, logvars, generator)


def test_gmvae_code_is_the_moment_matched_mixture_and_clusters_are_argmax_q_y():
    model = build_model(ModelConfig(objective="gmvae", prior="mog", components=3, **SMALL), 0)
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        logits, means, logvars = model.encoder.posterior(x)
        mean, logvar = model.encode(x)
        weights = torch.softmax(logits, 1).unsqueeze(2)
        torch.testing.assert_close(mean, (weights * means).sum(1))
        second_moment = (weights * (logvars.exp() + means ** 2)).sum(1)
        torch.testing.assert_close(logvar.exp(), second_moment - mean ** 2)
        assert torch.equal(model.clusters(x), logits.argmax(1))
