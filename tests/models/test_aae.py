"""The AAE (vaelab.models.aae): its losses on a hand-computed batch, which part each loss trains, the
clustering form's code, clusters and prior (against scipy), the settings it refuses, and runs that lower
their loss and resume bit for bit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from tests.models.conftest import SMALL, assert_resumes_bit_for_bit, first_and_last_epoch
from vaelab.config import ModelConfig, build_config
from vaelab.errors import ConfigError
from vaelab.models import PRESETS, build_model
from vaelab.models.aae import CategoricalStylePrior
from vaelab.models.distributions import bce_per_example
from vaelab.seeding import torch_generator


def _images(n: int, name: str = "x") -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch_generator(0, name))


def _cross_entropy_by_hand(logits: torch.Tensor, target: int) -> torch.Tensor:
    # -log softmax(logits)[target], written out
    return -(logits[:, target] - torch.log(torch.exp(logits).sum(1))).mean()


@pytest.mark.parametrize("clusters", [0, 4])
def test_the_losses_on_a_hand_computed_batch(clusters):
    settings = ModelConfig(objective="aae", adversarial_weight=0.3, clusters=clusters, **SMALL)
    model = build_model(settings, 0)
    x = _images(6)
    terms = model.objective(model, x, x, torch_generator(1, "noise"))
    code = model.encode(x)[0].detach()
    draws = model.sample_prior(6, torch_generator(1, "noise"))  # the same draws, replayed from the seed
    recon = bce_per_example(model.decode(code), x).mean()
    k = clusters
    with torch.no_grad():
        fool = _cross_entropy_by_hand(model.discriminator(code[:, k:]), 0)
        told = (_cross_entropy_by_hand(model.discriminator(draws[:, k:]), 0)
                + _cross_entropy_by_hand(model.discriminator(code[:, k:]), 1)) / 2  # the mean over both halves
        if k:
            fool = fool + _cross_entropy_by_hand(model.cluster_discriminator(code[:, :k]), 0)
            told = told + (_cross_entropy_by_hand(model.cluster_discriminator(draws[:, :k]), 0)
                           + _cross_entropy_by_hand(model.cluster_discriminator(code[:, :k]), 1)) / 2
    torch.testing.assert_close(terms["recon"], recon)
    torch.testing.assert_close(terms["adversarial"].detach(), fool)
    torch.testing.assert_close(terms["discriminator"].detach(), told)
    torch.testing.assert_close(terms["loss"].detach(), recon.detach() + 0.3 * fool + told)


def _grads(module: torch.nn.Module) -> float:
    return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)


@pytest.mark.parametrize("clusters", [0, 3])
def test_each_side_learns_from_its_own_loss_only(clusters):
    model = build_model(ModelConfig(objective="aae", clusters=clusters, **SMALL), 0)
    x = _images(8)
    discriminators = [model.discriminator] + ([model.cluster_discriminator] if clusters else [])
    model.objective(model, x, x, torch_generator(2, "noise"))["adversarial"].backward()
    assert _grads(model.encoder) > 0 and all(_grads(d) == 0 for d in discriminators)
    model.zero_grad(set_to_none=True)
    model.objective(model, x, x, torch_generator(2, "noise"))["discriminator"].backward()
    assert _grads(model.encoder) == 0 and _grads(model.decoder) == 0
    assert all(_grads(d) > 0 for d in discriminators)
    groups = model.objective.param_groups(model)
    assert len(groups) == 2 and groups[1]["betas"] == (0.5, 0.9)
    assert {id(p) for p in groups[1]["params"]} == {id(p) for d in discriminators for p in d.parameters()}


def test_the_clustering_form_s_code_clusters_and_prior():
    model = build_model(ModelConfig(objective="aae", clusters=4, latent=2, hidden=16), 0)
    x = _images(10)
    code = model.encode(x)[0]
    assert code.shape == (10, 6)  # 4 cluster probabilities, then 2 style dimensions
    torch.testing.assert_close(code[:, :4].sum(1), torch.ones(10))
    assert model.has_clusters and torch.equal(model.clusters(x), code[:, :4].argmax(1))
    assert model.decode(code).shape == (10, 1, 28, 28)
    draws = model.sample_prior(4000, torch_generator(3, "prior"))
    onehots = draws[:, :4]
    assert torch.equal(onehots.sum(1), torch.ones(4000)) and set(onehots.unique().tolist()) == {0.0, 1.0}
    assert np.allclose(onehots.mean(0).numpy(), 0.25, atol=0.03)  # uniform over the clusters
    assert abs(float(draws[:, 4:].mean())) < 0.05 and abs(float(draws[:, 4:].std()) - 1.0) < 0.05
    assert not build_model(ModelConfig(objective="aae", **SMALL), 0).has_clusters


def test_the_categorical_style_prior_s_density_against_scipy():
    prior = CategoricalStylePrior(clusters=3, latent=2)
    codes = torch.tensor([[1.0, 0.0, 0.0, 0.3, -1.2], [0.0, 0.0, 1.0, 2.0, 0.5]], dtype=torch.float64)
    expected = [-math.log(3) + stats.multivariate_normal(np.zeros(2), np.eye(2)).logpdf(row[3:]) for row in
                codes.numpy()]
    np.testing.assert_allclose(prior.log_prob(codes).numpy(), expected, rtol=1e-12)


def test_it_alternates_the_paper_s_three_steps_unless_told_to_train_jointly():
    alternating = build_model(ModelConfig(objective="aae", clusters=2, **SMALL), 0)
    phases = alternating.objective.phases(alternating)
    assert [phase.term for phase in phases] == ["recon", "discriminator", "adversarial"]
    critics = {id(p) for d in (alternating.discriminator, alternating.cluster_discriminator) for p in d.parameters()}
    assert {id(p) for p in phases[1].params} == critics and phases[1].betas == (0.5, 0.9)
    assert not critics & {id(p) for p in phases[0].params}
    assert {id(p) for p in phases[2].params} == {id(p) for p in alternating.encoder.parameters()}
    joint = build_model(ModelConfig(objective="aae", training="joint", **SMALL), 0)
    assert joint.objective.phases(joint) == []


def test_its_presets_and_how_they_are_described():
    assert PRESETS["aae"] == {"encoder": "mlp", "decoder": "mlp", "objective": "aae", "prior": "normal"}
    assert PRESETS["aae-cluster"]["clusters"] == 16
    assert ModelConfig(objective="aae").describe() == "aae λ=1"
    assert ModelConfig(objective="aae", clusters=16).describe() == "aae λ=1 (16 clusters)"
    assert not build_model(ModelConfig(objective="aae", **SMALL), 0).objective.stochastic


@pytest.mark.parametrize("values, message", [
    ({"prior": "mog"}, "the aae model takes the prior normal, not mog: its discriminator matches the codes"),
    ({"clusters": -1}, "clusters"),
    ({"adversarial_weight": -1.0}, "adversarial_weight"),
    ({"beta": 2.0}, "beta applies to the vae, btcvae, cvae objectives only, not aae"),
])
def test_settings_it_does_not_have_are_refused_in_one_line(values, message):
    with pytest.raises(ConfigError, match=message):
        build_config({"model": {"objective": "aae", **values}})


@pytest.mark.parametrize("preset", ["aae", "aae-cluster"])
def test_training_lowers_the_reconstruction_loss(preset, tiny_idx_folder, tmp_path):
    first, last = first_and_last_epoch(preset, tiny_idx_folder, tmp_path / preset)
    assert set(first) >= {"train_loss", "train_recon", "train_adversarial", "train_discriminator", "test_recon"}
    assert last["train_recon"] < first["train_recon"] and last["test_recon"] < first["test_recon"]


@pytest.mark.parametrize("preset, training", [("aae", "alternating"), ("aae-cluster", "alternating"),
                                               ("aae", "joint")])
def test_a_killed_run_resumes_bit_for_bit(preset, training, tiny_idx_folder, tmp_path):
    assert_resumes_bit_for_bit(preset, tiny_idx_folder, tmp_path, training=training)


def test_a_sigmoid_cross_entropy_reading_of_the_two_logits():
    # The two-logit discriminator is a one-logit one on their difference: -log softmax(l)[0] = softplus(l1 - l0)
    logits = torch.tensor([[0.3, -1.1], [2.0, 0.5]])
    torch.testing.assert_close(_cross_entropy_by_hand(logits, 0), F.softplus(logits[:, 1] - logits[:, 0]).mean())
