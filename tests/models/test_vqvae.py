"""The VQ-VAE (vaelab.models.vqvae): the nearest-vector search against brute force, the straight-through
gradient, the loss by hand, the EMA update against numpy, perplexity against scipy, its codebook measures,
the settings it refuses, and runs that lower their loss and resume bit for bit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from tests.models.conftest import assert_resumes_bit_for_bit, first_and_last_epoch
from vaelab.config import ModelConfig, build_config
from vaelab.errors import ConfigError
from vaelab.models import PRESETS, build_model
from vaelab.models.distributions import bce_per_example
from vaelab.models.vqvae import LAPLACE_EPSILON, Codebook, perplexity
from vaelab.seeding import torch_generator

VQ = dict(hidden=16, latent=4, code_dim=2, codebook_size=8)


def _images(n: int) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch_generator(0, "x"))


def test_the_nearest_vector_is_the_brute_force_argmin():
    codebook = Codebook(16, 3, ema=False, decay=0.99)
    with torch.no_grad():
        codebook.vectors.copy_(torch.randn(16, 3, generator=torch_generator(1, "book")))
    z = torch.randn(10, 12, generator=torch_generator(2, "z"))  # 4 positions of 3 dimensions
    indices = codebook.nearest(z)
    vectors, positions = codebook.vectors.detach().numpy(), z.numpy().reshape(10, 4, 3)
    expected = np.linalg.norm(positions[:, :, None, :] - vectors[None, None], axis=-1).argmin(-1)
    assert np.array_equal(indices.numpy(), expected)
    torch.testing.assert_close(codebook.lookup(indices), torch.tensor(vectors[expected].reshape(10, 12)))


def test_the_straight_through_gradient_is_the_identity_s():
    # d/dz_e f(z_e + sg[z_q - z_e]) equals f's gradient at z_q: the quantisation is skipped backwards
    z_e = torch.randn(5, 4, requires_grad=True)
    z_q = torch.randn(5, 4)
    weights = torch.randn(4, 3)

    def f(z):
        return torch.tanh(z @ weights).pow(2).sum()

    f(z_e + (z_q - z_e).detach()).backward()
    at_z_q = z_q.clone().requires_grad_(True)
    f(at_z_q).backward()
    torch.testing.assert_close(z_e.grad, at_z_q.grad)


@pytest.mark.parametrize("update", ["loss", "ema"])
def test_the_loss_by_hand(update):
    model = build_model(ModelConfig(objective="vqvae", commitment=0.3, codebook_update=update, **VQ), 0)
    model.eval()  # no EMA step, so the codebook below is the one the loss used
    x = _images(6)
    terms = model.objective(model, x, x)
    z_e = model.encoder.continuous(x).detach()
    z_q = model.encoder.codebook.lookup(model.encoder.codebook.nearest(z_e)).detach()
    distance = ((z_e - z_q) ** 2).sum(1).mean()
    recon = bce_per_example(model.decode(z_q), x).mean()
    torch.testing.assert_close(terms["recon"].detach(), recon.detach())
    torch.testing.assert_close(terms["codebook"].detach(), distance)
    torch.testing.assert_close(terms["commitment"].detach(), distance)
    codebook_term = distance if update == "loss" else 0.0  # with EMA the codebook is not trained by its term
    torch.testing.assert_close(terms["loss"].detach(), recon.detach() + codebook_term + 0.3 * distance)
    # the codes every measure reads are the quantised ones
    torch.testing.assert_close(model.encode(x)[0].detach(), z_q)


def test_the_codebook_and_commitment_terms_train_what_they_should():
    model = build_model(ModelConfig(objective="vqvae", **VQ), 0)
    x = _images(6)
    model.objective(model, x, x)["codebook"].backward()
    assert model.encoder.codebook.vectors.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.encoder.trunk.parameters())  # sg[z_e]: not the encoder
    model.zero_grad(set_to_none=True)
    model.objective(model, x, x)["commitment"].backward()
    assert model.encoder.codebook.vectors.grad is None  # sg[z_q]: not the codebook
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.trunk.parameters())


def test_the_ema_update_against_numpy():
    decay, size, dim = 0.9, 4, 2
    codebook = Codebook(size, dim, ema=True, decay=decay)
    codebook.reset_parameters()
    start = codebook.vectors.clone().numpy()
    rng = np.random.default_rng(0)
    counts, sums = np.zeros(size), np.zeros((size, dim))
    for step in (1, 2):
        z = rng.normal(size=(6, dim)).astype(np.float32)
        assigned = np.array([0, 0, 1, 1, 1, 0] if step == 1 else [1, 2, 2, 1, 1, 1])
        codebook.ema_update(torch.tensor(z), torch.tensor(assigned))
        counts = decay * counts + (1 - decay) * np.bincount(assigned, minlength=size)
        sums = decay * sums + (1 - decay) * np.stack([z[assigned == i].sum(0) for i in range(size)])
        debiased_counts, debiased_sums = counts / (1 - decay ** step), sums / (1 - decay ** step)
        n = debiased_counts.sum()
        smoothed = (debiased_counts + LAPLACE_EPSILON) / (n + size * LAPLACE_EPSILON) * n
    expected = start.copy()
    for i in range(size):
        if debiased_counts[i] > 0:
            expected[i] = debiased_sums[i] / smoothed[i]
    np.testing.assert_allclose(codebook.vectors.numpy(), expected, rtol=1e-5)
    np.testing.assert_array_equal(codebook.vectors.numpy()[3], start[3])  # never assigned: not moved


def test_perplexity_against_scipy_and_its_bounds():
    indices = torch.tensor([0, 0, 1, 2, 2, 2, 5, 5])
    frequencies = np.bincount(indices.numpy(), minlength=8) / 8
    assert float(perplexity(indices, 8)) == pytest.approx(math.exp(stats.entropy(frequencies)), rel=1e-6)
    assert float(perplexity(torch.arange(8), 8)) == pytest.approx(8.0)
    assert float(perplexity(torch.zeros(5, dtype=torch.long), 8)) == pytest.approx(1.0)


def test_its_codebook_measures_and_prior():
    model = build_model(ModelConfig(objective="vqvae", **VQ), 0)
    vectors = model.encoder.codebook.vectors.detach()
    codes = torch.cat([vectors[[0, 0, 3, 3]].reshape(2, 4), vectors[[1, 1, 1, 1]].reshape(2, 4)]).numpy()
    measures = model.objective.code_measures(model, codes)
    assert measures["codebook_usage"] == pytest.approx(3 / 8)
    frequencies = np.array([2, 4, 0, 2, 0, 0, 0, 0]) / 8
    assert measures["codebook_perplexity"] == pytest.approx(math.exp(stats.entropy(frequencies)), rel=1e-6)
    draws = model.sample_prior(4000, torch_generator(4, "prior"))
    assert draws.shape == (4000, 4) and not draws.requires_grad
    drawn = model.encoder.codebook.nearest(draws)
    torch.testing.assert_close(model.encoder.codebook.lookup(drawn), draws)  # codebook vectors only
    assert np.allclose(np.bincount(drawn.reshape(-1).numpy(), minlength=8) / 8000, 1 / 8, atol=0.02)
    indices, book = model.objective.quantised(model, codes)
    np.testing.assert_array_equal(book, vectors.numpy())
    np.testing.assert_array_equal(indices, [[0, 0], [3, 3], [1, 1], [1, 1]])  # each position's vector


def test_an_ema_codebook_is_seeded_like_every_part_and_starts_as_sonnet_s():
    a = build_model(ModelConfig(objective="vqvae", codebook_update="ema", **VQ), 0).encoder.codebook.vectors
    b = build_model(ModelConfig(objective="vqvae", codebook_update="ema", **VQ), 0).encoder.codebook.vectors
    assert torch.equal(a, b) and a.abs().sum() > 0
    large = dict(VQ, codebook_size=4096, code_dim=2)
    ema = build_model(ModelConfig(objective="vqvae", codebook_update="ema", **large), 0).encoder.codebook.vectors
    assert abs(float(ema.mean())) < 0.05 and abs(float(ema.std()) - 1.0) < 0.05  # N(0, 1)
    trained = build_model(ModelConfig(objective="vqvae", **large), 0).encoder.codebook.vectors.detach()
    limit = math.sqrt(3.0 / 2)  # uniform_unit_scaling: ±sqrt(3 / D)
    assert float(trained.abs().max()) <= limit and float(trained.abs().max()) > 0.95 * limit
    assert abs(float(trained.std()) - math.sqrt(1 / 2)) < 0.02  # each vector's squared norm is 1 on average


@pytest.mark.parametrize("values, message", [
    ({"latent": 6, "code_dim": 4}, r"latent \(6\) must be a multiple of code_dim \(4\)"),
    ({"prior": "mog"}, "its prior is uniform over the codebook"),
    ({"codebook_size": 1}, "codebook_size"),
    ({"codebook_update": "kmeans"}, "Input should be 'loss' or 'ema'"),
])
def test_settings_it_does_not_have_are_refused_in_one_line(values, message):
    with pytest.raises(ConfigError, match=message):
        build_config({"model": {"objective": "vqvae", **values}})


def test_its_presets_and_how_they_are_described():
    assert PRESETS["vqvae"] == {"encoder": "mlp", "decoder": "mlp", "objective": "vqvae", "prior": "normal"}
    assert PRESETS["vqvae-ema"]["codebook_update"] == "ema"
    assert ModelConfig(objective="vqvae").describe() == "vqvae β=0.25 (K=512)"
    assert ModelConfig(objective="vqvae", codebook_update="ema").describe() == "vqvae β=0.25 (K=512, EMA)"


@pytest.mark.parametrize("preset", ["vqvae", "vqvae-ema"])
def test_training_lowers_the_reconstruction_loss(preset, tiny_idx_folder, tmp_path):
    first, last = first_and_last_epoch(preset, tiny_idx_folder, tmp_path / preset)
    assert set(first) >= {"train_recon", "train_codebook", "train_commitment", "train_perplexity", "test_recon"}
    assert last["train_recon"] < first["train_recon"] and last["test_recon"] < first["test_recon"]


@pytest.mark.parametrize("preset", ["vqvae", "vqvae-ema"])
def test_a_killed_run_resumes_bit_for_bit(preset, tiny_idx_folder, tmp_path):
    straight = assert_resumes_bit_for_bit(preset, tiny_idx_folder, tmp_path, latent=4, code_dim=2)
    assert ("encoder.codebook.counts" in straight.model.state_dict()) == (preset == "vqvae-ema")  # the EMA's running sums travel
