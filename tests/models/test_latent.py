"""build_model and LatentModel (vaelab.models.latent): every encoder/decoder pair, the thesis's conv layers, seeding."""

from __future__ import annotations


import pytest
import torch

from vaelab.config import ModelConfig
from vaelab.models import build_model
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
