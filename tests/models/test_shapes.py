"""Any (C, H, W): every encoder/decoder pair at 28, 32 and 64 pixels with 1 or 3 channels, the thesis's
architecture unchanged at 28x28, and a colour data set through training, measures and figures."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vaelab.config import EvalSettings, ModelConfig, build_config
from vaelab.errors import ConfigError
from vaelab.models import build_model


@pytest.mark.parametrize("encoder", ["mlp", "conv"])
@pytest.mark.parametrize("decoder", ["mlp", "conv"])
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 28, 28), (1, 32, 32), (3, 32, 32), (1, 64, 64), (3, 64, 64)])
def test_every_pair_maps_images_to_codes_and_back(encoder, decoder, shape):
    model = build_model(ModelConfig(encoder=encoder, decoder=decoder, latent=4, hidden=32), 0, shape)
    x = torch.rand(2, *shape)
    mean, logvar = model.encode(x)
    assert mean.shape == logvar.shape == (2, 4)
    assert model.decode(mean).shape == (2, *shape)


def test_the_thesis_conv_parts_are_unchanged_at_28x28():
    model = build_model(ModelConfig(encoder="conv", decoder="conv", latent=16), 0, (1, 28, 28))
    last_conv = [m for m in model.encoder.trunk if isinstance(m, torch.nn.Conv2d)][-1]
    assert last_conv.kernel_size == (7, 7) and last_conv.out_channels == 128
    first_deconv = [m for m in model.decoder.net if isinstance(m, torch.nn.ConvTranspose2d)][0]
    assert first_deconv.kernel_size == (7, 7)
    sizes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    assert sizes["encoder.trunk.0.weight"] == (32, 1, 5, 5) and sizes["decoder.net.13.weight"] == (1, 32, 5, 5)
    assert sum(p.numel() for p in model.parameters()) == 944_321  # as before any size was allowed (latent 16)


@pytest.mark.parametrize("shape", [(1, 30, 30), (1, 28, 26), (3, 4, 4)])
def test_conv_parts_need_sides_that_halve_twice(shape):
    with pytest.raises(ConfigError, match="sides must divide by 4"):
        build_model(ModelConfig(encoder="conv", decoder="mlp"), 0, shape)


def test_the_classifier_is_sized_from_the_images():
    from vaelab.analysis.classifier import DigitClassifier

    for shape in [(1, 28, 28), (3, 32, 32), (1, 64, 64), (1, 8, 8)]:
        classifier = DigitClassifier(10, shape)
        features, probabilities = classifier.features_and_probabilities(torch.rand(3, *shape))
        assert features.shape == (3, 128) and np.allclose(probabilities.sum(1), 1)
    assert DigitClassifier(10).body[7].in_features == 32 * 7 * 7


def colour_data():
    """Red, green or blue squares (the class) on noise, 3x32x32, as a Dataset."""
    from vaelab.data.registry import Dataset, validated

    rng = np.random.default_rng(0)

    def make(n):
        labels = np.arange(n) % 3
        images = rng.integers(0, 60, size=(n, 3, 32, 32)).astype(np.uint8)
        for i, k in enumerate(labels):
            images[i, k, 8:24, 8:24] = 230
        return images, labels.astype(np.int64)

    return validated(Dataset("colour-squares", *make(90), *make(30), source="made in the test"))


def test_a_colour_data_set_trains_measures_and_draws(tmp_path):
    from vaelab.analysis.evaluate import evaluate
    from vaelab.analysis.generate import figure_grids
    from vaelab.report.figures import image_rows
    from vaelab.training.trainer import fit

    data = colour_data()
    assert data.image_shape == (3, 32, 32)
    config = build_config({"model": {"encoder": "conv", "decoder": "conv", "latent": 4},
                           "train": {"epochs": 2, "batch_size": 32}, "data": {"name": "mnist-5k"}})
    run = fit(config, tmp_path / "run", dataset=data, progress=False, device="cpu")
    assert run.model.image_shape == (3, 32, 32)
    # 50 importance samples, not the default 1000: this test is about colour shapes, not the estimator
    result = evaluate(run.model, data, 0, ("separation", "health", "likelihood"), EvalSettings(iwae_k=50))
    assert np.isfinite(result.measures["silhouette"]) and result.measures["recon_bce"] > 0
    grids = figure_grids(run.model, data.test_images, result.test_codes.mean, data.test_labels, 0, (0.5,),
                         ["red", "green", "blue"])
    assert grids["reconstructions"].shape == (10, 3, 32, 32) and grids["originals"].shape == (10, 3, 32, 32)
    path = image_rows({"originals": grids["originals"], "decoded": grids["reconstructions"]}, tmp_path / "c.png", "t")
    import matplotlib.image

    drawn = matplotlib.image.imread(path)
    assert drawn.ndim == 3 and np.abs(drawn[..., 0] - drawn[..., 1]).max() > 0.2  # in colour, not grey
