"""Shapes of every encoder/decoder pair, and the loss terms against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from vaelab.config import ModelConfig
from vaelab.models import build_model
from vaelab.models.distributions import kl_standard_normal as kl_per_dimension, reparameterize
from vaelab.models.distributions import bce_per_example
from vaelab.seeding import torch_generator


@pytest.mark.parametrize("encoder", ["mlp", "conv"])
@pytest.mark.parametrize("decoder", ["mlp", "conv"])
@pytest.mark.parametrize("objective", ["ae", "vae"])
def test_every_encoder_decoder_pair_has_the_right_shapes(encoder, decoder, objective):
    model = build_model(ModelConfig(encoder=encoder, decoder=decoder, objective=objective, latent=7, hidden=32), 0)
    x = torch.rand(5, 1, 28, 28)
    mean, logvar = model.encode(x)
    assert mean.shape == (5, 7)
    assert (logvar is None) == (objective == "ae")
    if logvar is not None:
        assert logvar.shape == (5, 7)
    assert model.decode(mean).shape == (5, 1, 28, 28)
    images = model.reconstruct(x)
    assert images.shape == (5, 1, 28, 28) and images.min() >= 0 and images.max() <= 1
    terms = model.objective(model, x, x, torch_generator(0, "t"))
    assert set(terms) == set(model.objective.terms)


def test_conv_encoder_follows_the_thesis_layer_by_layer():
    model = build_model(ModelConfig(encoder="conv", decoder="conv"), 0)
    convs = [m for m in model.encoder.trunk if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs] == [
        (32, 5, 1), (32, 5, 2), (64, 5, 1), (64, 5, 2), (128, 7, 1)]
    sizes, h = [], torch.zeros(1, 1, 28, 28)
    for layer in model.encoder.trunk:
        h = layer(h)
        if isinstance(layer, torch.nn.Conv2d):
            sizes.append(h.shape[-1])
    assert sizes == [28, 14, 14, 7, 1]
    slopes = {m.negative_slope for m in model.modules() if isinstance(m, torch.nn.LeakyReLU)}
    assert slopes == {0.3}


def test_conv_decoder_follows_the_thesis_layer_by_layer():
    model = build_model(ModelConfig(encoder="conv", decoder="conv"), 0)
    sizes, channels, h = [], [], torch.zeros(1, 16)
    for layer in model.decoder.net:
        h = layer(h)
        if isinstance(layer, (torch.nn.ConvTranspose2d, torch.nn.Conv2d)):
            sizes.append(h.shape[-1])
            channels.append(h.shape[1])
    assert sizes == [7, 7, 14, 14, 28, 28, 28]
    assert channels == [64, 64, 64, 32, 32, 32, 1]


def test_kl_matches_a_hand_computed_case():
    mean = torch.tensor([[1.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(2.0)]])
    # 0.5 * (mu^2 + sigma^2 - 1 - log sigma^2) per dimension
    expected = [0.5 * (1 + 1 - 1 - 0), 0.5 * (0 + 2 - 1 - math.log(2))]
    assert kl_per_dimension(mean, logvar)[0].tolist() == pytest.approx(expected)


def test_kl_of_the_prior_is_zero():
    assert kl_per_dimension(torch.zeros(3, 4), torch.zeros(3, 4)).abs().max() == 0


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


def test_vae_loss_is_recon_plus_beta_times_kl_averaged_over_the_batch():
    model = build_model(ModelConfig(objective="vae", beta=4.0, hidden=16, latent=3), 0)
    x = torch.rand(6, 1, 28, 28)
    terms = model.objective(model, x, x, torch_generator(0, "noise"))
    torch.testing.assert_close(terms["loss"], terms["recon"] + 4.0 * terms["kl"])
    mean, logvar = model.encode(x)
    torch.testing.assert_close(terms["kl"], kl_per_dimension(mean, logvar).sum(1).mean())
    z = reparameterize(mean, logvar, torch_generator(0, "noise"))
    torch.testing.assert_close(terms["recon"], bce_per_example(model.decode(z), x).mean())


def test_ae_loss_is_the_reconstruction_alone():
    model = build_model(ModelConfig(objective="ae", hidden=16, latent=3), 0)
    x = torch.rand(6, 1, 28, 28)
    terms = model.objective(model, x, x)
    assert set(terms) == {"loss", "recon"}
    torch.testing.assert_close(terms["loss"], bce_per_example(model.decode(model.encode(x)[0]), x).mean())


def test_reparameterization_uses_mean_and_half_logvar():
    mean, logvar = torch.tensor([[2.0]]), torch.tensor([[math.log(9.0)]])
    eps = torch.randn((1, 1), generator=torch_generator(5, "eps"))
    z = reparameterize(mean, logvar, torch_generator(5, "eps"))
    assert z.item() == pytest.approx(2.0 + 3.0 * eps.item())


def test_same_seed_shares_decoder_init_across_objectives_and_encoders():
    ae = build_model(ModelConfig(objective="ae"), 7)
    vae = build_model(ModelConfig(objective="vae"), 7)
    convenc = build_model(ModelConfig(encoder="conv", decoder="mlp", objective="vae"), 7)
    for other in (vae, convenc):
        for a, b in zip(ae.decoder.state_dict().values(), other.decoder.state_dict().values()):
            assert torch.equal(a, b)
    for a, b in zip(ae.encoder.trunk.state_dict().values(), vae.encoder.trunk.state_dict().values()):
        assert torch.equal(a, b)
    assert torch.equal(ae.encoder.heads.mean.weight, vae.encoder.heads.mean.weight)
    different = build_model(ModelConfig(objective="ae"), 8)
    assert not torch.equal(ae.decoder.net[0].weight, different.decoder.net[0].weight)


def test_building_a_model_does_not_touch_the_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_model(ModelConfig(), 0)
    assert torch.equal(torch.rand(3), expected)


def test_conv_parts_refuse_images_whose_sides_do_not_halve_twice():
    from vaelab.errors import ConfigError

    with pytest.raises(ConfigError, match="images are 30x30: use --encoder mlp --decoder mlp"):
        build_model(ModelConfig(encoder="conv", decoder="mlp"), 0, image_shape=(1, 30, 30))
    model = build_model(ModelConfig(encoder="mlp", decoder="mlp", hidden=8, latent=2), 0, image_shape=(1, 32, 32))
    assert model.decode(torch.zeros(1, 2)).shape == (1, 1, 32, 32)
