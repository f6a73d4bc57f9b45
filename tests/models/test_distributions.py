"""The priors and densities of vaelab.models.distributions against oracles: scipy densities, Bayes' rule,
Monte-Carlo and numerical-integration KLs, the VampPrior's definition; learned priors train, are seeded and resume."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from vaelab.config import ModelConfig
from vaelab.models import build_model
from vaelab.models.distributions import (StandardNormalPrior, bce_per_example, kl_standard_normal, log_normal_diag,
                                        reparameterize)
from vaelab.seeding import torch_generator
from tests.models.conftest import SMALL, mixture_prior, one_component_standard_normal


def test_mixture_log_density_and_bayes_rule_match_scipy():
    means, variances, weights = [[0.0, 1.0], [2.0, -1.0], [-1.5, 0.5]], [[1.0, 0.5], [0.3, 2.0], [1.5, 1.5]], \
        [0.2, 0.5, 0.3]
    prior = mixture_prior(means, variances, weights)
    z = torch.tensor([[0.3, -0.2], [1.9, -1.1], [-2.0, 3.0]], dtype=torch.float64)
    joint = np.stack([w * stats.multivariate_normal(m, np.diag(v)).pdf(z.numpy())
                      for m, v, w in zip(means, variances, weights)], axis=1)
    with torch.no_grad():
        np.testing.assert_allclose(prior.log_prob(z).numpy(), np.log(joint.sum(1)), rtol=1e-5)
        # VaDE's q(c|x) at z is p(c|z) by Bayes' rule
        np.testing.assert_allclose(prior.responsibilities(z).numpy(), joint / joint.sum(1, keepdims=True), rtol=1e-5)


def test_standard_normal_prior_and_its_closed_form_kl():
    prior = StandardNormalPrior(2)
    z = torch.tensor([[0.5, -1.0]], dtype=torch.float64)
    assert prior.log_prob(z).item() == pytest.approx(stats.norm.logpdf([0.5, -1.0]).sum())
    mean, logvar = torch.tensor([[1.0, 0.0]]), torch.tensor([[math.log(0.25), 0.0]])
    # KL(N(1, 0.25) || N(0, 1)) = 0.5 (0.25 + 1 - 1 - log 0.25); the second dimension is N(0, 1) itself
    expected = 0.5 * (0.25 + 1.0 - 1.0 - math.log(0.25))
    assert prior.kl_per_dimension(mean, logvar)[0].tolist() == pytest.approx([expected, 0.0])


def test_the_monte_carlo_kl_to_a_mixture_matches_numerical_integration():
    # KL(q || p) = int q log(q / p) in one dimension, against the model's one-sample estimate averaged
    prior = mixture_prior([[-1.0], [2.0]], [[0.5], [1.0]], [0.3, 0.7])
    model = build_model(ModelConfig(prior="mog", components=2, hidden=8, latent=1), 0)
    model.prior = prior
    q_mean, q_var = 0.5, 0.4

    def integrand(z):
        log_q = stats.norm.logpdf(z, q_mean, math.sqrt(q_var))
        with torch.no_grad():
            log_p = float(prior.log_prob(torch.tensor([[z]], dtype=torch.float64)))
        return math.exp(log_q) * (log_q - log_p)

    exact, _ = integrate.quad(integrand, -12, 12)
    n = 200_000
    mean = torch.full((n, 1), q_mean, dtype=torch.float64)
    logvar = torch.full((n, 1), math.log(q_var), dtype=torch.float64)
    z = model.posterior.sample(mean, logvar, torch_generator(0, "mc"))
    with torch.no_grad():
        estimate = model.kl(mean, logvar, z)
    assert float(estimate.mean()) == pytest.approx(exact, abs=4 * float(estimate.std()) / math.sqrt(n))


def test_a_one_component_mixture_prior_gives_the_vaes_elbo():
    vae = build_model(ModelConfig(**SMALL), 3)
    mog = build_model(ModelConfig(prior="mog", components=1, **SMALL), 3)
    one_component_standard_normal(mog)
    for a, b in zip(vae.encoder.state_dict().values(), mog.encoder.state_dict().values()):
        assert torch.equal(a, b)  # the same seed gives the same encoder and decoder whatever the prior
    x = torch.rand(64, 1, 28, 28)
    z = torch.randn(64, 3, generator=torch_generator(0, "z"))
    with torch.no_grad():
        torch.testing.assert_close(mog.log_prior(z), vae.log_prior(z))
        vae_terms = vae.objective(vae, x, x, torch_generator(1, "noise"))
        mog_terms = mog.objective(mog, x, x, torch_generator(1, "noise"))
        torch.testing.assert_close(mog_terms["recon"], vae_terms["recon"])  # the same draws
        # the one-sample KL estimate averages to the closed form, here for posteriors far from the prior
        mean = 1.5 * torch.randn(64, 3, generator=torch_generator(2, "mean"))
        logvar = 0.5 * torch.randn(64, 3, generator=torch_generator(2, "logvar"))
        draws = torch.stack([mog.kl(mean, logvar, mog.posterior.sample(mean, logvar, torch_generator(2, "kl", i)))
                             for i in range(400)])
        closed = vae.kl(mean, logvar)
    torch.testing.assert_close(closed, kl_standard_normal(mean, logvar).sum(1))
    error = 4 * float(draws.std()) / math.sqrt(draws.numel())
    assert float(draws.mean()) == pytest.approx(float(closed.mean()), abs=error)


def test_vamp_prior_is_the_mean_posterior_of_its_pseudo_inputs():
    model = build_model(ModelConfig(prior="vamp", components=4, **SMALL), 0)
    z = torch.randn(5, 3, generator=torch_generator(0, "z"), dtype=torch.float64)
    with torch.no_grad():
        mean, logvar = model.encode(torch.nn.functional.hardtanh(model.prior.pseudo_inputs, 0.0, 1.0))
        per_component = torch.stack([log_normal_diag(z, mean[k].double(), logvar[k].double()) for k in range(4)])
        expected = torch.log(per_component.exp().mean(0))
        torch.testing.assert_close(model.log_prior(z), expected)
        draws = model.sample_prior(10, torch_generator(0, "prior"))
    assert draws.shape == (10, 3) and torch.isfinite(draws).all()


def test_a_learned_prior_trains():
    model = build_model(ModelConfig(prior="vamp", components=4, **SMALL), 0)
    before = model.prior.pseudo_inputs.detach().clone()
    x = torch.rand(16, 1, 28, 28)
    model.objective(model, x, x, torch_generator(0, "noise"))["loss"].backward()
    assert model.prior.pseudo_inputs.grad is not None and model.prior.pseudo_inputs.grad.abs().sum() > 0
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    assert not torch.equal(before, model.prior.pseudo_inputs)


@pytest.mark.parametrize("prior", ["mog", "vamp"])
def test_every_part_is_seeded_and_the_global_rng_untouched(prior):
    state = torch.random.get_rng_state()
    a = build_model(ModelConfig(prior=prior, components=3, **SMALL), 5)
    assert torch.equal(state, torch.random.get_rng_state())
    b = build_model(ModelConfig(prior=prior, components=3, **SMALL), 5)
    c = build_model(ModelConfig(prior=prior, components=3, **SMALL), 6)
    prior_a, prior_b, prior_c = (dict(m.prior.named_parameters()) for m in (a, b, c))
    assert prior_a and all(torch.equal(prior_a[k], prior_b[k]) for k in prior_a)
    first = next(iter(prior_a))
    if prior == "vamp" or first == "means":
        assert not torch.equal(prior_a[first], prior_c[first])


def test_a_learned_prior_survives_a_kill_and_resume_bit_for_bit(tiny_idx_folder, tmp_path):
    import vaelab

    options = dict(dataset=f"idx:{tiny_idx_folder}", precision="fp32", hidden=16, latent=3, components=5)
    straight = vaelab.train("vamp", out=tmp_path / "straight", epochs=2, **options)
    vaelab.train("vamp", out=tmp_path / "resumed", epochs=1, **options)  # the "kill" after epoch 1
    resumed = vaelab.train(None, out=tmp_path / "resumed", resume=True, epochs=2)
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert "prior.pseudo_inputs" in straight.model.state_dict()
    loaded = vaelab.load(tmp_path / "straight", device="cpu")
    assert torch.equal(loaded.model.prior.pseudo_inputs, straight.model.prior.pseudo_inputs)


def test_kl_between_diagonal_gaussians_against_scipy_integration():
    from vaelab.models.distributions import kl_diag_gaussians

    mq, vq, mp, vp = 0.3, 0.5, -1.0, 2.0
    exact, _ = integrate.quad(lambda z: stats.norm.pdf(z, mq, math.sqrt(vq)) * (
        stats.norm.logpdf(z, mq, math.sqrt(vq)) - stats.norm.logpdf(z, mp, math.sqrt(vp))), -20, 20)
    value = kl_diag_gaussians(torch.tensor(mq), torch.tensor(math.log(vq)), torch.tensor(mp), torch.tensor(math.log(vp)))
    assert float(value) == pytest.approx(exact, rel=1e-5)


def test_kl_matches_a_hand_computed_case():
    mean = torch.tensor([[1.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(2.0)]])
    # 0.5 * (mu^2 + sigma^2 - 1 - log sigma^2) per dimension
    expected = [0.5 * (1 + 1 - 1 - 0), 0.5 * (0 + 2 - 1 - math.log(2))]
    assert kl_standard_normal(mean, logvar)[0].tolist() == pytest.approx(expected)


def test_kl_of_the_prior_is_zero():
    assert kl_standard_normal(torch.zeros(3, 4), torch.zeros(3, 4)).abs().max() == 0


def test_bce_from_logits_matches_a_hand_computed_case():
    logits = torch.tensor([[0.0, 2.0]])
    target = torch.tensor([[1.0, 0.0]])
    expected = math.log(2.0) + math.log(1.0 + math.exp(2.0))
    assert bce_per_example(logits, target).item() == pytest.approx(expected)


def test_bce_from_logits_agrees_with_bce_on_probabilities_and_stays_finite():
    logits = torch.randn(4, 1, 28, 28, generator=torch_generator(0, "bce"), dtype=torch.float64) * 3
    target = torch.rand(4, 1, 28, 28, generator=torch_generator(1, "bce"), dtype=torch.float64)
    probs = torch.sigmoid(logits)
    oracle = -(target * probs.log() + (1 - target) * (1 - probs).log()).flatten(1).sum(1)
    torch.testing.assert_close(bce_per_example(logits, target), oracle)
    extreme = bce_per_example(torch.full((1, 4), 200.0), torch.zeros(1, 4))
    assert torch.isfinite(extreme).all() and extreme.item() == pytest.approx(800.0)


def test_reparameterization_uses_mean_and_half_logvar():
    mean, logvar = torch.tensor([[2.0]]), torch.tensor([[math.log(9.0)]])
    eps = torch.randn((1, 1), generator=torch_generator(5, "eps"))
    z = reparameterize(mean, logvar, torch_generator(5, "eps"))
    assert z.item() == pytest.approx(2.0 + 3.0 * eps.item())
