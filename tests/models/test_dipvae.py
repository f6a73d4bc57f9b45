"""DIP-VAE (vaelab.models.dipvae): its penalty against a numpy computation, its loss by hand for both types,
the weights' defaults, the settings it refuses, and runs that lower their loss and resume bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.models.conftest import SMALL, assert_resumes_bit_for_bit, first_and_last_epoch
from vaelab.config import ModelConfig, build_config
from vaelab.errors import ConfigError
from vaelab.models import PRESETS, build_model
from vaelab.models.distributions import bce_per_example
from vaelab.models.dipvae import covariance_of_means, dip_penalty
from vaelab.seeding import torch_generator


def _numpy_penalty(covariance: np.ndarray, lambda_od: float, lambda_d: float) -> float:
    off = covariance[~np.eye(len(covariance), dtype=bool)]
    return lambda_od * float((off ** 2).sum()) + lambda_d * float(((np.diag(covariance) - 1.0) ** 2).sum())


def test_the_penalty_and_covariance_match_numpy():
    rng = np.random.default_rng(0)
    means = rng.normal(size=(50, 4)) @ rng.normal(size=(4, 4))  # correlated dimensions
    cov_means = np.cov(means, rowvar=False, bias=True)  # the biased covariance, as disentanglement_lib's
    torch.testing.assert_close(covariance_of_means(torch.tensor(means)), torch.tensor(cov_means))
    for lambda_od, lambda_d in [(1.0, 1.0), (10.0, 100.0), (0.0, 3.0)]:
        value = dip_penalty(torch.tensor(cov_means), lambda_od, lambda_d)
        assert value.item() == pytest.approx(_numpy_penalty(cov_means, lambda_od, lambda_d), rel=1e-12)
    # the identity costs nothing; a unit off-diagonal pair costs 2 λ_od, a diagonal of 3 costs 4 λ_d
    assert dip_penalty(torch.eye(3), 5.0, 7.0).item() == 0.0
    assert dip_penalty(torch.tensor([[1.0, 1.0], [1.0, 1.0]]), 5.0, 7.0).item() == pytest.approx(10.0)
    assert dip_penalty(torch.tensor([[3.0, 0.0], [0.0, 1.0]]), 5.0, 7.0).item() == pytest.approx(28.0)


@pytest.mark.parametrize("dip_type", ["i", "ii"])
def test_the_loss_by_hand(dip_type):
    settings = ModelConfig(objective="dipvae", dip_type=dip_type, lambda_od=3.0, lambda_d=0.5, **SMALL)
    model = build_model(settings, 0)
    x = torch.rand(8, 1, 28, 28, generator=torch_generator(0, "x"))
    terms = model.objective(model, x, x, noise=torch_generator(1, "noise"))
    mean, logvar = (part.detach().double().numpy() for part in model.encoder(x))
    z = mean + np.exp(0.5 * logvar) * torch.randn(mean.shape, generator=torch_generator(1, "noise")).double().numpy()
    covariance = np.cov(mean, rowvar=False, bias=True)
    if dip_type == "ii":  # Cov_q(z)[z] = Cov[μ] + E[diag σ²] (the paper's eq. 7)
        covariance = covariance + np.diag(np.exp(logvar).mean(0))
    kl = 0.5 * (np.exp(logvar) + mean ** 2 - 1.0 - logvar).sum(1).mean()
    recon = bce_per_example(model.decoder(torch.tensor(z, dtype=torch.float32)), x).mean().item()
    assert terms["kl"].item() == pytest.approx(kl, rel=1e-5)
    assert terms["recon"].item() == pytest.approx(recon, rel=1e-5)
    assert terms["dip"].item() == pytest.approx(_numpy_penalty(covariance, 3.0, 0.5), rel=1e-4)
    assert terms["loss"].item() == pytest.approx(recon + kl + terms["dip"].item(), rel=1e-6)


def test_the_diagonal_weight_follows_locatello_and_the_presets():
    assert ModelConfig(objective="dipvae").lambda_d == 10.0  # type ii: λ_d = λ_od
    assert ModelConfig(objective="dipvae", lambda_od=2.0).lambda_d == 2.0
    assert ModelConfig(objective="dipvae", dip_type="i", lambda_od=2.0).lambda_d == 20.0  # type i: 10 λ_od
    assert ModelConfig(objective="dipvae", lambda_od=2.0, lambda_d=0.0).lambda_d == 0.0
    assert PRESETS["dipvae"] == {"encoder": "mlp", "decoder": "mlp", "objective": "dipvae", "prior": "normal"}
    assert PRESETS["dipvae-i"]["dip_type"] == "i"
    settings = ModelConfig(objective="dipvae")
    assert settings.describe() == "dipvae λ_od=10" and settings.weight() == ("lambda_od", "λ_od", 10.0)


def test_the_penalty_decorrelates_the_batch_s_codes():
    # One step of gradient descent on the means alone lowers the off-diagonal covariance.
    means = torch.tensor(np.random.default_rng(1).normal(size=(64, 3)) @ np.array(
        [[1.0, 0.9, 0.0], [0.0, 0.4, 0.0], [0.0, 0.0, 1.0]]), dtype=torch.float64, requires_grad=True)
    before = covariance_of_means(means)
    dip_penalty(before, 1.0, 0.0).backward()
    with torch.no_grad():
        after = covariance_of_means(means - 0.05 * means.grad)
    assert abs(after[0, 1]) < abs(before[0, 1].detach())


@pytest.mark.parametrize("values, message", [
    ({"prior": "vamp"}, "the dipvae model takes the prior normal, not vamp"),
    ({"dip_type": "iii"}, "Input should be 'i' or 'ii'"),
    ({"lambda_od": -1.0}, "lambda_od"),
    ({"gamma": 2.0}, "gamma applies to the factorvae objective only, not dipvae"),
])
def test_settings_it_does_not_have_are_refused_in_one_line(values, message):
    with pytest.raises(ConfigError, match=message):
        build_config({"model": {"objective": "dipvae", **values}})


@pytest.mark.parametrize("preset", ["dipvae", "dipvae-i"])
def test_training_lowers_the_loss(preset, tiny_idx_folder, tmp_path):
    first, last = first_and_last_epoch(preset, tiny_idx_folder, tmp_path / preset)
    assert set(first) >= {"train_loss", "train_recon", "train_kl", "train_dip", "test_dip"}
    assert last["train_loss"] < first["train_loss"] and last["test_recon"] < first["test_recon"]


@pytest.mark.parametrize("preset", ["dipvae", "dipvae-i"])
def test_a_killed_run_resumes_bit_for_bit(preset, tiny_idx_folder, tmp_path):
    assert_resumes_bit_for_bit(preset, tiny_idx_folder, tmp_path)
