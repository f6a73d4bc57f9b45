"""Training objectives: what each model minimises, per batch.

An objective owns its loss and its sampling; the densities it needs come from
the model's prior, posterior and likelihood (:mod:`vaelab.models.distributions`).
Every term is a per-example value averaged over the batch.

- ``ae``: the thesis's AE, reconstruction BCE alone on the deterministic code.
- ``vae``: the ELBO with a β on its KL term (Higgins et al. 2017; β = 1 is
  Kingma & Welling 2014): the closed-form KL for the N(0, I) prior, a one-sample
  Monte-Carlo KL for a learned prior (mixture, VampPrior).
- ``iwae``: the importance-weighted bound of Burda et al. 2016 with k samples;
  k = 1 is the one-sample ELBO, and the bound tightens towards log p(x) as k grows.
- ``btcvae``: β-TCVAE (Chen et al. 2018): the KL term split into index-code
  mutual information, total correlation and dimension-wise KL, with β on the
  total correlation alone, estimated by minibatch-weighted sampling.
- ``vade``: VaDE (Jiang et al. 2017): a mixture-of-Gaussians prior, q(c|x)
  taken as p(c|z) by Bayes' rule; its first epochs pre-train the network as an
  AE, then a GMM fitted to the codes initialises the prior (stages of the run).
- ``gmvae``: the GMVAE in Rui Shu's formulation of Dilokthanakul et al. 2016:
  a categorical y and q(z|x,y), p(z|y) learned Gaussians, p(y) uniform.
- ``factorvae``: FactorVAE (Kim & Mnih 2018): the ELBO plus γ times the total
  correlation, estimated by a discriminator between codes and codes whose
  dimensions were shuffled across the batch; the discriminator trains beside it.

Objectives share :class:`Objective`'s hooks: ``build_encoder`` (a model-specific
posterior network), ``prepare`` (after the model is built), ``begin_epoch``
(a stage boundary of the schedule; the trainer restarts Adam when it says so) and
``param_groups`` (Adam's parameter groups, for parts trained at their own rate).
Every call takes the batch's ``labels`` too, which only supervised objectives read.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from vaelab.models.distributions import kl_diag_gaussians, log_normal_diag, log_normal_diag_per_dimension, reparameterize


def bce_per_example(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy from logits, summed over pixels: one value per example."""
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).sum(1)


class Objective:
    """What every objective has: its name, whether its encoder is stochastic, its loss terms, and hooks."""

    name = "objective"
    stochastic = True
    terms: tuple[str, ...] = ("loss",)
    dataset_size: int | None = None  # the training set's size, set by the trainer (β-TCVAE's N)

    def build_encoder(self, encoder, config):
        """The posterior network built on the configured encoder (that encoder itself, by default)."""
        return encoder

    def prepare(self, model) -> None:
        """Adjust a freshly built model (e.g. freeze parameters the objective keeps fixed)."""

    def begin_epoch(self, model, epoch: int, train_images: torch.Tensor, seed: int) -> bool:
        """Called before each training epoch (0-based); True when a stage changed the model and Adam restarts.

        Must be deterministic: a resumed run calls it again at the epoch it resumes from.
        """
        return False

    def param_groups(self, model):
        """What Adam trains: every parameter at the configured rate, by default."""
        return model.parameters()


class AutoencoderObjective(Objective):
    """The AE: reconstruction loss alone, on the deterministic code."""

    name = "ae"
    stochastic = False
    terms = ("loss", "recon")

    def __call__(self, model, x: torch.Tensor, target: torch.Tensor, noise: torch.Generator | None = None,
                 labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        code, _ = model.encode(x, labels)
        recon = -model.likelihood.log_prob(model.decode(code, labels), target).mean()
        return {"loss": recon, "recon": recon}


class BetaVAEObjective(Objective):
    """The β-VAE (Higgins et al. 2017): recon + β KL; β = 1 is the VAE (Kingma & Welling 2014).

    With a conditional model it is the CVAE's (Sohn et al. 2015): q(z|x,y) and p(x|z,y).
    """

    name = "vae"
    stochastic = True
    terms = ("loss", "recon", "kl")

    def __init__(self, beta: float = 1.0):
        self.beta = float(beta)

    def __call__(self, model, x: torch.Tensor, target: torch.Tensor, noise: torch.Generator | None = None,
                 labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        mean, logvar = model.encode(x, labels)  # labels: read by a conditional model (the CVAE) only
        z = model.posterior.sample(mean, logvar, noise)
        recon = -model.likelihood.log_prob(model.decode(z, labels), target).mean()
        kl = model.kl(mean.float(), logvar.float(), z.float()).mean()
        return {"loss": recon + self.beta * kl, "recon": recon, "kl": kl}


class IWAEObjective(Objective):
    """The IWAE bound (Burda et al. 2016): -log (1/k) sum_i p(x, z_i) / q(z_i|x), z_i ~ q(z|x).

    ``recon`` and ``kl`` report the one-sample terms averaged over the k samples
    (their sum is the ELBO the bound improves on); ``loss`` is the bound itself.
    """

    name = "iwae"
    stochastic = True
    terms = ("loss", "recon", "kl")

    def __init__(self, samples: int = 5):
        self.samples = int(samples)

    def __call__(self, model, x: torch.Tensor, target: torch.Tensor, noise: torch.Generator | None = None,
                 labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        k = self.samples
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


class BetaTCVAEObjective(Objective):
    """β-TCVAE (Chen et al. 2018): recon + MI + β TC + dimension-wise KL, with the standard normal prior.

    The aggregate posterior q(z) and its marginals are estimated by minibatch-weighted
    sampling (the paper's MWS): ``log q(z_i) ~ logsumexp_j log q(z_i|x_j) - log(N M)``
    for a batch of M from a training set of N (``dataset_size``, set by the trainer;
    the batch size where it is unknown). The three terms add up exactly to the
    one-sample KL estimate ``log q(z|x) - log p(z)``, reported as ``kl``.
    """

    name = "btcvae"
    stochastic = True
    terms = ("loss", "recon", "kl", "mi", "tc", "dwkl")

    def __init__(self, beta: float = 6.0):
        self.beta = float(beta)

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
        return {"loss": recon + mi + self.beta * tc + dwkl, "recon": recon, "kl": mi + tc + dwkl,
                "mi": mi, "tc": tc, "dwkl": dwkl}


class VaDEObjective(Objective):
    """VaDE (Jiang et al. 2017): the ELBO under a mixture-of-Gaussians prior, with q(c|x) = p(c|z).

    Per example, with one draw z ~ q(z|x) and gamma_c = p(c|z) (Bayes' rule under the prior):
    ``-log p(x|z) + sum_c gamma_c KL(q(z|x) || p(z|c)) + sum_c gamma_c log(gamma_c / pi_c)``.
    The first ``pretrain_epochs`` epochs train the encoder's mean and the decoder as an AE (the
    paper pre-trains an AE); at the stage boundary a diagonal GMM fitted to the codes of the
    training images initialises the prior (means, variances, weights) and Adam restarts.
    """

    name = "vade"
    terms = ("loss", "recon", "kl")

    def __init__(self, pretrain_epochs: int = 0):
        self.pretrain_epochs = int(pretrain_epochs)
        self.pretraining = False  # set per epoch by the trainer; a loaded model is past its stages

    def begin_epoch(self, model, epoch: int, train_images: torch.Tensor, seed: int) -> bool:
        """AE pre-training before ``pretrain_epochs``; at that epoch, the GMM initialisation of the prior."""
        self.pretraining = epoch < self.pretrain_epochs
        if epoch == self.pretrain_epochs and epoch > 0:
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
    from sklearn.mixture import GaussianMixture

    from vaelab.models.registry import INFERENCE_BATCH
    from vaelab.seeding import derive_seed

    was_training = model.training
    model.eval()
    codes = torch.cat([model.encoder(images[i:i + INFERENCE_BATCH])[0].float().cpu()
                       for i in range(0, len(images), INFERENCE_BATCH)]).double().numpy()
    model.train(was_training)
    prior = model.prior
    gmm = GaussianMixture(prior.components, covariance_type="diag", reg_covar=1e-4,
                          random_state=derive_seed(seed, "vade-gmm") % (2**32)).fit(codes)
    for parameter, value in ((prior.means, gmm.means_), (prior.logvars, torch.log(torch.from_numpy(gmm.covariances_))),
                             (prior.logits, torch.log(torch.from_numpy(gmm.weights_)))):
        parameter.copy_(torch.as_tensor(value, dtype=parameter.dtype))


class GMVAEObjective(Objective):
    """The GMVAE (Dilokthanakul et al. 2016) in Rui Shu's formulation: y ~ Cat(1/K), z|y ~ N(mu_y, sigma_y^2).

    ``-E_q(y|x)[log p(x|z_y) - log q(z_y|x,y) + log p(z_y|y)] + KL(q(y|x) || Cat(1/K))``, with one
    draw z_y ~ q(z|x,y) for every y (the expectation over y is exact, as in Shu's code). Against all
    clusters collapsing into one, ``balance`` weighs an extra term, log K - H(mean_x q(y|x)): zero
    when the batch uses every cluster equally, log K when it uses one (not in Shu's formulation;
    it assumes roughly balanced classes, as the digit and clothing data sets have).
    """

    name = "gmvae"
    terms = ("loss", "recon", "kl", "kl_y", "balance")

    def __init__(self, components: int, balance: float = 1.0):
        self.components, self.balance = int(components), float(balance)

    def build_encoder(self, encoder, config):
        """q(y|x) q(z|x,y) on the configured encoder's trunk."""
        from vaelab.models.encoders import MixtureEncoder

        return MixtureEncoder(encoder, self.components, config.latent)

    def prepare(self, model) -> None:
        """p(y) is uniform: the mixture's weights stay fixed."""
        model.prior.logits.requires_grad_(False)

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
        return {"loss": recon + kl + self.balance * balance, "recon": recon, "kl": kl, "kl_y": kl_y,
                "balance": balance}


class Discriminator(torch.nn.Module):
    """FactorVAE's discriminator (Kim & Mnih 2018): 6 layers of 1,000 units, LeakyReLU(0.2), 2 logits
    (a code from q(z), or one with its dimensions shuffled across the batch)."""

    def __init__(self, latent: int, width: int = 1000, layers: int = 6):
        super().__init__()
        parts, size = [], latent
        for _ in range(layers):
            parts += [torch.nn.Linear(size, width), torch.nn.LeakyReLU(0.2)]
            size = width
        self.net = torch.nn.Sequential(*parts, torch.nn.Linear(size, 2))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def permute_dimensions(z: torch.Tensor, noise: torch.Generator | None) -> torch.Tensor:
    """Each dimension of ``z`` shuffled across the batch on its own: a sample of prod_j q(z_j)."""
    order = torch.argsort(torch.rand(z.shape, generator=noise, device=z.device), dim=0)
    return torch.gather(z, 0, order)


class FactorVAEObjective(Objective):
    """FactorVAE (Kim & Mnih 2018): recon + KL + γ TC, with TC = KL(q(z) || prod_j q(z_j)) estimated by a
    discriminator's log-odds, D(z)[0] - D(z)[1], on the batch's first half.

    The discriminator learns to tell the first half's codes (real) from the second half's with every
    dimension shuffled across the batch (Kim & Mnih draw a second batch; halves are the common
    equivalent). Each part learns only from its own loss: the TC term reaches the encoder through z
    with the discriminator's weights held fixed, and the discriminator's loss sees detached codes. Its
    Adam group has the paper's rate, 1e-4, and betas (0.5, 0.9). ``tc`` and ``discriminator`` are
    reported; ``loss`` is their model's loss plus the discriminator's.
    """

    name = "factorvae"
    stochastic = True
    terms = ("loss", "recon", "kl", "tc", "discriminator")

    def __init__(self, gamma: float = 30.0):
        self.gamma = float(gamma)

    def prepare(self, model) -> None:
        model.discriminator = Discriminator(model.config.latent)

    def param_groups(self, model):
        own = list(model.discriminator.parameters())
        mine = {id(p) for p in own}
        return [{"params": [p for p in model.parameters() if id(p) not in mine]},
                {"params": own, "lr": 1e-4, "betas": (0.5, 0.9)}]

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
        discriminator = model.discriminator
        fixed = {name: p.detach() for name, p in discriminator.named_parameters()}
        log_odds = torch.func.functional_call(discriminator, fixed, (z[:half],)).float()
        tc = (log_odds[:, 0] - log_odds[:, 1]).mean()
        real, shuffled = z[:half].detach(), permute_dimensions(z[half:].detach(), noise)
        logits = discriminator(torch.cat([real, shuffled])).float()
        truth = torch.cat([torch.zeros(half, dtype=torch.long), torch.ones(len(z) - half, dtype=torch.long)])
        d_loss = F.cross_entropy(logits, truth.to(logits.device))
        return {"loss": recon + kl + self.gamma * tc + d_loss, "recon": recon, "kl": kl, "tc": tc,
                "discriminator": d_loss}


def make_objective(config):
    """The objective of a :class:`~vaelab.config.ModelConfig`."""
    if config.objective == "ae":
        return AutoencoderObjective()
    if config.objective == "vae":
        return BetaVAEObjective(config.beta)
    if config.objective == "iwae":
        return IWAEObjective(config.samples)
    if config.objective == "btcvae":
        return BetaTCVAEObjective(config.beta)
    if config.objective == "vade":
        return VaDEObjective(config.pretrain_epochs)
    if config.objective == "gmvae":
        return GMVAEObjective(config.prior_components(), config.balance)
    if config.objective == "factorvae":
        return FactorVAEObjective(config.beta)
    raise ValueError(f"unknown objective {config.objective!r}")
