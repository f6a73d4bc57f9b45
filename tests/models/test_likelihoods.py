"""Likelihoods for natural images (Gaussian with a fixed or learned scale, continuous Bernoulli) against
scipy and numerical integration; bits per dimension; identities of runs made before the setting existed."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from vaelab.config import build_config, config_hash
from vaelab.models import build_model
from vaelab.config import ModelConfig
from vaelab.models.distributions import ContinuousBernoulliLikelihood, GaussianLikelihood, make_likelihood


def test_the_gaussian_likelihood_is_scipy_s_normal_density():
    rng = np.random.default_rng(0)
    logits, x = rng.normal(size=(2, 3, 4, 4)), rng.uniform(size=(2, 3, 4, 4))
    likelihood = GaussianLikelihood(3, learned=True)
    with torch.no_grad():
        likelihood.log_scale.copy_(torch.log(torch.tensor([0.1, 0.2, 0.5])))
    ours = likelihood.log_prob(torch.tensor(logits), torch.tensor(x)).detach().numpy()
    scales = np.array([0.1, 0.2, 0.5]).reshape(1, 3, 1, 1)
    oracle = stats.norm.logpdf(x, loc=1 / (1 + np.exp(-logits)), scale=scales).reshape(2, -1).sum(1)
    assert np.allclose(ours, oracle, rtol=1e-5)
    fixed = make_likelihood("gaussian", 1)
    assert "log_scale" not in dict(fixed.named_parameters()) and fixed.log_scale.exp().item() == pytest.approx(0.1)


def test_the_continuous_bernoulli_is_a_density_with_the_papers_constant():
    for logit in (-2.0, 0.3, 0.0, 4.0):
        lam = 1 / (1 + math.exp(-logit))

        def density(x: float) -> float:
            return math.exp(ContinuousBernoulliLikelihood.log_prob(torch.tensor([[logit]]), torch.tensor([[x]])).item())

        assert integrate.quad(density, 0, 1)[0] == pytest.approx(1.0, abs=1e-5)  # a proper density on [0, 1]
        mean = integrate.quad(lambda x: x * density(x), 0, 1)[0]
        assert ContinuousBernoulliLikelihood.mean(torch.tensor([[logit]])).item() == pytest.approx(mean, abs=1e-5)
        if abs(lam - 0.5) > 1e-6:  # the constant C(lambda) = 2 artanh(1 - 2 lambda) / (1 - 2 lambda)
            c = 2 * math.atanh(1 - 2 * lam) / (1 - 2 * lam)
            x = 0.3
            hand = math.log(c) + x * math.log(lam) + (1 - x) * math.log(1 - lam)
            assert math.log(density(x)) == pytest.approx(hand, abs=1e-5)


def test_a_learned_scale_trains_saves_and_loads(tiny_idx_folder, tmp_path):
    import vaelab

    run = vaelab.train("vae", out=tmp_path / "g", dataset=f"idx:{tiny_idx_folder}", epochs=2, hidden=16, latent=3,
                       likelihood="gaussian-learned", precision="fp32")
    learned = run.model.likelihood.log_scale.detach().clone()
    assert not torch.allclose(learned, torch.full_like(learned, math.log(0.1)))  # it moved
    assert torch.equal(vaelab.load(tmp_path / "g", device="cpu").model.likelihood.log_scale, learned)


@pytest.mark.parametrize("likelihood", ["gaussian", "continuous-bernoulli"])
def test_continuous_likelihoods_report_bits_per_dimension(likelihood):
    from vaelab.analysis.likelihood import likelihood_measures

    model = build_model(ModelConfig(hidden=16, latent=3, likelihood=likelihood), 0, (1, 6, 6))
    images = torch.rand(10, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    values = likelihood_measures(model, images, seed=0, k=20)
    assert "nll_iwae_binarized" not in values and values["nll_iwae"] <= values["neg_elbo"] + 1e-3
    assert values["nll_iwae_bpd"] == pytest.approx(values["nll_iwae"] / (36 * math.log(2)) + 8)
    decoded = model.decode_images(torch.zeros(2, 3)).detach()
    assert decoded.shape == (2, 1, 6, 6) and float(decoded.min()) >= 0 and float(decoded.max()) <= 1


def test_a_run_written_before_likelihoods_existed_still_loads_as_bernoulli(tiny_idx_folder, tmp_path):
    import json

    import vaelab

    vaelab.train("vae", out=tmp_path / "old", dataset=f"idx:{tiny_idx_folder}", epochs=1, hidden=16, latent=3)
    path = tmp_path / "old" / "model.json"
    info = json.loads(path.read_text())
    del info["config"]["model"]["likelihood"]  # model.json as vaelab wrote it before the setting
    info["identity"] = config_hash(info["config"])
    path.write_text(json.dumps(info))
    run = vaelab.load(tmp_path / "old", device="cpu")
    assert run.config.model.likelihood == "bernoulli" and run.model.likelihood.name == "bernoulli"
    assert build_config({"model": {"likelihood": "gaussian"}}).identity() != build_config({}).identity()


def test_the_cli_trains_with_a_continuous_likelihood(tiny_idx_folder, tmp_path):
    from tests.conftest import run_cli

    result = run_cli("train", "--dataset", f"idx:{tiny_idx_folder}", "--likelihood", "continuous-bernoulli",
                     "--epochs", "1", "--hidden", "16", "--latent", "3", "--quiet", "--out", str(tmp_path / "cb"))
    assert result.returncode == 0, result.stderr
    result = run_cli("train", "--likelihood", "poisson", "--out", str(tmp_path / "x"))
    assert result.returncode == 2 and "likelihood" in result.stderr and result.stderr.count("\n") == 1
