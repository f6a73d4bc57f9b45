"""FactorVAE (Kim & Mnih 2018): the ELBO plus γ times the total correlation, estimated by a discriminator
between codes and codes whose dimensions were shuffled across the batch; the discriminator trains beside it."""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field

from vaelab.models import base
from vaelab.models.adversarial import Discriminator, discriminator_loss, fixed_logits, param_groups


class Settings(base.ModelSettings):
    """FactorVAE: γ weighs the total correlation; the prior is the factorised N(0, I)."""

    objective: Literal["factorvae"] = Field("factorvae", description="the model: its objective (overrides the preset)")
    gamma: float = Field(1.0, ge=0.0, description="factorvae: Kim & Mnih's γ, the weight of the total correlation")

    @classmethod
    def upgrade(cls, values: dict[str, Any]) -> dict[str, Any]:
        """vaelab 0.1 stored FactorVAE's γ as ``beta``, and ``--beta`` still sets it (over a preset's γ)."""
        if values.get("objective") == "factorvae" and "beta" in values:
            values = {key: value for key, value in values.items() if key != "beta"} | {"gamma": values["beta"]}
        return values

    def prior_reason(self) -> str:
        return ": its total correlation is measured against the factorised prior"

    def weight(self) -> tuple[str, str, float] | None:
        return ("gamma", "γ", self.gamma)

    def divergence_advice(self) -> str:
        return f" or --gamma below {self.gamma:g}" if self.gamma > 1 else ""


def permute_dimensions(z: torch.Tensor, noise: torch.Generator | None) -> torch.Tensor:
    """Each dimension of ``z`` shuffled across the batch on its own: a sample of prod_j q(z_j)."""
    order = torch.argsort(torch.rand(z.shape, generator=noise, device=z.device), dim=0)
    return torch.gather(z, 0, order)


class Objective(base.Objective):
    """FactorVAE (Kim & Mnih 2018): recon + KL + γ TC, with TC = KL(q(z) || prod_j q(z_j)) estimated by a
    discriminator's log-odds, D(z)[0] - D(z)[1], on the batch's first half.

    The discriminator learns to tell the first half's codes (real) from the second half's with every
    dimension shuffled across the batch (Kim & Mnih draw a second batch; halves are the common
    equivalent). Each part learns only from its own loss: the TC term reaches the encoder through z
    with the discriminator's weights held fixed, and the discriminator's loss sees detached codes. Its
    Adam group has the paper's rate, 1e-4, and betas (0.5, 0.9). ``tc`` and ``discriminator`` are
    reported; ``loss`` is their model's loss plus the discriminator's.
    """

    settings: Settings  # this model's own settings (the base class types the settings every model shares)

    stochastic = True
    terms = ("loss", "recon", "kl", "tc", "discriminator")

    def prepare(self, model) -> None:
        model.discriminator = Discriminator(self.settings.latent)

    def param_groups(self, model):
        return param_groups(model, [model.discriminator], lr=1e-4, betas=(0.5, 0.9))

    def __call__(self, model, x: torch.Tensor, target: torch.Tensor, noise: torch.Generator | None = None,
                 labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        mean, logvar = model.encoder(x)
        z = model.posterior.sample(mean, logvar, noise)
        recon = -model.likelihood.log_prob(model.decoder(z), target).mean()
        kl = model.kl(mean.float(), logvar.float()).mean()
        half = len(z) // 2
        if half == 0:  # a batch of one image has nothing to shuffle against
            zero = recon.new_zeros(())
            return {"loss": recon + kl, "recon": recon, "kl": kl, "tc": zero, "discriminator": zero}
        log_odds = fixed_logits(model.discriminator, z[:half])
        tc = (log_odds[:, 0] - log_odds[:, 1]).mean()
        d_loss = discriminator_loss(model.discriminator, z[:half], permute_dimensions(z[half:].detach(), noise))
        return {"loss": recon + kl + self.settings.gamma * tc + d_loss, "recon": recon, "kl": kl, "tc": tc,
                "discriminator": d_loss}


# Kim & Mnih 2018; γ = 30, from the grid of Locatello et al. 2019 (10 to 100)
PRESETS = {"factorvae": {"encoder": "mlp", "decoder": "mlp", "objective": "factorvae", "prior": "normal",
                         "gamma": 30.0}}
