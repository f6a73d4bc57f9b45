"""The thesis's auto-encoder: a deterministic code, trained on the reconstruction loss alone.

Its prior N(0, I) is not trained against; it is what the thesis's experiment 3 draws from to
show that the AE cannot generate from it.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from vaelab.models import base


class Settings(base.ModelSettings):
    """The AE: architecture only (its prior is the fixed N(0, I) that generation draws from)."""

    objective: Literal["ae"] = Field("ae", description="the model: its objective (overrides the preset)")

    def prior_reason(self) -> str:
        return ": prior applies to the stochastic objectives (vae, iwae, btcvae), not the ae"


class Objective(base.Objective):
    """The AE: reconstruction loss alone, on the deterministic code."""

    stochastic = False
    terms = ("loss", "recon")

    def __call__(self, model, x: torch.Tensor, target: torch.Tensor, noise: torch.Generator | None = None,
                 labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        code, _ = model.encode(x, labels)
        recon = -model.likelihood.log_prob(model.decode(code, labels), target).mean()
        return {"loss": recon, "recon": recon}


PRESETS = {"ae": {"encoder": "mlp", "decoder": "mlp", "objective": "ae", "prior": "normal"}}
