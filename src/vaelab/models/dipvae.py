"""DIP-VAE (Kumar, Sattigeri & Balakrishnan 2018, "Variational inference of disentangled latent concepts
from unlabeled observations"): the ELBO plus a penalty that pushes the covariance of the aggregate
posterior q(z) towards the identity, so that its dimensions are decorrelated.

    recon + KL + λ_od Σ_{i≠j} C_ij² + λ_d Σ_i (C_ii - 1)²

with C estimated on the batch. DIP-VAE-I (``dip_type: i``, the paper's eq. 6) takes C = Cov[μ(x)], the
covariance of the posterior means; DIP-VAE-II (``ii``, eq. 7, the default) takes the covariance of q(z)
itself, C = Cov[μ(x)] + E[diag σ²(x)]. Both as in disentanglement_lib (``methods/unsupervised/vae.py``:
``compute_covariance_z_mean``, the biased covariance E[μμᵀ] - E[μ]E[μ]ᵀ, and
``regularize_diag_off_diag_dip``), whose reconstruction and KL are summed over pixels and dimensions as
vaelab's are, so its λ keep their meaning here. λ_d defaults to Locatello et al.'s (2019) choice: λ_od
for DIP-VAE-II, 10 λ_od for DIP-VAE-I. λ_od = 10 is the middle of their grid (1, 2, 5, 10, 20, 50).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field, model_validator

from vaelab.models import base

DIAGONAL_FACTOR = {"i": 10.0, "ii": 1.0}  # λ_d / λ_od in Locatello et al.'s grid, per DIP type


class Settings(base.ModelSettings):
    """DIP-VAE: ``lambda_od`` and ``lambda_d`` weigh the off-diagonal and diagonal parts of the penalty."""

    objective: Literal["dipvae"] = Field("dipvae", description="the model: its objective (overrides the preset)")
    dip_type: Literal["i", "ii"] = Field(
        "ii", description="dipvae: which covariance is penalised, i (of the posterior means) or ii (of q(z))")
    lambda_od: float = Field(10.0, ge=0.0, description="dipvae: λ_od, the weight of the off-diagonal covariances")
    lambda_d: float | None = Field(
        None, ge=0.0, description="dipvae: λ_d, the weight of the diagonal's distance to 1 [λ_od for type ii, "
                                  "10 λ_od for type i, as Locatello et al.]")

    @model_validator(mode="before")
    @classmethod
    def _the_type_s_own_diagonal_weight(cls, values: Any) -> Any:
        # λ_d left out is written into the settings (and so into the run's identity) as the type's default
        if isinstance(values, dict) and values.get("lambda_d") is None:
            factor = DIAGONAL_FACTOR.get(values.get("dip_type", "ii"), DIAGONAL_FACTOR["ii"])
            lambda_od = values.get("lambda_od", 10.0)
            if isinstance(lambda_od, (int, float)):
                values = {**values, "lambda_d": factor * float(lambda_od)}
        return values

    @property
    def diagonal_weight(self) -> float:
        """λ_d (never None once validated: left out, it is the type's factor times λ_od)."""
        return DIAGONAL_FACTOR[self.dip_type] * self.lambda_od if self.lambda_d is None else self.lambda_d

    def prior_reason(self) -> str:
        return ": its penalty pushes q(z)'s covariance towards N(0, I)'s"

    def weight(self) -> tuple[str, str, float] | None:
        return ("lambda_od", "λ_od", self.lambda_od)


def covariance_of_means(mean: torch.Tensor) -> torch.Tensor:
    """The biased covariance of the posterior means over the batch, E[μμᵀ] - E[μ]E[μ]ᵀ, (d, d)."""
    centred = mean - mean.mean(0, keepdim=True)
    return centred.T @ centred / len(mean)


def dip_penalty(covariance: torch.Tensor, lambda_od: float, lambda_d: float) -> torch.Tensor:
    """λ_od Σ_{i≠j} C_ij² + λ_d Σ_i (C_ii - 1)²: the covariance's distance to the identity, by part."""
    diagonal = torch.diagonal(covariance)
    off_diagonal = covariance - torch.diag(diagonal)
    return lambda_od * off_diagonal.pow(2).sum() + lambda_d * (diagonal - 1.0).pow(2).sum()


class Objective(base.Objective):
    """recon + KL + the DIP penalty on the batch's covariance; ``dip`` is reported weighted, as it is added."""

    settings: Settings  # this model's own settings (the base class types the settings every model shares)

    stochastic = True
    terms = ("loss", "recon", "kl", "dip")

    def covariance(self, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """C: Cov[μ] (type i), or Cov[μ] + E[diag σ²] (type ii), estimated on the batch."""
        covariance = covariance_of_means(mean)
        if self.settings.dip_type == "ii":
            covariance = covariance + torch.diag(logvar.exp().mean(0))
        return covariance

    def __call__(self, model, x: torch.Tensor, target: torch.Tensor, noise: torch.Generator | None = None,
                 labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        elbo = base.elbo_parts(model, x, target, noise, labels)
        dip = dip_penalty(self.covariance(elbo.mean.float(), elbo.logvar.float()), self.settings.lambda_od,
                          self.settings.diagonal_weight)
        return {"loss": elbo.recon + elbo.kl + dip, "recon": elbo.recon, "kl": elbo.kl, "dip": dip}


# Kumar et al. 2018; Locatello et al.'s grid gives the weights (module docstring)
PRESETS = {
    "dipvae": {"encoder": "mlp", "decoder": "mlp", "objective": "dipvae", "prior": "normal"},  # DIP-VAE-II
    "dipvae-i": {"encoder": "mlp", "decoder": "mlp", "objective": "dipvae", "prior": "normal", "dip_type": "i"},
}
