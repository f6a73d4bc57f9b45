"""What every model shares: settings a model does not use are refused (in the config and the CLI), and the MLP's
hidden layers mirror in the decoder. Each model's own tests are in its file (test_iwae.py, test_vade.py, ...)."""

from __future__ import annotations

import pytest
import torch

from vaelab.config import ModelConfig
from vaelab.errors import ConfigError
from vaelab.models import build_model


# --- settings that do not belong to the model -----------------------------------------------------


@pytest.mark.parametrize("settings, message", [
    (dict(objective="ae", prior="vamp"), "prior applies to the stochastic objectives"),
    (dict(objective="vae", samples=10), "samples applies to the iwae objective only"),
    (dict(prior="normal", components=10), "components applies to the mog and vamp priors only"),
    (dict(objective="iwae", beta=4.0), "beta applies to the vae, btcvae, cvae objectives only, not iwae"),
    (dict(objective="btcvae", prior="mog"), "measured against the factorised prior"),
])
def test_settings_a_model_does_not_use_are_refused(settings, message):
    from vaelab.config import build_config

    with pytest.raises(ConfigError, match=message):
        build_config({"model": settings})


def test_the_cli_trains_a_variant_and_refuses_a_misplaced_setting(tiny_idx_folder, tmp_path):
    from tests.conftest import run_cli

    bad = run_cli("train", "--model", "ae", "--prior", "vamp", "--out", str(tmp_path / "bad"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "prior applies" in bad.stderr
    assert not (tmp_path / "bad").exists()
    good = run_cli("train", "--model", "btcvae", "--dataset", f"idx:{tiny_idx_folder}", "--epochs", "1",
                   "--hidden", "16", "--latent", "3", "--quiet", "--out", str(tmp_path / "run"))
    assert good.returncode == 0, good.stderr
    assert "btcvae" in good.stdout and " tc " in good.stdout


# --- architecture ---------------------------------------------------------------------------------


def test_several_hidden_layers_mirror_in_the_decoder_and_one_equals_hidden():
    deep = build_model(ModelConfig(hidden_layers=(40, 30, 20), latent=5), 0)
    widths = [m.out_features for m in deep.encoder.trunk if isinstance(m, torch.nn.Linear)]
    assert widths == [40, 30, 20]
    assert [m.out_features for m in deep.decoder.net if isinstance(m, torch.nn.Linear)] == [20, 30, 40, 784]
    one = build_model(ModelConfig(hidden_layers=(64,), latent=5), 3).state_dict()
    plain = build_model(ModelConfig(hidden=64, latent=5), 3).state_dict()
    assert one.keys() == plain.keys() and all(torch.equal(one[k], plain[k]) for k in one)
