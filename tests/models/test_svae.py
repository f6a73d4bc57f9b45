"""The hyperspherical VAE (vaelab.models.svae): the vMF density and KL against scipy and numerical
integration, Bessel functions and their gradient, Wood's sampler against the closed-form mean resultant
length and scipy's sampler, the reparameterised gradient's bias, and runs that lower their loss and resume
bit for bit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, special, stats

from tests.models.conftest import assert_resumes_bit_for_bit, first_and_last_epoch
from vaelab.config import ModelConfig, build_config
from vaelab.errors import ConfigError
from vaelab.models import build_model
from vaelab.models.svae import (VonMisesFisherPosterior, householder_to, kl_to_uniform, log_bessel_i,
                                log_sphere_area, mean_resultant_length, wood_w)
from vaelab.seeding import torch_generator


def _unit(m: int, seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=m)
    return v / np.linalg.norm(v)


@pytest.mark.parametrize("m", [3, 5, 16])
@pytest.mark.parametrize("kappa", [1.0, 10.0, 150.0])
def test_the_density_and_kl_against_scipy(m, kappa):
    mu = _unit(m, 0)
    reference = stats.vonmises_fisher(mu, kappa)
    points = reference.rvs(5, random_state=1)
    log_kappa = torch.full((5, m), math.log(kappa), dtype=torch.float64)
    ours = VonMisesFisherPosterior.log_prob(torch.tensor(points), torch.tensor(mu).expand(5, m), log_kappa)
    np.testing.assert_allclose(ours.numpy(), reference.logpdf(points), rtol=1e-9)
    # KL to the uniform distribution: -H(vMF) + log |S^{m-1}|
    kl = kl_to_uniform(torch.tensor([kappa], dtype=torch.float64), m).item()
    assert kl == pytest.approx(-reference.entropy() + log_sphere_area(m), rel=1e-8)


def test_the_kl_against_numerical_integration_on_the_two_sphere():
    # On S², w = μᵀz has density κ e^{κw} / (2 sinh κ) under vMF and 1/2 under the uniform distribution, and
    # the direction orthogonal to μ is uniform under both: the KL is that of the w-marginals.
    for kappa in (0.5, 4.0, 30.0):
        def integrand(w):
            f = kappa * math.exp(kappa * w) / (2.0 * math.sinh(kappa))
            return f * math.log(f / 0.5)
        expected, _ = integrate.quad(integrand, -1.0, 1.0, limit=200)
        ours = kl_to_uniform(torch.tensor([kappa], dtype=torch.float64), 3).item()
        assert ours == pytest.approx(expected, rel=1e-7)
    assert log_sphere_area(3) == pytest.approx(math.log(4 * math.pi))


def test_log_bessel_and_its_gradient():
    kappa = torch.tensor([0.3, 2.0, 25.0, 900.0], dtype=torch.float64, requires_grad=True)
    for order in (0.5, 1.0, 7.0, 31.5):
        values = log_bessel_i(order, kappa)
        expected = np.log(special.ive(order, kappa.detach().numpy())) + kappa.detach().numpy()
        np.testing.assert_allclose(values.detach().numpy(), expected, rtol=1e-10)
        assert torch.autograd.gradcheck(lambda k: log_bessel_i(order, k), (kappa,), eps=1e-6, atol=1e-6)
    # where ive underflows (a high order at a small κ): the series' first term, finite
    tiny = log_bessel_i(300.0, torch.tensor([0.01], dtype=torch.float64)).item()
    assert special.ive(300.0, 0.01) == 0.0
    assert tiny == pytest.approx(300 * math.log(0.005) - special.gammaln(301.0), rel=1e-9)


@pytest.mark.parametrize("m, kappa", [(3, 1.0), (5, 10.0), (16, 40.0), (64, 5.0)])
def test_wood_s_sampler_has_the_closed_form_mean_resultant_length(m, kappa):
    n = 100_000
    w = wood_w(torch.full((n, 1), kappa, dtype=torch.float64), m, torch_generator(0, "wood", m))
    expected = special.ive(m / 2, kappa) / special.ive(m / 2 - 1, kappa)
    assert float(mean_resultant_length(torch.tensor([kappa], dtype=torch.float64), m)) == pytest.approx(expected)
    standard_error = float(w.std()) / math.sqrt(n)
    assert abs(float(w.mean()) - expected) < 4 * standard_error
    assert float(w.min()) >= -1.0 and float(w.max()) <= 1.0


def test_draws_match_scipy_s_sampler():
    m, kappa = 5, 8.0
    mu = _unit(m, 2)
    mean = torch.tensor(mu).expand(20_000, m)
    log_kappa = torch.full((20_000, m), math.log(kappa), dtype=torch.float64)
    ours = VonMisesFisherPosterior.sample(mean, log_kappa, torch_generator(1, "vmf")).numpy()
    theirs = stats.vonmises_fisher(mu, kappa).rvs(20_000, random_state=3)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-12)
    # the same law along μ (w) and along a direction orthogonal to it
    other = _unit(m, 4) - mu * (_unit(m, 4) @ mu)
    other /= np.linalg.norm(other)
    for axis in (mu, other):
        assert stats.ks_2samp(ours @ axis, theirs @ axis).pvalue > 0.001
    np.testing.assert_allclose(ours.mean(0), theirs.mean(0), atol=0.02)


def test_the_householder_reflection_takes_e1_to_the_direction():
    direction = torch.tensor(_unit(6, 5))
    e1 = torch.zeros(6, dtype=torch.float64)
    e1[0] = 1.0
    torch.testing.assert_close(householder_to(direction, e1), direction)
    x = torch.randn(4, 6, dtype=torch.float64)
    torch.testing.assert_close(householder_to(direction, x).norm(dim=1), x.norm(dim=1))
    torch.testing.assert_close(householder_to(e1, x), x)  # μ = e₁: nothing to reflect


def test_the_reparameterised_gradient_s_bias_is_small():
    # g_rep alone (the correction for the acceptance step is not computed): d/dκ E[w] against the exact dA/dκ
    m, n = 16, 200_000
    for kappa_value in (5.0, 40.0):
        kappa = torch.full((n, 1), kappa_value, dtype=torch.float64, requires_grad=True)
        wood_w(kappa, m, torch_generator(2, "grad")).mean().backward()
        estimate = float(kappa.grad.sum())
        k = torch.tensor([kappa_value], dtype=torch.float64, requires_grad=True)
        mean_resultant_length(k, m).backward()
        exact = float(k.grad)
        assert estimate == pytest.approx(exact, rel=0.05), (kappa_value, estimate, exact)


def test_the_model_s_codes_are_on_the_sphere_and_its_prior_uniform():
    model = build_model(ModelConfig(objective="svae", hidden=16, latent=4), 0)
    x = torch.rand(6, 1, 28, 28, generator=torch_generator(0, "x"))
    mean, log_kappa = model.encode(x)
    torch.testing.assert_close(mean.norm(dim=1), torch.ones(6))
    assert log_kappa.shape == mean.shape and bool((log_kappa.exp() >= 1.0).all())  # κ = softplus + 1
    draws = model.sample_prior(20_000, torch_generator(3, "prior"))
    torch.testing.assert_close(draws.norm(dim=1), torch.ones(20_000))
    assert float(draws.mean(0).abs().max()) < 0.02
    terms = model.objective(model, x, x, torch_generator(4, "noise"))
    kl = kl_to_uniform(log_kappa[:, :1].exp().double(), 4).mean()
    assert terms["kl"].item() == pytest.approx(kl.item(), rel=1e-5)


@pytest.mark.parametrize("values, message", [
    ({"latent": 1}, "needs 2 or more"),
    ({"prior": "mog"}, "its prior is the uniform distribution on the sphere"),
    ({"beta": 2.0}, "beta applies to the vae, btcvae, cvae objectives only, not svae"),
])
def test_settings_it_does_not_have_are_refused_in_one_line(values, message):
    with pytest.raises(ConfigError, match=message):
        build_config({"model": {"objective": "svae", **values}})


def test_training_lowers_the_loss(tiny_idx_folder, tmp_path):
    first, last = first_and_last_epoch("svae", tiny_idx_folder, tmp_path / "svae")
    assert last["train_loss"] < first["train_loss"] and last["test_recon"] < first["test_recon"]


def test_a_killed_run_resumes_bit_for_bit(tiny_idx_folder, tmp_path):
    assert_resumes_bit_for_bit("svae", tiny_idx_folder, tmp_path)
