"""β-TCVAE (Chen et al. 2018): the KL term split into index-code mutual information, total correlation
and dimension-wise KL, with β on the total correlation alone, estimated by minibatch-weighted sampling."""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field

from vaelab.models import base
from vaelab.models.distributions import log_normal_diag, log_normal_diag_per_dimension


class Settings(base.WeightedSettings):
    """β-TCVAE: β weighs the total correlation; the prior is the factorised N(0, I)."""

    objective: Literal["btcvae"] = Field("btcvae", description="the model: its objective (overrides the preset)")

    def prior_reason(self) -> str:
        return ": its total correlation is measured against the factorised prior"


class Objective(base.Objective):
    """β-TCVAE (Chen et al. 2018): recon + MI + β TC + dimension-wise KL, with the standard normal prior.

    The aggregate posterior q(z) and its marginals are estimated by minibatch-weighted
    sampling (the paper's MWS): ``log q(z_i) ~ logsumexp_j log q(z_i|x_j) - log(N M)``
    for a batch of M from a training set of N (``dataset_size``, set by the trainer;
    the batch size where it is unknown). The three terms add up exactly to the
    one-sample KL estimate ``log q(z|x) - log p(z)``, reported as ``kl``.
    """

    settings: Settings  # this model's own settings (the base class types the settings every model shares)

    stochastic = True
    terms = ("loss", "recon", "kl", "mi", "tc", "dwkl")

    def __call__(self, model, x: torch.Tensor, target: torch.Tensor, noise: torch.Generator | None = None,
                 labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        mean, logvar = model.encoder(x)
        z = model.posterior.sample(mean, logvar, noise)
        recon = -model.likelihood.log_prob(model.decoder(z), target).mean()
        zf, mf, lf = z.float(), mean.float(), logvar.float()
        batch = len(zf)
        log_nm = math.log((self.dataset_size or batch) * batch)
        # pairwise[i, j, u] = log q(z_iu | x_j)
        pairwise = log_normal_diag_per_dimension(zf.unsqueeze(1), mf.unsqueeze(0), lf.unsqueeze(0))
        log_q_z_given_x = log_normal_diag(zf, mf, lf)
        log_q_z = torch.logsumexp(pairwise.sum(2), dim=1) - log_nm
        log_prod_q_zu = (torch.logsumexp(pairwise, dim=1) - log_nm).sum(1)
        log_p_z = model.log_prior(zf)
        mi = (log_q_z_given_x - log_q_z).mean()
        tc = (log_q_z - log_prod_q_zu).mean()
        dwkl = (log_prod_q_zu - log_p_z).mean()
        return {"loss": recon + mi + self.settings.beta * tc + dwkl, "recon": recon, "kl": mi + tc + dwkl,
                "mi": mi, "tc": tc, "dwkl": dwkl}


PRESETS = {"btcvae": {"encoder": "mlp", "decoder": "mlp", "objective": "btcvae", "prior": "normal", "beta": 6.0}}
