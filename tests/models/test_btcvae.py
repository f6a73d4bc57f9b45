"""vaelab.models.btcvae: β-TCVAE's decomposition of the KL and its minibatch-weighted sampling, by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from vaelab.config import ModelConfig
from vaelab.models import build_model
from vaelab.models.distributions import kl_standard_normal, log_normal_diag
from vaelab.seeding import torch_generator
from tests.models.conftest import SMALL


def test_btcvae_terms_add_up_to_the_kl_and_average_to_the_closed_form():
    model = build_model(ModelConfig(objective="btcvae", beta=6.0, **SMALL), 0)
    model.objective.dataset_size = 1000
    x = torch.rand(32, 1, 28, 28)
    with torch.no_grad():
        terms = model.objective(model, x, x, torch_generator(0, "noise"))
        torch.testing.assert_close(terms["mi"] + terms["tc"] + terms["dwkl"], terms["kl"])
        torch.testing.assert_close(terms["loss"], terms["recon"] + terms["mi"] + 6.0 * terms["tc"] + terms["dwkl"])
        mean, logvar = model.encode(x)
        z = model.posterior.sample(mean, logvar, torch_generator(0, "noise"))
        torch.testing.assert_close(terms["kl"], (log_normal_diag(z, mean, logvar) - model.log_prior(z)).mean())
        draws = torch.stack([model.objective(model, x, x, torch_generator(1, i))["kl"] for i in range(300)])
    error = 4 * float(draws.std()) / math.sqrt(len(draws))
    assert float(draws.mean()) == pytest.approx(float(kl_standard_normal(mean, logvar).sum(1).mean()), abs=error)


def test_btcvae_minibatch_weighted_sampling_by_hand():
    # two examples, one dimension: log q(z_i) = log sum_j q(z_i | x_j) - log(N M)
    model = build_model(ModelConfig(objective="btcvae", hidden=8, latent=1), 0)
    model.objective.dataset_size = 10
    means, sds = [0.0, 1.0], [1.0, 0.5]
    z = [0.2, 0.9]

    class Fixed(torch.nn.Module):
        def forward(self, x):
            return torch.tensor([[means[0]], [means[1]]]), torch.log(torch.tensor([[sds[0] ** 2], [sds[1] ** 2]]))

    model.encoder = Fixed()
    eps = torch.tensor([[(z[0] - means[0]) / sds[0]], [(z[1] - means[1]) / sds[1]]])
    model.posterior.sample = lambda mean, logvar, noise: mean + torch.exp(0.5 * logvar) * eps
    with torch.no_grad():
        terms = model.objective(model, torch.rand(2, 1, 28, 28), torch.rand(2, 1, 28, 28))
    log_q_z = [math.log(sum(stats.norm.pdf(zi, m, s) for m, s in zip(means, sds))) - math.log(10 * 2) for zi in z]
    log_q_z_given_x = [stats.norm.logpdf(zi, m, s) for zi, m, s in zip(z, means, sds)]
    mi = np.mean(np.subtract(log_q_z_given_x, log_q_z))
    assert float(terms["mi"]) == pytest.approx(mi, rel=1e-5)
    assert float(terms["tc"]) == pytest.approx(0.0, abs=1e-6)  # one dimension: no total correlation
    assert float(terms["dwkl"]) == pytest.approx(np.mean(np.subtract(log_q_z, stats.norm.logpdf(z))), rel=1e-5)
