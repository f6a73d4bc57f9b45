"""The probabilistic model in one home: the prior p(z), the posterior q(z|x) and the likelihood p(x|z).

A :class:`~vaelab.models.registry.LatentModel` owns one of each. Everything that
needs a density or a draw (the objectives, the IWAE estimate, generation, the KL
measures) asks the model's objects rather than assuming N(0, I):

- :class:`GaussianPosterior`: q(z|x) = N(mean, diag(exp(logvar))), sampled by
  the reparameterisation trick;
- :class:`BernoulliLikelihood`: p(x|z) = Bernoulli(sigmoid(logits)), the
  thesis's binary cross-entropy;
- priors: :class:`StandardNormalPrior` (the VAE's, with a closed-form KL),
  :class:`MixturePrior` (K learned Gaussians, VaDE's prior) and
  :class:`VampPrior` (Tomczak & Welling 2018: the aggregate posterior of K
  learned pseudo-inputs). A learned prior is an ``nn.Module`` inside the model,
  so its parameters are trained, seeded, checkpointed and resumed with the rest.

Densities are summed over the latent dimensions: ``log_prob(z)`` maps (..., d)
to (...). A prior's ``log_prob`` and ``sample`` take the model, because the
VampPrior's components are the model's own encodings of its pseudo-inputs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LOG_2PI = math.log(2.0 * math.pi)


def bce_per_example(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy from logits, summed over pixels: one value per example."""
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).sum(1)


def log_normal_diag(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mean, diag(exp(logvar))), summed over the last dimension."""
    return -0.5 * (LOG_2PI + logvar + (z - mean).pow(2) / logvar.exp()).sum(-1)


def log_normal_diag_per_dimension(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z_u; mean_u, exp(logvar_u)) for every dimension u (not summed)."""
    return -0.5 * (LOG_2PI + logvar + (z - mean).pow(2) / logvar.exp())


def reparameterize(mean: torch.Tensor, logvar: torch.Tensor, noise: torch.Generator | None) -> torch.Tensor:
    """z = mean + exp(logvar / 2) * eps, eps ~ N(0, I) drawn from ``noise``."""
    eps = torch.randn(mean.shape, generator=noise, dtype=mean.dtype, device=mean.device)
    return mean + torch.exp(0.5 * logvar) * eps


def kl_standard_normal(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, 1)) per example and latent dimension, in closed form."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar)


def kl_diag_gaussians(mean_q: torch.Tensor, logvar_q: torch.Tensor, mean_p: torch.Tensor,
                      logvar_p: torch.Tensor) -> torch.Tensor:
    """KL(N(mean_q, exp(logvar_q)) || N(mean_p, exp(logvar_p))) per dimension (broadcasting), in closed form."""
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mean_q - mean_p).pow(2)) / logvar_p.exp() - 1.0)


class GaussianPosterior:
    """q(z|x) = N(mean, diag(exp(logvar))): the encoder gives ``(mean, logvar)``, this samples and scores."""

    name = "gaussian"

    @staticmethod
    def sample(mean: torch.Tensor, logvar: torch.Tensor, noise: torch.Generator | None) -> torch.Tensor:
        """One reparameterised draw per row (differentiable in mean and logvar)."""
        return reparameterize(mean, logvar, noise)

    @staticmethod
    def log_prob(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """log q(z|x), summed over dimensions."""
        return log_normal_diag(z, mean, logvar)


class BernoulliLikelihood:
    """p(x|z) = prod Bernoulli(x_i; sigmoid(logit_i)): minus the thesis's BCE, summed over pixels."""

    name = "bernoulli"

    @staticmethod
    def log_prob(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x|z) per example (x in [0, 1]; for grey levels this is the usual cross-entropy surrogate)."""
        return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)

    @staticmethod
    def mean(logits: torch.Tensor) -> torch.Tensor:
        """E[x|z]: pixels in [0, 1] (the thesis's sigmoid output)."""
        return torch.sigmoid(logits)


class GaussianLikelihood(nn.Module):
    """p(x|z) = prod N(x_i; sigmoid(logit_i), sigma_c^2), a scale per channel c: fixed at 0.1 (``gaussian``) or
    learned with the model (``gaussian-learned``, as the sigma-VAE of Rybkin et al. 2021), kept above 0.001.

    The mean goes through a sigmoid so that it stays in the pixels' [0, 1]; the density is of the pixel
    values themselves (no dequantisation), reported also in bits per dimension.
    """

    FIXED_SCALE = 0.1
    MIN_LOG_SCALE = math.log(1e-3)

    def __init__(self, channels: int, learned: bool):
        super().__init__()
        self.name = "gaussian-learned" if learned else "gaussian"
        log_scale = torch.full((channels,), math.log(self.FIXED_SCALE))
        if learned:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)

    def log_prob(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x|z) per example, summed over pixels."""
        log_scale = self.log_scale.float().clamp(min=self.MIN_LOG_SCALE).view(1, -1, *([1] * (x.dim() - 2)))
        z = (x.float() - torch.sigmoid(logits.float())) * torch.exp(-log_scale)
        return (-0.5 * z ** 2 - log_scale - 0.5 * math.log(2 * math.pi)).flatten(1).sum(1)

    @staticmethod
    def mean(logits: torch.Tensor) -> torch.Tensor:
        """E[x|z] = sigmoid(logits)."""
        return torch.sigmoid(logits)


class ContinuousBernoulliLikelihood:
    """p(x|z) = prod CB(x_i; lambda_i) (Loaiza-Ganem & Cunningham 2019): the Bernoulli's cross-entropy made a
    proper density on [0, 1] by its normalising constant C(lambda); the mean is not lambda but
    lambda / (2 lambda - 1) + 1 / (2 artanh(1 - 2 lambda)), which the decoded images show."""

    name = "continuous-bernoulli"

    @staticmethod
    def log_prob(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x|z) per example, summed over pixels."""
        distribution = torch.distributions.ContinuousBernoulli(logits=logits.float(), validate_args=False)
        return distribution.log_prob(x.float()).flatten(1).sum(1)

    @staticmethod
    def mean(logits: torch.Tensor) -> torch.Tensor:
        """E[x|z] of the continuous Bernoulli."""
        return torch.distributions.ContinuousBernoulli(logits=logits.float(), validate_args=False).mean


LIKELIHOODS = ("bernoulli", "gaussian", "gaussian-learned", "continuous-bernoulli")


def make_likelihood(name: str, channels: int):
    """The likelihood p(x|z) called ``name`` (one of :data:`LIKELIHOODS`) for images of ``channels`` channels."""
    if name == "bernoulli":
        return BernoulliLikelihood()
    if name in ("gaussian", "gaussian-learned"):
        return GaussianLikelihood(channels, learned=name == "gaussian-learned")
    if name == "continuous-bernoulli":
        return ContinuousBernoulliLikelihood()
    raise ValueError(f"unknown likelihood {name!r}")


# --- priors ---------------------------------------------------------------------------------------


class StandardNormalPrior(nn.Module):
    """p(z) = N(0, I): the VAE's prior (Kingma & Welling 2014); its KL has a closed form."""

    name = "normal"
    closed_form_kl = True  # KL(q(z|x) || p(z)) per dimension in closed form (kl_per_dimension)

    def __init__(self, latent: int):
        super().__init__()
        self.latent = latent

    def log_prob(self, z: torch.Tensor, model=None) -> torch.Tensor:
        """log N(z; 0, I), summed over dimensions."""
        return -0.5 * (LOG_2PI + z.pow(2)).sum(-1)

    def sample(self, n: int, generator: torch.Generator, model=None) -> torch.Tensor:
        """``n`` draws (on the generator's device)."""
        return torch.randn((n, self.latent), generator=generator, device=generator.device)

    def kl_per_dimension(self, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor | None:
        """KL(q(z|x) || p(z)) per example and dimension, in closed form."""
        return kl_standard_normal(mean, logvar)


class MixturePrior(nn.Module):
    """p(z) = sum_c pi_c N(z; mu_c, diag(exp(logvar_c))), K components, all learned.

    The prior of VaDE (Jiang et al. 2017) and of a GMM-prior VAE. The weights are
    a softmax of free logits, so they stay a distribution. Initialised with the
    means spread as N(0, I) draws, unit variances and equal weights; with K = 1,
    mean 0 and variance 1 it is exactly :class:`StandardNormalPrior`.
    """

    name = "mog"
    closed_form_kl = False
    has_clusters = True  # p(c|z) by Bayes' rule assigns each code a component

    def __init__(self, latent: int, components: int):
        super().__init__()
        self.latent, self.components = latent, components
        self.means = nn.Parameter(torch.zeros(components, latent))
        self.logvars = nn.Parameter(torch.zeros(components, latent))
        self.logits = nn.Parameter(torch.zeros(components))

    def reset_parameters(self) -> None:
        """Means ~ N(0, I) from the current RNG (seeded by ``build_model``); unit variances; equal weights."""
        with torch.no_grad():
            self.means.normal_()
            self.logvars.zero_()
            self.logits.zero_()

    def component_log_probs(self, z: torch.Tensor) -> torch.Tensor:
        """log pi_c + log N(z; mu_c, var_c) for every component: (..., d) -> (..., K)."""
        means, logvars = self.means.to(z), self.logvars.to(z)
        log_weights = torch.log_softmax(self.logits.to(z), 0)
        return log_weights + log_normal_diag(z.unsqueeze(-2), means, logvars)

    def log_prob(self, z: torch.Tensor, model=None) -> torch.Tensor:
        """log p(z), summed over dimensions, by log-sum-exp over the components."""
        return torch.logsumexp(self.component_log_probs(z), dim=-1)

    def responsibilities(self, z: torch.Tensor) -> torch.Tensor:
        """p(c|z) by Bayes' rule: (..., K), rows sum to 1 (VaDE's q(c|x) at z)."""
        return torch.softmax(self.component_log_probs(z), dim=-1)

    def sample(self, n: int, generator: torch.Generator, model=None) -> torch.Tensor:
        """``n`` draws: a component by its weight, then its Gaussian."""
        device = generator.device
        weights = torch.softmax(self.logits.detach().float(), 0).to(device)
        which = torch.multinomial(weights, n, replacement=True, generator=generator)
        eps = torch.randn((n, self.latent), generator=generator, device=device)
        means, logvars = self.means.detach().float().to(device), self.logvars.detach().float().to(device)
        return means[which] + torch.exp(0.5 * logvars[which]) * eps

    def kl_per_dimension(self, mean: torch.Tensor, logvar: torch.Tensor) -> None:
        """No closed form for a mixture: the objectives estimate the KL by Monte Carlo."""
        return None


class VampPrior(nn.Module):
    """The VampPrior (Tomczak & Welling 2018): p(z) = (1/K) sum_k q(z | u_k), K learned pseudo-inputs u_k.

    The pseudo-inputs are images, learned with the model and passed through a
    hardtanh into [0, 1] as in the authors' code; they are initialised around
    0.05 (std 0.01), also as there. The prior's components are the encoder's own
    posteriors of them, so the prior moves with the encoder.
    """

    name = "vamp"
    closed_form_kl = False

    def __init__(self, latent: int, components: int, image_shape: tuple[int, int, int]):
        super().__init__()
        self.latent, self.components = latent, components
        self.pseudo_inputs = nn.Parameter(torch.zeros(components, *image_shape))

    def reset_parameters(self) -> None:
        """Pseudo-inputs ~ N(0.05, 0.01^2) from the current RNG (seeded by ``build_model``)."""
        with torch.no_grad():
            self.pseudo_inputs.normal_(0.05, 0.01)

    def components_of(self, model) -> tuple[torch.Tensor, torch.Tensor]:
        """The components' (mean, logvar), each (K, d): the encoder's posterior of each pseudo-input."""
        images = F.hardtanh(self.pseudo_inputs, 0.0, 1.0)
        mean, logvar = model.encoder(images)
        return mean, logvar

    def log_prob(self, z: torch.Tensor, model) -> torch.Tensor:
        """log p(z) = logsumexp_k log q(z|u_k) - log K, summed over dimensions."""
        mean, logvar = self.components_of(model)
        per_component = log_normal_diag(z.unsqueeze(-2), mean.to(z), logvar.to(z))
        return torch.logsumexp(per_component, dim=-1) - math.log(self.components)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator, model) -> torch.Tensor:
        """``n`` draws: a pseudo-input uniformly, then a draw from its posterior."""
        device = generator.device
        mean, logvar = (t.float().to(device) for t in self.components_of(model))
        which = torch.randint(self.components, (n,), generator=generator, device=device)
        eps = torch.randn((n, self.latent), generator=generator, device=device)
        return mean[which] + torch.exp(0.5 * logvar[which]) * eps

    def kl_per_dimension(self, mean: torch.Tensor, logvar: torch.Tensor) -> None:
        """No closed form: the objectives estimate the KL by Monte Carlo."""
        return None


# The priors a model can have; each scores (log_prob), draws (sample) and, where it can, gives the KL in closed form.
Prior = StandardNormalPrior | MixturePrior | VampPrior


def make_prior(name: str, latent: int, components: int, image_shape: tuple[int, int, int]) -> Prior:
    """The prior called ``name``: ``normal``, ``mog`` (K learned Gaussians) or ``vamp`` (K pseudo-inputs)."""
    if name == "normal":
        return StandardNormalPrior(latent)
    if name == "mog":
        return MixturePrior(latent, components)
    if name == "vamp":
        return VampPrior(latent, components, image_shape)
    raise ValueError(f"unknown prior {name!r}")
