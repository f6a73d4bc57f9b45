"""VaDE (Jiang et al. 2017): a mixture-of-Gaussians prior, q(c|x) taken as p(c|z) by Bayes' rule.

Its first epochs pre-train the network as an AE; then a GMM fitted to the codes initialises the
prior (the stages of the run).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field

from vaelab.models import base
from vaelab.models.distributions import kl_diag_gaussians
from vaelab.seeding import derive_seed


class Settings(base.ModelSettings):
    """VaDE: the mixture prior; ``pretrain_epochs`` first epochs trained as an AE."""

    PRIORS = ("mog",)

    objective: Literal["vade"] = Field("vade", description="the model: its objective (overrides the preset)")
    prior: Literal["normal", "mog", "vamp"] = Field("mog", description="prior p(z): mog (K learned Gaussians)")
    pretrain_epochs: int = Field(0, ge=0, le=100000,
                                 description="vade: first epochs trained as an AE, then the GMM initialisation")

    def prior_reason(self) -> str:
        return ": the vade objective needs the mixture prior"

    def check_epochs(self, epochs: int) -> None:
        if self.pretrain_epochs and epochs <= self.pretrain_epochs:
            raise ValueError(f"train.epochs ({epochs}) must exceed model.pretrain_epochs ({self.pretrain_epochs}): "
                             "the vade stage comes after the pre-training")

    def stage_epochs(self) -> int:
        return self.pretrain_epochs

    def scaled_stages(self, scale: float) -> dict[str, Any]:
        # a shrunk schedule keeps at least one epoch of pre-training
        return {"pretrain_epochs": max(1, round(self.pretrain_epochs * scale))} if self.pretrain_epochs else {}


class Objective(base.Objective):
    """VaDE (Jiang et al. 2017): the ELBO under a mixture-of-Gaussians prior, with q(c|x) = p(c|z).

    Per example, with one draw z ~ q(z|x) and gamma_c = p(c|z) (Bayes' rule under the prior):
    ``-log p(x|z) + sum_c gamma_c KL(q(z|x) || p(z|c)) + sum_c gamma_c log(gamma_c / pi_c)``.
    The first ``pretrain_epochs`` epochs train the encoder's mean and the decoder as an AE (the
    paper pre-trains an AE); at the stage boundary a diagonal GMM fitted to the codes of the
    training images initialises the prior (means, variances, weights) and Adam restarts.
    """

    settings: Settings  # this model's own settings (the base class types the settings every model shares)

    terms = ("loss", "recon", "kl")

    def __init__(self, settings: Settings):
        super().__init__(settings)
        self.pretraining = False  # set per epoch by the trainer; a loaded model is past its stages

    def begin_epoch(self, model, epoch: int, train_images: torch.Tensor, seed: int) -> bool:
        """AE pre-training before ``pretrain_epochs``; at that epoch, the GMM initialisation of the prior."""
        pretrain_epochs = self.settings.pretrain_epochs
        self.pretraining = epoch < pretrain_epochs
        if epoch == pretrain_epochs and epoch > 0:
            init_mixture_from_codes(model, train_images, seed)
            return True
        return False

    def __call__(self, model, x: torch.Tensor, target: torch.Tensor, noise: torch.Generator | None = None,
                 labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        mean, logvar = model.encoder(x)
        if self.pretraining:
            recon = -model.likelihood.log_prob(model.decoder(mean), target).mean()
            return {"loss": recon, "recon": recon, "kl": torch.zeros((), device=recon.device)}
        z = model.posterior.sample(mean, logvar, noise)
        recon = -model.likelihood.log_prob(model.decoder(z), target).mean()
        kl = self.kl(model, mean.float(), logvar.float(), z.float()).mean()
        return {"loss": recon + kl, "recon": recon, "kl": kl}

    @staticmethod
    def kl(model, mean: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """VaDE's KL part per example: E_gamma[KL(q(z|x) || p(z|c))] + KL(gamma || pi)."""
        prior = model.prior
        gamma = prior.responsibilities(z)  # (B, K)
        log_pi = torch.log_softmax(prior.logits, 0)
        kl_z = kl_diag_gaussians(mean.unsqueeze(1), logvar.unsqueeze(1), prior.means, prior.logvars).sum(2)
        kl_c = (gamma * (torch.log(gamma.clamp_min(1e-30)) - log_pi)).sum(1)
        return (gamma * kl_z).sum(1) + kl_c


@torch.no_grad()
def init_mixture_from_codes(model, images: torch.Tensor, seed: int) -> None:
    """Fit a diagonal GMM (K = the prior's components, seeded) to the codes of ``images`` and copy it
    into the model's mixture prior: VaDE's initialisation."""
    # Lazy: scikit-learn's mixture module costs about half a second to import, and every command
    # imports the model registry; only VaDE's stage boundary needs it.
    from sklearn.mixture import GaussianMixture

    was_training = model.training
    model.eval()
    codes = torch.cat([model.encoder(images[i:i + base.INFERENCE_BATCH])[0].float().cpu()
                       for i in range(0, len(images), base.INFERENCE_BATCH)]).double().numpy()
    model.train(was_training)
    prior = model.prior
    gmm = GaussianMixture(prior.components, covariance_type="diag", reg_covar=1e-4,
                          random_state=derive_seed(seed, "vade-gmm") % (2**32)).fit(codes)
    for parameter, value in ((prior.means, gmm.means_), (prior.logvars, torch.log(torch.from_numpy(gmm.covariances_))),
                             (prior.logits, torch.log(torch.from_numpy(gmm.weights_)))):
        parameter.copy_(torch.as_tensor(value, dtype=parameter.dtype))


PRESETS = {"vade": {"encoder": "mlp", "decoder": "mlp", "objective": "vade", "prior": "mog", "pretrain_epochs": 5}}
