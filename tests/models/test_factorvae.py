"""FactorVAE (Kim & Mnih 2018): shuffled codes, which part learns from which loss, its optimiser, resume."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.models.conftest import assert_resumes_bit_for_bit
from vaelab.config import ModelConfig
from vaelab.models import build_model
from vaelab.models.factorvae import permute_dimensions
from vaelab.seeding import torch_generator

SMALL = dict(objective="factorvae", prior="normal", beta=30.0, hidden=16, latent=3)


def test_shuffling_keeps_each_dimension_s_values_and_breaks_their_pairing():
    z = torch.arange(200, dtype=torch.float32).view(100, 2) * torch.tensor([1.0, -1.0])
    shuffled = permute_dimensions(z, torch.Generator().manual_seed(0))
    for j in range(2):
        assert torch.equal(torch.sort(shuffled[:, j]).values, torch.sort(z[:, j]).values)
    assert not torch.equal(shuffled[:, 1], -(shuffled[:, 0] + 1))  # z1 = -(z0 + 1) row by row no longer
    assert torch.equal(permute_dimensions(z, torch.Generator().manual_seed(0)), shuffled)  # seeded


def _grads(model, loss) -> dict[str, torch.Tensor]:
    model.zero_grad()
    loss.backward(retain_graph=True)
    return {name: (p.grad.clone() if p.grad is not None else torch.zeros_like(p)) for name, p in model.named_parameters()}


def test_each_part_learns_only_from_its_own_loss():
    model = build_model(ModelConfig(**SMALL), seed=0, image_shape=(1, 6, 6))
    x = torch.rand(8, 1, 6, 6, generator=torch.Generator().manual_seed(1))
    terms = model.objective(model, x, x, torch_generator(0, "noise"))
    everything = _grads(model, terms["loss"])
    discriminator_only = _grads(model, terms["discriminator"])
    vae_only = _grads(model, terms["loss"] - terms["discriminator"])
    for name in everything:
        if name.startswith("discriminator."):
            # the TC term (in the VAE's loss) leaves the discriminator alone
            assert torch.equal(vae_only[name], torch.zeros_like(vae_only[name])), name
            assert torch.allclose(everything[name], discriminator_only[name]), name
        else:  # the discriminator's loss sees detached codes
            assert torch.equal(discriminator_only[name], torch.zeros_like(discriminator_only[name])), name
    tc_only = _grads(model, terms["tc"])
    assert tc_only["encoder.heads.mean.weight"].abs().sum() > 0  # the TC term reaches the encoder through z
    # the reported TC is the discriminator's mean log-odds on the first half of the batch
    with torch.no_grad():
        z = model.posterior.sample(*model.encoder(x), torch_generator(0, "noise"))
        logits = model.discriminator(z[:4])
    assert terms["tc"].item() == pytest.approx((logits[:, 0] - logits[:, 1]).mean().item(), rel=1e-5)


def test_the_discriminator_loss_is_cross_entropy_of_real_against_shuffled():
    model = build_model(ModelConfig(**SMALL), seed=0, image_shape=(1, 6, 6))
    x = torch.rand(6, 1, 6, 6, generator=torch.Generator().manual_seed(2))
    noise = torch_generator(0, "noise")
    terms = model.objective(model, x, x, noise)
    replay = torch_generator(0, "noise")
    with torch.no_grad():
        z = model.posterior.sample(*model.encoder(x), replay)
        shuffled = permute_dimensions(z[3:], replay)
        logits = model.discriminator(torch.cat([z[:3], shuffled]))
    expected = F.cross_entropy(logits, torch.tensor([0, 0, 0, 1, 1, 1]))
    assert terms["discriminator"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_the_discriminator_trains_at_the_paper_s_rate():
    from vaelab.api import make_config
    from vaelab.training.trainer import make_optimizer

    config = make_config("factorvae", hidden=16, latent=3)
    model = build_model(config.model, 0, (1, 6, 6))
    groups = make_optimizer(model, config).param_groups
    assert groups[0]["lr"] == config.train.lr and groups[1]["lr"] == 1e-4 and groups[1]["betas"] == (0.5, 0.9)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    assert len(groups[1]["params"]) == len(list(model.discriminator.parameters())) == 14  # 7 layers


def test_a_batch_of_one_has_no_tc_term():
    model = build_model(ModelConfig(**SMALL), seed=0, image_shape=(1, 6, 6))
    x = torch.rand(1, 1, 6, 6)
    terms = model.objective(model, x, x, torch_generator(0, "noise"))
    assert terms["tc"].item() == 0.0 and torch.isfinite(terms["loss"])


def test_factorvae_survives_a_kill_and_resume_bit_for_bit(tiny_idx_folder, tmp_path):
    straight = assert_resumes_bit_for_bit("factorvae", tiny_idx_folder, tmp_path)
    assert any(name.startswith("discriminator.") for name in straight.model.state_dict())
    assert "train_tc" in straight.history[-1] and "test_discriminator" in straight.history[-1]


def test_factorvae_needs_the_factorised_prior():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="factorised prior"):
        ModelConfig(objective="factorvae", prior="mog")
