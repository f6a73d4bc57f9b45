"""The adversarial auto-encoder, AAE (Makhzani et al. 2016, "Adversarial autoencoders"), and its
unsupervised clustering form.

The AAE is a deterministic auto-encoder whose aggregate posterior q(z), the codes of the data, is matched
to the prior p(z) = N(0, I) by a discriminator: the discriminator learns to tell prior draws (real) from
codes (fake), and the encoder learns to fool it. As in the paper, each batch takes three steps, each with
its own optimiser (:meth:`Objective.phases`): the reconstruction (encoder and decoder on -log p(x|z)), the
discriminator (its cross-entropy), and the encoder against it (-log D(code is real), weighted by λ). With
``training: joint`` it takes one Adam step of their sum instead, each side learning from its own loss only
(:mod:`vaelab.models.adversarial`).

With ``clusters: K`` it is the paper's unsupervised clustering AAE (its section 6): the encoder gives a
categorical y = softmax over K clusters beside a continuous style z of ``latent`` dimensions; the decoder
reads both; one discriminator matches y to the uniform categorical (one-hot draws), another z to N(0, I).
The code every measure reads is [y, z], K + latent wide, and the model's own cluster of an image is argmax y.
Its prior, for generation, is a uniform one-hot y beside N(0, I) z.

Departures, named. The paper's steps use SGD with momentum 0.9 at rates of their own; vaelab's use Adam at
the run's rate (the discriminators' with betas 0.5, 0.9). The discriminators are 2 layers of 1,000 units as
the paper's MNIST networks, with LeakyReLU(0.2) instead of ReLU (the shared discriminator's). The
reconstruction is vaelab's -log p(x|z) (BCE), where the paper's MNIST runs use the squared error. The paper's
MNIST clustering networks are 3,000 wide; vaelab's encoder and decoder are the configured ones. The paper
labels each cluster by its most confident validation example; vaelab's ``own_majority_accuracy`` labels it
by its majority class.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from vaelab.models import base
from vaelab.models.adversarial import Discriminator, discriminator_loss, fixed_logits, param_groups
from vaelab.models.distributions import LOG_2PI
from vaelab.models.encoders import Encoder

DISCRIMINATOR_WIDTH, DISCRIMINATOR_LAYERS = 1000, 2  # Makhzani et al.'s MNIST discriminator


class Settings(base.ModelSettings):
    """The AAE: λ (``adversarial_weight``) on the encoder's adversarial term; ``clusters`` K > 0 makes it
    the clustering AAE, whose code is K cluster probabilities beside ``latent`` style dimensions."""

    objective: Literal["aae"] = Field("aae", description="the model: its objective (overrides the preset)")
    adversarial_weight: float = Field(
        1.0, ge=0.0, description="aae: λ, the weight of the encoder's adversarial term in the joint step (the "
                                 "alternating steps give that term its own Adam, which a weight would not change)")
    training: Literal["alternating", "joint"] = Field(
        "alternating", description="aae: alternating (the paper's three steps per batch, each with its own Adam: "
                                   "reconstruction, discriminator, encoder against it) or joint (one step of their sum)")
    clusters: int = Field(
        0, ge=0, le=1000, description="aae: K > 0 makes it the clustering AAE: a categorical y over K clusters "
                                      "beside the latent style z, each matched to its prior by a discriminator")

    def prior_reason(self) -> str:
        return ": its discriminator matches the codes to N(0, I) draws"

    def weight(self) -> tuple[str, str, float] | None:
        return ("adversarial_weight", "λ", self.adversarial_weight)

    def extras(self) -> list[str]:
        return ([f"{self.clusters} clusters"] if self.clusters else []) + super().extras()


class ClusterStyleEncoder(nn.Module):
    """[y, z] on another encoder's trunk: y = softmax of a ``cluster`` head over K clusters, z the configured
    encoder's deterministic heads (the style). Returns ``(code, None)`` as a deterministic encoder does."""

    def __init__(self, base_encoder: Encoder, clusters: int):
        super().__init__()
        self.features = base_encoder.features
        self.trunk = base_encoder.trunk
        self.cluster = nn.Linear(base_encoder.features, clusters)
        self.heads = base_encoder.heads

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The cluster logits (B, K)."""
        return self.cluster(self.trunk(x))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        h = self.trunk(x)
        style, _ = self.heads(h)
        return torch.cat([torch.softmax(self.cluster(h).float(), 1).to(style.dtype), style], dim=1), None


class CategoricalStylePrior(nn.Module):
    """p(y, z) = Cat(y; 1/K) N(z; 0, I) on codes [y, z]: the clustering AAE's prior (one-hot y)."""

    name = "categorical-normal"
    closed_form_kl = False

    def __init__(self, clusters: int, latent: int):
        super().__init__()
        self.clusters, self.latent = clusters, latent

    def log_prob(self, code: torch.Tensor, model=None) -> torch.Tensor:
        """log p(y, z) with y the code's most probable cluster: -log K + log N(z; 0, I)."""
        style = code[..., self.clusters:]
        return -math.log(self.clusters) - 0.5 * (LOG_2PI + style.pow(2)).sum(-1)

    def sample(self, n: int, generator: torch.Generator, model=None) -> torch.Tensor:
        """``n`` codes: a uniform one-hot y beside an N(0, I) z."""
        which = torch.randint(self.clusters, (n,), generator=generator, device=generator.device)
        style = torch.randn((n, self.latent), generator=generator, device=generator.device)
        return torch.cat([F.one_hot(which, self.clusters).float(), style], dim=1)

    def kl_per_dimension(self, mean: torch.Tensor, logvar: torch.Tensor) -> None:
        return None


def _fool(discriminator: Discriminator, codes: torch.Tensor) -> torch.Tensor:
    """-log D(codes are real), the encoder's adversarial term (the non-saturating one), averaged."""
    return -torch.log_softmax(fixed_logits(discriminator, codes), 1)[:, 0].mean()


class Objective(base.Objective):
    """recon + λ (fool D_z [+ fool D_y]) + D_z's [+ D_y's] cross-entropy; ``adversarial`` is the encoder's
    unweighted term, ``discriminator`` the discriminators' loss."""

    settings: Settings  # this model's own settings (the base class types the settings every model shares)

    stochastic = False
    terms = ("loss", "recon", "adversarial", "discriminator")

    def build_encoder(self, encoder: Encoder, n_classes: int) -> nn.Module:
        """The configured encoder, or [y, z] on its trunk for the clustering AAE."""
        return ClusterStyleEncoder(encoder, self.settings.clusters) if self.settings.clusters else encoder

    def decoder_input(self, n_classes: int) -> int:
        return self.settings.clusters + self.settings.latent

    def prepare(self, model) -> None:
        model.discriminator = Discriminator(self.settings.latent, DISCRIMINATOR_WIDTH, DISCRIMINATOR_LAYERS)
        if self.settings.clusters:
            model.cluster_discriminator = Discriminator(self.settings.clusters, DISCRIMINATOR_WIDTH,
                                                        DISCRIMINATOR_LAYERS)
            model.prior = CategoricalStylePrior(self.settings.clusters, self.settings.latent)

    def phases(self, model) -> list[base.Phase]:
        """The paper's steps per batch, each with its own Adam: the reconstruction (encoder and decoder), the
        discriminators (betas 0.5, 0.9), then the encoder against them. None for ``training: joint``."""
        if self.settings.training == "joint":
            return []
        discriminators = self._discriminators(model)
        theirs = {id(p) for d in discriminators for p in d.parameters()}
        return [base.Phase("recon", [p for p in model.parameters() if id(p) not in theirs]),
                base.Phase("discriminator", [p for d in discriminators for p in d.parameters()], betas=(0.5, 0.9)),
                base.Phase("adversarial", list(model.encoder.parameters()))]

    def param_groups(self, model):
        return param_groups(model, self._discriminators(model), betas=(0.5, 0.9))

    def _discriminators(self, model) -> list[nn.Module]:
        return [model.discriminator] + ([model.cluster_discriminator] if self.settings.clusters else [])

    def has_clusters(self, model) -> bool:
        return self.settings.clusters > 0

    def clusters(self, model, x: torch.Tensor) -> torch.Tensor | None:
        """argmax y: the most probable of the K clusters."""
        return model.encoder.logits(x).argmax(1) if self.settings.clusters else None

    def __call__(self, model, x: torch.Tensor, target: torch.Tensor, noise: torch.Generator | None = None,
                 labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        code, _ = model.encode(x, labels)
        recon = -model.likelihood.log_prob(model.decode(code, labels), target).mean()
        k = self.settings.clusters
        # As many prior draws as the batch has codes, from the objective's noise stream (torch's global
        # generator without one, as elsewhere)
        drawn = model.sample_prior(len(code), noise if noise is not None else torch.default_generator)
        codes, draws = code.float(), drawn.to(code.device).float()
        adversarial = _fool(model.discriminator, codes[:, k:])
        discriminator = discriminator_loss(model.discriminator, draws[:, k:], codes[:, k:])
        if k:
            adversarial = adversarial + _fool(model.cluster_discriminator, codes[:, :k])
            discriminator = discriminator + discriminator_loss(model.cluster_discriminator, draws[:, :k], codes[:, :k])
        loss = recon + self.settings.adversarial_weight * adversarial + discriminator
        return {"loss": loss, "recon": recon, "adversarial": adversarial, "discriminator": discriminator}


PRESETS: dict[str, dict[str, Any]] = {
    "aae": {"encoder": "mlp", "decoder": "mlp", "objective": "aae", "prior": "normal"},
    # Makhzani et al.'s unsupervised clustering on MNIST: 16 clusters (they also report 30); --latent sets the
    # style's dimensions (5 in the runs of docs/results/generative-aes.md)
    "aae-cluster": {"encoder": "mlp", "decoder": "mlp", "objective": "aae", "prior": "normal", "clusters": 16},
}
