"""The conditional VAE (Sohn et al. 2015): q(z|x,y) and p(x|z,y), the class label read by both networks.

Its loss is the β-VAE's (:mod:`vaelab.models.vae`); its measures pass each image's label, and its
bounds are of log p(x|y). It is the supervised reference of the variants study: its decoder is given
the class, so its codes need not separate the classes.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field
from torch import nn

from vaelab.models import vae
from vaelab.models.encoders import Encoder, Heads, one_hot


class Settings(vae.Settings):
    """The CVAE: the β-VAE's settings; the encoder and decoder read the one-hot label."""

    conditional = True
    # vaelab 0.1's flag for the CVAE, kept as an option of `vaelab train` (upgrade() reads it)
    LEGACY_OPTIONS = {"conditional": (bool, Field(False, description="condition the encoder and decoder on the "
                                                                     "class label (the CVAE: --objective cvae)"))}

    # The CVAE is the VAE with labels: its settings extend the VAE's and only its name differs (a narrower
    # discriminator than the base's, which pydantic wants and mypy reads as an incompatible override).
    objective: Literal["cvae"] = Field(  # type: ignore[assignment]
        "cvae", description="the model: its objective (overrides the preset)")

    @classmethod
    def upgrade(cls, values: dict[str, Any]) -> dict[str, Any]:
        """vaelab 0.1 asked for the CVAE as ``objective: vae`` with ``conditional: true`` (and ``--conditional``
        still does): that is ``objective: cvae``."""
        if "conditional" not in values:
            return values
        values = dict(values)
        conditional = values.pop("conditional")
        if values["objective"] in ("vae", "cvae"):
            values["objective"] = "cvae" if conditional else "vae"
        elif conditional:
            raise ValueError("conditional applies to the vae objective (the CVAE) only")
        return values


class ConditionalEncoder(nn.Module):
    """q(z|x,y) on another encoder's trunk: the trunk reads the image; the heads read its features beside the
    one-hot label."""

    def __init__(self, base_encoder: Encoder, n_classes: int, latent: int):
        super().__init__()
        self.n_classes = n_classes
        self.features = base_encoder.features
        self.trunk = base_encoder.trunk
        self.heads = Heads(base_encoder.features + n_classes, latent, stochastic=True)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, logvar)`` of q(z|x,y) for images and their integer labels."""
        h = self.trunk(x)
        return self.heads(torch.cat([h, one_hot(labels, self.n_classes, h)], dim=1))


class ConditionalDecoder(nn.Module):
    """p(x|z,y): another decoder that reads the code beside the one-hot label."""

    def __init__(self, base_decoder: nn.Module, n_classes: int):
        super().__init__()
        self.n_classes = n_classes
        self.net = base_decoder

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Codes (B, latent) and integer labels (B,) -> pixel logits."""
        return self.net(torch.cat([z, one_hot(labels, self.n_classes, z)], dim=1))


class Objective(vae.Objective):
    """The β-VAE's loss on the conditional networks."""

    settings: Settings  # this model's own settings (the base class types the settings every model shares)

    def build_encoder(self, encoder: Encoder, n_classes: int) -> nn.Module:
        return ConditionalEncoder(encoder, n_classes, self.settings.latent)

    def decoder_input(self, n_classes: int) -> int:
        return self.settings.latent + n_classes

    def build_decoder(self, decoder: nn.Module, n_classes: int) -> nn.Module:
        return ConditionalDecoder(decoder, n_classes)


PRESETS = {"cvae": {"encoder": "mlp", "decoder": "mlp", "objective": "cvae", "prior": "normal"}}  # Sohn et al. 2015
