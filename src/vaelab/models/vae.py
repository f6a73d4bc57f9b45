"""The VAE and the β-VAE (Kingma & Welling 2014; Higgins et al. 2017), with any of the priors.

The ELBO with a β on its KL term: the closed-form KL for the N(0, I) prior, a one-sample
Monte-Carlo KL for a learned prior (the mixture of Gaussians, the VampPrior of Tomczak &
Welling 2018, both model parts in :mod:`vaelab.models.distributions`).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from vaelab.models import base


class Settings(base.WeightedSettings):
    """The β-VAE: β weighs the KL term (1 is the VAE); the prior may be learned (mog, vamp)."""

    PRIORS = ("normal", "mog", "vamp")

    objective: Literal["vae"] = Field("vae", description="the model: its objective (overrides the preset)")


class Objective(base.Objective):
    """The β-VAE (Higgins et al. 2017): recon + β KL; β = 1 is the VAE (Kingma & Welling 2014).

    With a conditional model it is the CVAE's (Sohn et al. 2015): q(z|x,y) and p(x|z,y).
    """

    settings: Settings  # this model's own settings (the base class types the settings every model shares)

    stochastic = True
    terms = ("loss", "recon", "kl")

    def __call__(self, model, x: torch.Tensor, target: torch.Tensor, noise: torch.Generator | None = None,
                 labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        elbo = base.elbo_parts(model, x, target, noise, labels)  # labels: read by a conditional model (the CVAE)
        return {"loss": elbo.recon + self.settings.beta * elbo.kl, "recon": elbo.recon, "kl": elbo.kl}


# The study's VAEs, the "better encoder, same decoder" variant of its future work, and learned priors.
PRESETS = {
    "vae": {"encoder": "mlp", "decoder": "mlp", "objective": "vae", "prior": "normal"},
    "conv-vae": {"encoder": "conv", "decoder": "conv", "objective": "vae", "prior": "normal"},
    "convenc-vae": {"encoder": "conv", "decoder": "mlp", "objective": "vae", "prior": "normal"},
    "vamp": {"encoder": "mlp", "decoder": "mlp", "objective": "vae", "prior": "vamp"},  # Tomczak & Welling, K = 500
    "mog-vae": {"encoder": "mlp", "decoder": "mlp", "objective": "vae", "prior": "mog"},  # 10 Gaussians, learned
}
