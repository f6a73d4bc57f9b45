"""Training objectives: the AE's reconstruction loss and the beta-VAE's ELBO.

An objective owns its loss and its sampling (the reparameterization trick).
Both terms follow the thesis: binary cross-entropy summed over pixels and the
closed-form KL(q(z|x) || N(0, I)) summed over latent dimensions, each averaged
over the batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bce_per_example(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy from logits, summed over pixels: one value per example."""
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).sum(1)


def kl_per_dimension(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, 1)) per example and latent dimension, in closed form."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar)


def reparameterize(mean: torch.Tensor, logvar: torch.Tensor, noise: torch.Generator | None) -> torch.Tensor:
    """z = mean + exp(logvar / 2) * eps, eps ~ N(0, I) drawn from ``noise``."""
    eps = torch.randn(mean.shape, generator=noise, dtype=mean.dtype, device=mean.device)
    return mean + torch.exp(0.5 * logvar) * eps


class AutoencoderObjective:
    """The AE: reconstruction loss alone, on the deterministic code."""

    name = "ae"
    stochastic = False
    terms = ("loss", "recon")

    def __call__(self, model, x: torch.Tensor, target: torch.Tensor,
                 noise: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        code, _ = model.encoder(x)
        recon = bce_per_example(model.decoder(code), target).mean()
        return {"loss": recon, "recon": recon}


class BetaVAEObjective:
    """The beta-VAE (Higgins et al. 2017): recon + beta * KL; beta = 1 is the VAE (Kingma & Welling 2014)."""

    name = "vae"
    stochastic = True
    terms = ("loss", "recon", "kl")

    def __init__(self, beta: float = 1.0):
        self.beta = float(beta)

    def __call__(self, model, x: torch.Tensor, target: torch.Tensor,
                 noise: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        mean, logvar = model.encoder(x)
        z = reparameterize(mean, logvar, noise)
        recon = bce_per_example(model.decoder(z), target).mean()
        kl = kl_per_dimension(mean.float(), logvar.float()).sum(1).mean()
        return {"loss": recon + self.beta * kl, "recon": recon, "kl": kl}


def make_objective(name: str, beta: float = 1.0):
    """The objective called ``name`` (``ae`` or ``vae``)."""
    if name == "ae":
        return AutoencoderObjective()
    if name == "vae":
        return BetaVAEObjective(beta)
    raise ValueError(f"unknown objective {name!r}")
