"""The probabilistic model's home and the variants (IWAE, VampPrior, mixture prior, β-TCVAE) against oracles:
hand-computed and scipy densities, Monte-Carlo and numerical-integration KLs, Bayes' rule, seeding, resume."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from vaelab.analysis.likelihood import iwae_log_likelihood, model_log_likelihood
from vaelab.config import ModelConfig
from vaelab.errors import ConfigError
from vaelab.models import build_model
from vaelab.models.distributions import MixturePrior, StandardNormalPrior, kl_standard_normal, log_normal_diag
from vaelab.seeding import torch_generator

SMALL = dict(hidden=16, latent=3)


def _mixture(means, variances, weights) -> MixturePrior:
    prior = MixturePrior(len(means[0]), len(means))
    with torch.no_grad():
        prior.means.copy_(torch.tensor(means, dtype=torch.float32))
        prior.logvars.copy_(torch.log(torch.tensor(variances, dtype=torch.float32)))
        prior.logits.copy_(torch.log(torch.tensor(weights, dtype=torch.float32)))
    return prior


def _one_component_standard_normal(model) -> None:
    with torch.no_grad():
        model.prior.means.zero_()
        model.prior.logvars.zero_()


# --- densities ------------------------------------------------------------------------------------


def test_mixture_log_density_and_bayes_rule_match_scipy():
    means, variances, weights = [[0.0, 1.0], [2.0, -1.0], [-1.5, 0.5]], [[1.0, 0.5], [0.3, 2.0], [1.5, 1.5]], \
        [0.2, 0.5, 0.3]
    prior = _mixture(means, variances, weights)
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
    prior = _mixture([[-1.0], [2.0]], [[0.5], [1.0]], [0.3, 0.7])
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
    _one_component_standard_normal(mog)
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


# --- IWAE -----------------------------------------------------------------------------------------


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
            _one_component_standard_normal(model) if name != "vae" else None
            if shift:
                model.prior.means.fill_(shift)
            estimate[name] = iwae_log_likelihood(x, mean, logvar, model_log_likelihood(model), 20,
                                                 torch_generator(0, "iwae"), log_prior=model.log_prior)
    torch.testing.assert_close(estimate["same"], estimate["vae"])
    assert (estimate["shifted"] < estimate["vae"] - 5).all()  # a prior far from the codes: a worse likelihood


# --- β-TCVAE --------------------------------------------------------------------------------------


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


# --- the VampPrior --------------------------------------------------------------------------------


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


# --- seeding, checkpoints, resume -----------------------------------------------------------------


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


# --- settings that do not belong to the model -----------------------------------------------------


@pytest.mark.parametrize("settings, message", [
    (dict(objective="ae", prior="vamp"), "prior applies to the stochastic objectives"),
    (dict(objective="vae", samples=10), "samples applies to the iwae objective only"),
    (dict(prior="normal", components=10), "components applies to the mog and vamp priors only"),
    (dict(objective="iwae", beta=4.0), "beta applies to the vae, btcvae, cvae objectives only, not iwae"),
    (dict(objective="btcvae", prior="mog"), "measured against the factorised prior"),
])
def test_settings_a_model_does_not_use_are_refused(settings, message):
    from vaelab.config import build_config

    with pytest.raises(ConfigError, match=message):
        build_config({"model": settings})


def test_the_cli_trains_a_variant_and_refuses_a_misplaced_setting(tiny_idx_folder, tmp_path):
    from tests.conftest import run_cli

    bad = run_cli("train", "--model", "ae", "--prior", "vamp", "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "prior applies" in bad.stderr
    assert not (tmp_path / "bad").exists()
    good = run_cli("train", "--model", "btcvae", "--dataset", f"idx:{tiny_idx_folder}", "--epochs", "1",
                   "--hidden", "16", "--latent", "3", "--quiet", "--out", str(tmp_path / "run"))
    assert good.returncode == 0, good.stderr
    assert "btcvae" in good.stdout and " tc " in good.stdout


# --- VaDE -----------------------------------------------------------------------------------------


def test_kl_between_diagonal_gaussians_against_scipy_integration():
    from vaelab.models.distributions import kl_diag_gaussians

    mq, vq, mp, vp = 0.3, 0.5, -1.0, 2.0
    exact, _ = integrate.quad(lambda z: stats.norm.pdf(z, mq, math.sqrt(vq)) * (
        stats.norm.logpdf(z, mq, math.sqrt(vq)) - stats.norm.logpdf(z, mp, math.sqrt(vp))), -20, 20)
    value = kl_diag_gaussians(torch.tensor(mq), torch.tensor(math.log(vq)), torch.tensor(mp), torch.tensor(math.log(vp)))
    assert float(value) == pytest.approx(exact, rel=1e-5)


def test_vade_with_one_standard_component_is_the_vae():
    from vaelab.models.vade import Objective as VaDEObjective

    model = build_model(ModelConfig(objective="vade", prior="mog", components=1, **SMALL), 0)
    _one_component_standard_normal(model)
    mean = torch.randn(6, 3, generator=torch_generator(0, "m"))
    logvar = 0.3 * torch.randn(6, 3, generator=torch_generator(0, "v"))
    z = model.posterior.sample(mean, logvar, torch_generator(0, "z"))
    with torch.no_grad():
        torch.testing.assert_close(VaDEObjective.kl(model, mean, logvar, z), kl_standard_normal(mean, logvar).sum(1))


def test_vade_kl_by_hand_with_two_components():
    from vaelab.models.vade import Objective as VaDEObjective

    model = build_model(ModelConfig(objective="vade", prior="mog", components=2, hidden=8, latent=1), 0)
    model.prior = _mixture([[-1.0], [2.0]], [[0.5], [1.0]], [0.3, 0.7])
    mean, logvar, z = torch.tensor([[0.4]]), torch.tensor([[math.log(0.2)]]), torch.tensor([[0.5]])
    joint = np.array([w * stats.norm.pdf(0.5, m, math.sqrt(v)) for m, v, w in ((-1, 0.5, 0.3), (2, 1.0, 0.7))])
    gamma = joint / joint.sum()
    kls = [0.5 * (math.log(v / 0.2) + (0.2 + (0.4 - m) ** 2) / v - 1) for m, v in ((-1, 0.5), (2, 1.0))]
    expected = (gamma * kls).sum() + (gamma * np.log(gamma / np.array([0.3, 0.7]))).sum()
    with torch.no_grad():
        assert float(VaDEObjective.kl(model, mean, logvar, z)) == pytest.approx(expected, rel=1e-5)


def test_vade_stages_pretrain_then_initialise_the_prior_from_a_gmm_and_resume_bit_for_bit(tiny_idx_folder, tmp_path):
    import vaelab
    from sklearn.mixture import GaussianMixture

    from vaelab.data.registry import to_tensor
    from vaelab.seeding import derive_seed
    from vaelab.training.trainer import fit

    options = dict(dataset=f"idx:{tiny_idx_folder}", precision="fp32", hidden=16, latent=2, components=3,
                   pretrain_epochs=2)
    straight = vaelab.train("vade", out=tmp_path / "straight", epochs=3, **options)
    assert [row["train_kl"] for row in straight.history][:2] == [0.0, 0.0]  # the AE stage
    assert straight.history[2]["train_kl"] > 0

    class Killed(Exception):
        pass

    def kill_after_the_ae_stage(row):
        if row["epoch"] == 2:
            raise Killed

    with pytest.raises(Killed):
        fit(straight.config, tmp_path / "resumed", progress=False, on_epoch=kill_after_the_ae_stage)
    pretrained = vaelab.load(tmp_path / "resumed", device="cpu")
    assert len(pretrained.history) == 2
    data = pretrained.load_data()
    with torch.no_grad():
        codes = pretrained.model.encode(to_tensor(data.train_images))[0].double().numpy()
    gmm = GaussianMixture(3, covariance_type="diag", reg_covar=1e-4,
                          random_state=derive_seed(pretrained.config.train.seed, "vade-gmm") % 2**32).fit(codes)
    resumed = vaelab.train(None, out=tmp_path / "resumed", resume=True, epochs=3)
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    # the prior started the VaDE stage at the GMM (one epoch of Adam at lr 1e-3 moves it a little)
    np.testing.assert_allclose(np.sort(resumed.model.prior.means.detach().numpy(), 0), np.sort(gmm.means_, 0),
                               atol=0.05)


def test_vade_needs_a_stage_after_its_pretraining():
    from vaelab.config import build_config

    with pytest.raises(ConfigError, match="must exceed model.pretrain_epochs"):
        build_config({"model": {"objective": "vade", "prior": "mog", "pretrain_epochs": 5}, "train": {"epochs": 5}})


# --- GMVAE ----------------------------------------------------------------------------------------


def test_gmvae_with_one_cluster_is_the_vaes_one_sample_elbo():
    model = build_model(ModelConfig(objective="gmvae", prior="mog", components=1, **SMALL), 0)
    _one_component_standard_normal(model)
    x = torch.rand(8, 1, 28, 28)
    with torch.no_grad():
        terms = model.objective(model, x, x, torch_generator(0, "noise"))
        _, means, logvars = model.encoder.posterior(x)
        z = reparameterize_like(means, logvars, torch_generator(0, "noise"))
        log_lik = model.likelihood.log_prob(model.decode(z[:, 0]), x)
        kl = log_normal_diag(z[:, 0], means[:, 0], logvars[:, 0]) - model.prior.log_prob(z[:, 0])
    assert float(terms["kl_y"]) == pytest.approx(0.0, abs=1e-6) and float(terms["balance"]) == pytest.approx(0, abs=1e-6)
    torch.testing.assert_close(terms["loss"], (-log_lik + kl).mean())


def reparameterize_like(means, logvars, generator):
    from vaelab.models.distributions import reparameterize

    return reparameterize(means, logvars, generator)


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


# --- CVAE -----------------------------------------------------------------------------------------


def test_a_conditional_model_reads_the_labels_and_needs_them():
    model = build_model(ModelConfig(conditional=True, **SMALL), 0, n_classes=4)
    x, labels = torch.rand(6, 1, 28, 28), torch.tensor([0, 1, 2, 3, 0, 1])
    with torch.no_grad():
        mean, logvar = model.encode(x, labels)
        assert mean.shape == (6, 3) and logvar.shape == (6, 3)
        other = model.encode(x, (labels + 1) % 4)[0]
        assert not torch.allclose(mean, other)  # q(z|x,y) depends on y
        z = torch.zeros(2, 3)
        assert not torch.allclose(model.decode(z, torch.tensor([0, 0])), model.decode(z, torch.tensor([1, 1])))
        terms = model.objective(model, x, x, torch_generator(0, "noise"), labels=labels)
    torch.testing.assert_close(terms["loss"], terms["recon"] + terms["kl"])
    with pytest.raises(ValueError, match="pass labels"):
        model.encode(x)


def test_a_conditional_models_iwae_uses_each_images_label():
    from vaelab.analysis.likelihood import _iwae_of_batch

    model = build_model(ModelConfig(conditional=True, **SMALL), 0, n_classes=3)
    x = torch.bernoulli(torch.rand(3, 1, 28, 28), generator=torch_generator(0, "x"))
    labels = torch.tensor([2, 0, 1])
    k = 4096  # one image per chunk, so that a per-image call draws the same numbers
    with torch.no_grad():
        mean, logvar = model.encode(x, labels)
        batch = _iwae_of_batch(model, x, labels, mean, logvar, k, torch_generator(0, "iwae"))
        generator = torch_generator(0, "iwae")
        one_by_one = torch.cat([iwae_log_likelihood(
            x[i:i + 1], mean[i:i + 1], logvar[i:i + 1], model_log_likelihood(model, labels[i].repeat(k)), k,
            generator, log_prior=model.log_prior) for i in range(3)])
    torch.testing.assert_close(batch, one_by_one)


# --- architecture ---------------------------------------------------------------------------------


def test_several_hidden_layers_mirror_in_the_decoder_and_one_equals_hidden():
    deep = build_model(ModelConfig(hidden_layers=(40, 30, 20), latent=5), 0)
    widths = [m.out_features for m in deep.encoder.trunk if isinstance(m, torch.nn.Linear)]
    assert widths == [40, 30, 20]
    assert [m.out_features for m in deep.decoder.net if isinstance(m, torch.nn.Linear)] == [20, 30, 40, 784]
    one = build_model(ModelConfig(hidden_layers=(64,), latent=5), 3).state_dict()
    plain = build_model(ModelConfig(hidden=64, latent=5), 3).state_dict()
    assert one.keys() == plain.keys() and all(torch.equal(one[k], plain[k]) for k in one)
