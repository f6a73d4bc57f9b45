"""The GMVAE (Dilokthanakul et al. 2016) in Rui Shu's formulation: a categorical y and q(z|x,y), p(z|y)
learned Gaussians, p(y) uniform; its own clusters are argmax q(y|x)."""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from vaelab.models import base
from vaelab.models.distributions import log_normal_diag, reparameterize
from vaelab.models.encoders import Encoder, Heads


class Settings(base.ModelSettings):
    """The GMVAE: the mixture prior's K Gaussians are p(z|y); ``balance`` weighs the term against one cluster."""

    PRIORS = ("mog",)

    objective: Literal["gmvae"] = Field("gmvae", description="the model: its objective (overrides the preset)")
    prior: Literal["normal", "mog", "vamp"] = Field("mog", description="prior p(z): mog (K learned Gaussians)")
    balance: float = Field(1.0, ge=0.0,
                           description="gmvae: weight of the term against collapsing into one cluster")

    def prior_reason(self) -> str:
        return ": the gmvae objective needs the mixture prior"


class MixtureEncoder(nn.Module):
    """q(y|x) q(z|x,y) on another encoder's trunk: the GMVAE's posterior (Rui Shu's formulation).

    A ``cluster`` head gives the logits of the categorical q(y|x); the Gaussian
    heads read the trunk's features beside the one-hot y, giving q(z|x,y) for
    every y at once. ``forward`` returns the moment-matched Gaussian of the
    mixture sum_y q(y|x) q(z|x,y) (its mean is the code the measures read);
    :meth:`posterior` gives the parts the objective needs.
    """

    def __init__(self, base: Encoder, components: int, latent: int):
        super().__init__()
        self.components = components
        self.features = base.features
        self.trunk = base.trunk
        self.cluster = nn.Linear(base.features, components)
        self.heads = Heads(base.features + components, latent, stochastic=True)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(logits of q(y|x) (B, K), means (B, K, d), logvars (B, K, d))`` of q(z|x,y) for every y."""
        h = self.trunk(x)
        batch, k = len(h), self.components
        onehots = torch.eye(k, dtype=h.dtype, device=h.device).expand(batch, k, k)
        mean, logvar = self.heads(torch.cat([h.unsqueeze(1).expand(batch, k, h.shape[1]), onehots], dim=2))
        return self.cluster(h), mean, logvar

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The mixture's mean and log-variance (moment-matched, per dimension)."""
        logits, means, logvars = self.posterior(x)
        weights = torch.softmax(logits.float(), dim=1).unsqueeze(2)
        means, variances = means.float(), logvars.float().exp()
        mean = (weights * means).sum(1)
        variance = (weights * (variances + means.pow(2))).sum(1) - mean.pow(2)
        return mean, variance.clamp_min(1e-12).log()


class Objective(base.Objective):
    """The GMVAE (Dilokthanakul et al. 2016) in Rui Shu's formulation: y ~ Cat(1/K), z|y ~ N(mu_y, sigma_y^2).

    ``-E_q(y|x)[log p(x|z_y) - log q(z_y|x,y) + log p(z_y|y)] + KL(q(y|x) || Cat(1/K))``, with one
    draw z_y ~ q(z|x,y) for every y (the expectation over y is exact, as in Shu's code). Against all
    clusters collapsing into one, ``balance`` weighs an extra term, log K - H(mean_x q(y|x)): zero
    when the batch uses every cluster equally, log K when it uses one (not in Shu's formulation;
    it assumes roughly balanced classes, as the digit and clothing data sets have).
    """

    settings: Settings  # this model's own settings (the base class types the settings every model shares)

    terms = ("loss", "recon", "kl", "kl_y", "balance")

    def build_encoder(self, encoder: Encoder, n_classes: int) -> nn.Module:
        """q(y|x) q(z|x,y) on the configured encoder's trunk."""
        return MixtureEncoder(encoder, self.settings.prior_components(), self.settings.latent)

    def prepare(self, model) -> None:
        """p(y) is uniform: the mixture's weights stay fixed."""
        model.prior.logits.requires_grad_(False)

    def clusters(self, model, x: torch.Tensor) -> torch.Tensor | None:
        """argmax q(y|x)."""
        return model.encoder.posterior(x)[0].argmax(1)

    def has_clusters(self, model) -> bool:
        return True

    def __call__(self, model, x: torch.Tensor, target: torch.Tensor, noise: torch.Generator | None = None,
                 labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        logits, means, logvars = model.encoder.posterior(x)
        batch, k, latent = means.shape
        z = reparameterize(means, logvars, noise)  # (B, K, d): one draw per cluster
        targets = target.unsqueeze(1).expand(batch, k, *target.shape[1:]).reshape(batch * k, *target.shape[1:])
        log_lik = model.likelihood.log_prob(model.decoder(z.reshape(batch * k, latent)), targets).float().view(batch, k)
        zf = z.float()
        log_q_z = log_normal_diag(zf, means.float(), logvars.float())
        log_p_z = log_normal_diag(zf, model.prior.means, model.prior.logvars)
        q_y, log_q_y = torch.softmax(logits.float(), 1), torch.log_softmax(logits.float(), 1)
        recon = -(q_y * log_lik).sum(1).mean()
        kl_y = (q_y * (log_q_y + math.log(k))).sum(1).mean()
        kl = (q_y * (log_q_z - log_p_z)).sum(1).mean() + kl_y
        used = q_y.mean(0)
        balance = math.log(k) + (used * torch.log(used.clamp_min(1e-30))).sum()
        return {"loss": recon + kl + self.settings.balance * balance, "recon": recon, "kl": kl, "kl_y": kl_y,
                "balance": balance}


# Dilokthanakul et al. 2016, Shu's formulation
PRESETS = {"gmvae": {"encoder": "mlp", "decoder": "mlp", "objective": "gmvae", "prior": "mog"}}
