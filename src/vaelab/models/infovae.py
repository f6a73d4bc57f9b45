"""InfoVAE with the MMD divergence, the MMD-VAE (Zhao, Song & Ermon 2019).

The InfoVAE objective, per batch (to be minimised):
``-E log p(x|z) + (1 - α) KL(q(z|x) || p(z)) + (α + λ - 1) MMD(q(z), p(z))``:
α = 1 drops the KL term (the plain MMD-VAE), α = 0 keeps the ELBO and adds λ - 1 times the MMD
between the aggregate posterior and the prior. The MMD is estimated between the batch's posterior
draws z ~ q(z|x) and as many prior draws, with the Gaussian kernel and the biased estimator of Zhao's
MMD-VAE code (:mod:`vaelab.models.mmd`).

Choices where the paper leaves the scale to the data: α = 0 and λ = 1000 by default, so that with the
reconstruction summed over pixels (as in every vaelab model) the MMD term weighs about as much as the
KL term; Zhao's code pairs a per-pixel mean squared error with weight-1 MMD instead.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from vaelab.models import base
from vaelab.models.mmd import gaussian_kernel, mmd_biased, prior_draws_like


class Settings(base.ModelSettings):
    """InfoVAE: ``alpha`` and ``info_lambda`` are the paper's α and λ; the prior is N(0, I)."""

    objective: Literal["infovae"] = Field("infovae", description="the model: its objective (overrides the preset)")
    alpha: float = Field(0.0, le=1.0,
                         description="infovae: α; the KL term is weighted 1 - α (α = 1: the plain MMD-VAE)")
    info_lambda: float = Field(1000.0, gt=0.0,
                               description="infovae: λ; the MMD term is weighted α + λ - 1")

    def prior_reason(self) -> str:
        return ": its MMD is measured against N(0, I) draws"

    def weight(self) -> tuple[str, str, float] | None:
        return ("info_lambda", "λ", self.info_lambda)

    def extras(self) -> list[str]:
        return [f"α={self.alpha:g}", *super().extras()]


class Objective(base.Objective):
    """recon + (1 - α) KL + (α + λ - 1) MMD(q(z), p(z)); ``kl`` and ``mmd`` are reported unweighted."""

    settings: Settings  # this model's own settings (the base class types the settings every model shares)

    stochastic = True
    terms = ("loss", "recon", "kl", "mmd")

    def __call__(self, model, x: torch.Tensor, target: torch.Tensor, noise: torch.Generator | None = None,
                 labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        elbo = base.elbo_parts(model, x, target, noise, labels)
        mmd = mmd_biased(elbo.z.float(), prior_draws_like(model, elbo.z, noise).float(), gaussian_kernel)
        alpha, lam = self.settings.alpha, self.settings.info_lambda
        return {"loss": elbo.recon + (1.0 - alpha) * elbo.kl + (alpha + lam - 1.0) * mmd, "recon": elbo.recon,
                "kl": elbo.kl, "mmd": mmd}


PRESETS = {"infovae": {"encoder": "mlp", "decoder": "mlp", "objective": "infovae", "prior": "normal"}}
