"""vaelab.models.cvae: the conditional model reads the labels (and needs them), in training and in its IWAE bound."""

from __future__ import annotations


import pytest
import torch

from vaelab.analysis.likelihood import iwae_log_likelihood, model_log_likelihood
from vaelab.config import ModelConfig
from vaelab.models import build_model
from vaelab.seeding import torch_generator
from tests.models.conftest import SMALL


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
