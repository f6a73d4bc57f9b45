"""Assemble an encoder, a decoder, the probabilistic model and a model's objective into a :class:`LatentModel`."""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from vaelab.errors import ConfigError
from vaelab.models.base import ModelSettings
from vaelab.models.decoders import DECODERS
from vaelab.models.distributions import GaussianPosterior, make_likelihood, make_prior
from vaelab.models.encoders import ENCODERS, Heads
from vaelab.models.registry import make_objective
from vaelab.seeding import seeded_torch


class LatentModel(nn.Module):
    """An encoder and a decoder trained by an objective, with the prior, posterior and likelihood they assume.

    ``encode`` returns ``(mean, logvar)`` (``logvar`` is None for the AE);
    ``decode`` returns logits; ``decode_images`` returns pixels in [0, 1].
    Each takes the images' class ``labels`` too, which only a conditional model
    (the CVAE) reads and needs.
    ``log_prior``, ``sample_prior`` and ``kl`` are what every measure asks
    instead of assuming N(0, I); a learned prior (``self.prior``) is a part of
    the model like the encoder and decoder.
    """

    def __init__(self, config: ModelSettings, image_shape: tuple[int, int, int] = (1, 28, 28), n_classes: int = 10):
        super().__init__()
        self.config = config
        channels, height, width = image_shape  # a list where it was read back from JSON
        self.image_shape = (int(channels), int(height), int(width))
        self.n_classes = n_classes
        self.conditional = config.conditional
        if "conv" in (config.encoder, config.decoder) and (height % 4 or width % 4 or min(height, width) < 8):
            raise ConfigError(f"the conv encoder/decoder halve the images twice, so their sides must divide by 4 "
                              f"(28, 32, 64, ...), but the images are {height}x{width}: use --encoder mlp "
                              "--decoder mlp")
        self.objective = make_objective(config)
        self.encoder = self.objective.build_encoder(ENCODERS[config.encoder](
            config.latent, config.mlp_widths(), self.objective.stochastic, config.negative_slope, self.image_shape
        ), n_classes)
        self.decoder = self.objective.build_decoder(DECODERS[config.decoder](
            self.objective.decoder_input(n_classes), config.mlp_widths(), config.negative_slope, self.image_shape
        ), n_classes)
        self.prior = make_prior(config.prior, config.latent, config.prior_components(), self.image_shape)
        self.posterior = GaussianPosterior()
        self.likelihood = make_likelihood(config.likelihood, self.image_shape[0])
        self.objective.prepare(self)

    @property
    def device(self) -> torch.device:
        """The device the model's weights are on (inputs must be moved there)."""
        return next(self.parameters()).device

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Parameters of q(z|x) (q(z|x,y) for a conditional model): posterior mean and log-variance (None for
        the AE)."""
        if self.conditional:
            return self.encoder(x, self._labels(labels))
        return self.encoder(x)

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Pixel logits for codes ``z`` (and labels, for a conditional model)."""
        if self.conditional:
            return self.decoder(z, self._labels(labels))
        return self.decoder(z)

    def decode_images(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Pixels in [0, 1] for codes ``z``: the likelihood's mean (the thesis's sigmoid output)."""
        return self.likelihood.mean(self.decode(z, labels))

    def _labels(self, labels: torch.Tensor | None) -> torch.Tensor:
        if labels is None:
            raise ValueError("a conditional model (cvae) encodes and decodes with the class labels: pass labels")
        return torch.as_tensor(labels)

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) under the model's prior, summed over dimensions: (..., d) -> (...)."""
        return self.prior.log_prob(z, self)

    def sample_prior(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """``n`` draws from the prior, on the generator's device."""
        return self.prior.sample(n, generator, self)

    @property
    def has_clusters(self) -> bool:
        """Whether the model assigns images to clusters of its own (a mixture prior, a categorical y)."""
        return self.objective.has_clusters(self)

    def clusters(self, x: torch.Tensor) -> torch.Tensor:
        """The model's own cluster of each image (its objective says how: argmax q(y|x) for the GMVAE,
        argmax p(c|z) at the posterior mean under a mixture prior, VaDE's q(c|x))."""
        clusters = self.objective.clusters(self, x)
        if clusters is None:
            raise ValueError(f"a {self.config.objective} model with the {self.config.prior} prior has no clusters")
        return clusters

    def kl(self, mean: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        """KL(q(z|x) || p(z)) per example: in closed form where the prior has one, else the one-sample
        Monte-Carlo estimate log q(z|x) - log p(z) at the draws ``z`` (which it then needs)."""
        closed = self.prior.kl_per_dimension(mean, logvar)
        if closed is not None:
            return closed.sum(-1)
        if z is None:
            raise ValueError(f"the {self.prior.name} prior's KL has no closed form: pass the draws z")
        return self.posterior.log_prob(z, mean, logvar) - self.log_prior(z)

    def reconstruct(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Decode the posterior mean (the code, for the AE): deterministic reconstructions."""
        mean, _ = self.encode(x, labels)
        return self.decode_images(mean, labels)


def build_model(config: ModelSettings, seed: int, image_shape: tuple[int, int, int] = (1, 28, 28),
                n_classes: int = 10) -> LatentModel:
    """Build a model whose initial weights depend only on ``seed`` and each part's shape.

    Each part is initialised on its own random stream: models built with the
    same seed share the decoder's initial weights whatever their encoder or
    objective, and an AE and a VAE share the encoder trunk and mean head too
    (the VAE's extra ``logvar`` head has a stream of its own). ``n_classes``: the
    labels a conditional model (the CVAE) reads.
    """
    with torch.random.fork_rng(devices=[]):
        model = LatentModel(config, image_shape, n_classes)
    # Every posterior network has the configured encoder's trunk and ends in its heads.
    trunk, heads = cast(nn.Module, model.encoder.trunk), cast(Heads, model.encoder.heads)
    parts: dict[str, nn.Module | None] = {
        "decoder": model.decoder,
        "encoder-trunk": trunk,
        "encoder-mean": heads.mean,
        "encoder-logvar": heads.logvar,
    }
    for name, part in parts.items():
        if part is None:
            continue
        kind = config.decoder if name == "decoder" else config.encoder
        width = config.hidden if config.hidden_layers is None else ",".join(map(str, config.hidden_layers))
        with seeded_torch(seed, "init", name, kind, config.latent, width):
            _reset(part)
    # Every other part with weights (a learned prior, a cluster head, ...) on a stream of its own, named
    # after it: no part is ever initialised from the unseeded global RNG, whatever the model.
    others = [(name, part) for name, part in model.named_children() if name not in ("encoder", "decoder")]
    others += [(f"encoder-{name}", part) for name, part in model.encoder.named_children()
               if name not in ("trunk", "heads")]
    for name, part in others:
        if any(True for _ in part.parameters()) or any(True for _ in part.buffers()):  # e.g. an EMA codebook
            with seeded_torch(seed, "init", name, type(part).__name__, config.latent, config.prior_components()):
                _reset(part)
    if "conv" in (config.encoder, config.decoder):
        # oneDNN's faster layout for these convolutions on CPU: a conv-VAE training step
        # is 6% faster with AVX2 and about 20% with AVX-512 (measured, bench/precision.py).
        # Saved weights are made contiguous, so files are the same in either layout.
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs omit it
    return model


def _reset(part: nn.Module) -> None:
    """Re-initialise every layer of ``part`` in a fixed order from the current RNG."""
    for module in part.modules():
        reset = getattr(module, "reset_parameters", None)
        if callable(reset):
            reset()
