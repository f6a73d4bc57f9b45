"""Reconstruction errors, the ELBO and the importance-weighted (IWAE) estimate of log p(x).

The IWAE bound (Burda et al. 2016) with k samples from q(z|x)::

    log p(x) >= E[ log (1/k) sum_i p(x, z_i) / q(z_i | x) ],   z_i ~ q(z|x)

tightens towards log p(x) as k grows; with k = 1 it is the ELBO. Published
MNIST figures (about 86-87 nats for a one-hidden-layer VAE) are negative
log-likelihoods on dynamically binarised test digits, which is what
:func:`likelihood_measures` reports.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from vaelab.models.base import INFERENCE_BATCH
from vaelab.models.distributions import GaussianPosterior, bce_per_example, log_normal_diag
from vaelab.seeding import torch_generator


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I), summed over the last dimension (the default prior of :func:`iwae_log_likelihood`)."""
    return log_normal_diag(z, torch.zeros_like(z), torch.zeros_like(z))


@torch.no_grad()
def iwae_log_likelihood(x: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor,
                        log_likelihood: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                        k: int, generator: torch.Generator, chunk: int = 4096,
                        log_prior: Callable[[torch.Tensor], torch.Tensor] = standard_normal_log_prob,
                        posterior=None) -> torch.Tensor:
    """Importance-sampled log p(x) per example, with proposal q(z|x) = ``posterior`` (its ``sample`` and
    ``log_prob`` of ``(mean, logvar)``): N(mean, exp(logvar)) by default, a model's own otherwise (the
    S-VAE's vMF).

    ``log_likelihood(x_rep, z)`` returns log p(x|z) for rows of repeated
    examples and their samples; ``log_prior(z)`` returns log p(z) (a model's
    own prior: :meth:`LatentModel.log_prior`; N(0, I) by default). The samples and weights
    are computed in float64 on the CPU (the same draws on every device; MPS has
    no float64); only the decoding runs where ``x`` is. At most ``chunk``
    (example, sample) rows are decoded at once: with k = 1000 and the conv
    decoder, larger chunks cost gigabytes of activations.
    """
    posterior = posterior if posterior is not None else GaussianPosterior()
    mean, logvar = mean.detach().cpu().double(), logvar.detach().cpu().double()
    n, d = mean.shape
    per_example = max(1, chunk // k)
    results = []
    for start in range(0, n, per_example):
        mu, lv, xb = mean[start:start + per_example], logvar[start:start + per_example], x[start:start + per_example]
        b = len(mu)
        mu_k, lv_k = mu.unsqueeze(1).expand(b, k, d), lv.unsqueeze(1).expand(b, k, lv.shape[-1])
        z = posterior.sample(mu_k, lv_k, generator)
        log_q = posterior.log_prob(z, mu_k, lv_k)
        x_rep = xb.unsqueeze(1).expand(b, k, *xb.shape[1:]).reshape(b * k, *xb.shape[1:])
        log_lik = log_likelihood(x_rep, z.reshape(b * k, d)).cpu().double().view(b, k)
        log_w = log_lik + log_prior(z).cpu().double() - log_q
        results.append(torch.logsumexp(log_w, dim=1) - math.log(k))
    return torch.cat(results)


def model_log_likelihood(model, labels: torch.Tensor | None = None) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """log p(x|z) under a model's own likelihood (decoded in small batches on the model's device).

    ``labels``: one per row of the ``x`` that the returned function will be called with
    (log p(x|z,y) of a conditional model); None for the others.
    """

    def log_likelihood(x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        z = z.float().to(x.device)
        return torch.cat([model.likelihood.log_prob(
            model.decode(z[i:i + INFERENCE_BATCH], labels[i:i + INFERENCE_BATCH] if labels is not None else None),
            x[i:i + INFERENCE_BATCH]) for i in range(0, len(z), INFERENCE_BATCH)])

    return log_likelihood


@torch.no_grad()
def reconstruction_errors(model, images: torch.Tensor, means=None, batch: int = INFERENCE_BATCH,
                          labels=None) -> dict[str, float]:
    """BCE (nats, summed over pixels) and MSE (per pixel) of the posterior-mean reconstructions.

    ``means``: the images' posterior means if already encoded (saves the encoder pass);
    ``labels``: their classes, for a conditional model.
    """
    images = images.to(model.device)
    if means is not None:
        means = torch.as_tensor(means, dtype=torch.float32).to(model.device)
    labels = torch.as_tensor(labels) if labels is not None else None
    bce, mse = 0.0, 0.0
    for start in range(0, len(images), batch):
        x = images[start:start + batch]
        y = labels[start:start + batch] if labels is not None else None
        code = model.encode(x, y)[0] if means is None else means[start:start + batch]
        logits = model.decode(code, y)
        bce += float(bce_per_example(logits, x).sum())
        mse += float((torch.sigmoid(logits) - x).pow(2).flatten(1).mean(1).sum())
    return {"recon_bce": bce / len(images), "recon_mse": mse / len(images)}


@torch.no_grad()
def likelihood_measures(model, images: torch.Tensor, seed: int, k: int = 1000,
                        max_examples: int | None = None, labels=None) -> dict[str, float]:
    """Negative ELBO and IWAE negative log-likelihood (nats): on dynamically binarised images for the Bernoulli
    likelihood (``*_binarized``, the literature's MNIST numbers), on the grey levels themselves for the
    continuous ones (Gaussian, continuous Bernoulli: ``neg_elbo``, ``nll_iwae``, and ``nll_iwae_bpd`` in bits
    per dimension, counting the 256 levels of a pixel as the usual 8 bits: ``nll / (D ln 2) + 8``).

    Binarisation and sampling are seeded, so the numbers are reproducible.
    ``max_examples`` evaluates a seeded subsample (IWAE costs k decoder passes
    per example). Only for models with a stochastic encoder. For a conditional
    model (``labels`` given) they bound log p(x|y), not log p(x).
    """
    images = images.cpu()
    labels = torch.as_tensor(labels) if labels is not None else None
    if max_examples is not None and max_examples < len(images):
        keep = torch.randperm(len(images), generator=torch_generator(seed, "iwae-subsample"))[:max_examples]
        images = images[keep.sort().values]
        labels = labels[keep.sort().values] if labels is not None else None
    # Binarised on the CPU (the same images on every device), then moved once.
    binarized = model.likelihood.name == "bernoulli"
    binary = (torch.bernoulli(images.cpu(), generator=torch_generator(seed, "binarize-test")) if binarized
              else images.cpu()).to(model.device)
    neg_elbo, nll = [], []
    noise = torch_generator(seed, "elbo-noise", device=model.device)
    iwae_noise = torch_generator(seed, "iwae-noise")
    for start in range(0, len(binary), INFERENCE_BATCH):
        x = binary[start:start + INFERENCE_BATCH]
        y = labels[start:start + INFERENCE_BATCH] if labels is not None else None
        mean, logvar = model.encode(x, y)
        z = model.posterior.sample(mean, logvar, noise)
        kl = model.kl(mean, logvar, z)
        neg_elbo.append((-model.likelihood.log_prob(model.decode(z, y), x) + kl).cpu())
        nll.append(-_iwae_of_batch(model, x, y, mean, logvar, k, iwae_noise))
    settings = {"iwae_k": float(k), "iwae_examples": float(len(binary))}
    if binarized:
        return {"neg_elbo_binarized": float(torch.cat(neg_elbo).mean()),
                "nll_iwae_binarized": float(torch.cat(nll).mean()), **settings}
    nll_value, dimensions = float(torch.cat(nll).mean()), binary[0].numel()
    return {"neg_elbo": float(torch.cat(neg_elbo).mean()), "nll_iwae": nll_value,
            "nll_iwae_bpd": nll_value / (dimensions * math.log(2)) + 8.0, **settings}


def _iwae_of_batch(model, x, labels, mean, logvar, k: int, generator: torch.Generator) -> torch.Tensor:
    """:func:`iwae_log_likelihood` for one batch, with the model's own likelihood and prior; a conditional
    model's rows of the same image share its label, decoded in the order :func:`iwae_log_likelihood` uses."""
    if labels is None:
        return iwae_log_likelihood(x, mean, logvar, model_log_likelihood(model), k, generator,
                                   log_prior=model.log_prior, posterior=model.posterior)
    per_example = max(1, 4096 // k)  # iwae_log_likelihood's chunks: one call per chunk gets its labels
    return torch.cat([iwae_log_likelihood(
        x[i:i + per_example], mean[i:i + per_example], logvar[i:i + per_example],
        model_log_likelihood(model, labels[i:i + per_example].repeat_interleave(k)), k, generator,
        log_prior=model.log_prior, posterior=model.posterior) for i in range(0, len(x), per_example)])


@torch.no_grad()
def kl_monte_carlo(model, images: torch.Tensor, seed: int, labels=None) -> dict[str, float]:
    """Mean KL(q(z|x) || p(z)) over ``images`` (nats), one seeded draw per image: for priors without a
    closed-form KL, whose KL does not split into per-dimension terms."""
    images = images.to(model.device)
    labels = torch.as_tensor(labels) if labels is not None else None
    noise = torch_generator(seed, "kl-noise", device=model.device)
    total = 0.0
    for start in range(0, len(images), INFERENCE_BATCH):
        y = labels[start:start + INFERENCE_BATCH] if labels is not None else None
        mean, logvar = model.encode(images[start:start + INFERENCE_BATCH], y)
        z = model.posterior.sample(mean, logvar, noise)
        total += float(model.kl(mean, logvar, z).sum())
    return {"kl_total": total / len(images)}
