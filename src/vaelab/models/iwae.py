"""The importance-weighted auto-encoder (Burda et al. 2016): the IWAE bound with k samples per image.

k = 1 is the one-sample ELBO; the bound tightens towards log p(x) as k grows.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field

from vaelab.models import base


class Settings(base.ModelSettings):
    """The IWAE: ``samples`` (k) importance samples per image; the prior may be learned (mog, vamp)."""

    PRIORS = ("normal", "mog", "vamp")

    objective: Literal["iwae"] = Field("iwae", description="the model: its objective (overrides the preset)")
    samples: int = Field(5, gt=0, le=5000, description="importance samples per image of the iwae objective")


class Objective(base.Objective):
    """The IWAE bound (Burda et al. 2016): -log (1/k) sum_i p(x, z_i) / q(z_i|x), z_i ~ q(z|x).

    ``recon`` and ``kl`` report the one-sample terms averaged over the k samples
    (their sum is the ELBO the bound improves on); ``loss`` is the bound itself.
    """

    settings: Settings  # this model's own settings (the base class types the settings every model shares)

    stochastic = True
    terms = ("loss", "recon", "kl")

    def __call__(self, model, x: torch.Tensor, target: torch.Tensor, noise: torch.Generator | None = None,
                 labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        k = self.settings.samples
        mean, logvar = model.encoder(x)
        batch, latent = mean.shape
        mean_k, logvar_k = mean.unsqueeze(0).expand(k, batch, latent), logvar.unsqueeze(0).expand(k, batch, latent)
        z = model.posterior.sample(mean_k, logvar_k, noise)  # (k, B, d)
        targets = target.unsqueeze(0).expand(k, *target.shape).reshape(k * batch, *target.shape[1:])
        log_lik = model.likelihood.log_prob(model.decoder(z.reshape(k * batch, latent)), targets).float().view(k, batch)
        zf = z.float()
        log_ratio = model.posterior.log_prob(zf, mean_k.float(), logvar_k.float()) - model.log_prior(zf)
        bound = torch.logsumexp(log_lik - log_ratio, dim=0) - math.log(k)
        return {"loss": -bound.mean(), "recon": -log_lik.mean(), "kl": log_ratio.mean()}


PRESETS = {"iwae": {"encoder": "mlp", "decoder": "mlp", "objective": "iwae", "prior": "normal"}}  # k = 5
