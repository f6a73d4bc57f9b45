"""vaelab.models.vade: VaDE's ELBO against the VAE's and a hand-computed case; its stages and their resume."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from vaelab.config import ModelConfig
from vaelab.errors import ConfigError
from vaelab.models import build_model
from vaelab.models.distributions import kl_standard_normal
from vaelab.seeding import torch_generator
from tests.models.conftest import SMALL, mixture_prior, one_component_standard_normal


def test_vade_with_one_standard_component_is_the_vae():
    from vaelab.models.vade import Objective as VaDEObjective

    model = build_model(ModelConfig(objective="vade", prior="mog", components=1, **SMALL), 0)
    one_component_standard_normal(model)
    mean = torch.randn(6, 3, generator=torch_generator(0, "m"))
    logvar = 0.3 * torch.randn(6, 3, generator=torch_generator(0, "v"))
    z = model.posterior.sample(mean, logvar, torch_generator(0, "z"))
    with torch.no_grad():
        torch.testing.assert_close(VaDEObjective.kl(model, mean, logvar, z), kl_standard_normal(mean, logvar).sum(1))


def test_vade_kl_by_hand_with_two_components():
    from vaelab.models.vade import Objective as VaDEObjective

    model = build_model(ModelConfig(objective="vade", prior="mog", components=2, hidden=8, latent=1), 0)
    model.prior = mixture_prior([[-1.0], [2.0]], [[0.5], [1.0]], [0.3, 0.7])
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
