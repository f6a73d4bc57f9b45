"""Decoders from the thesis: MLP and convolutional.

A decoder maps codes (B, latent) to pixel *logits* (B, 1, 28, 28). The thesis's
final sigmoid is applied by :meth:`LatentModel.decode_images`; the loss works on
logits, where binary cross-entropy is numerically stable.
"""

from __future__ import annotations

import torch
from torch import nn


class MLPDecoder(nn.Module):
    """Dense(hidden, LeakyReLU) -> Dense(784) -> 28x28x1 logits.

    ``hidden``: one width, or the encoder's several widths (in encoder order), which
    the decoder mirrors: 500, 500, 2000 gives latent -> 2000 -> 500 -> 500 -> 784.
    """

    def __init__(self, latent: int, hidden: int | tuple[int, ...] = 512, negative_slope: float = 0.3,
                 image_shape: tuple[int, int, int] = (1, 28, 28)):
        super().__init__()
        self.image_shape = image_shape
        widths = (hidden,) if isinstance(hidden, int) else tuple(reversed(hidden))
        n_pixels = image_shape[0] * image_shape[1] * image_shape[2]
        layers: list[nn.Module] = []
        for n_in, n_out in zip((latent, *widths[:-1]), widths):
            layers += [nn.Linear(n_in, n_out), nn.LeakyReLU(negative_slope)]
        self.net = nn.Sequential(*layers, nn.Linear(widths[-1], n_pixels))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Codes (B, latent) -> pixel logits (B, C, H, W)."""
        return self.net(z).view(-1, *self.image_shape)


def _deconv(c_in: int, c_out: int, kernel: int, stride: int, slope: float) -> list[nn.Module]:
    # Keras "same" transposed convolution: stride 1 keeps the size, stride 2 doubles it.
    padding = kernel // 2
    output_padding = stride - 1
    return [nn.ConvTranspose2d(c_in, c_out, kernel, stride, padding, output_padding), nn.LeakyReLU(slope)]


class ConvDecoder(nn.Module):
    """z as 1x1xlatent; ConvT 64@7x7 valid (7x7), 64@5x5, 64@5x5 s2 (14x14), 32@5x5,
    32@5x5 s2 (28x28), 32@5x5, all LeakyReLU; Conv 1@5x5 same -> logits."""

    def __init__(self, latent: int, hidden: int = 512, negative_slope: float = 0.3,
                 image_shape: tuple[int, int, int] = (1, 28, 28)):
        super().__init__()
        del hidden  # the convolutional decoder's width is fixed by the thesis (28x28 output: see LatentModel)
        s = negative_slope
        self.net = nn.Sequential(
            nn.Unflatten(1, (latent, 1, 1)),
            nn.ConvTranspose2d(latent, 64, 7, 1), nn.LeakyReLU(s),
            *_deconv(64, 64, 5, 1, s),
            *_deconv(64, 64, 5, 2, s),
            *_deconv(64, 32, 5, 1, s),
            *_deconv(32, 32, 5, 2, s),
            *_deconv(32, 32, 5, 1, s),
            nn.Conv2d(32, image_shape[0], 5, 1, padding=2),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Codes (B, latent) -> pixel logits (B, C, H, W)."""
        return self.net(z)  # in channels_last where the weights are (see build_model)


class ConditionalDecoder(nn.Module):
    """p(x|z,y): another decoder that reads the code beside the one-hot label (the CVAE's decoder)."""

    def __init__(self, base: nn.Module, n_classes: int):
        super().__init__()
        self.n_classes = n_classes
        self.net = base

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Codes (B, latent) and integer labels (B,) -> pixel logits."""
        from vaelab.models.encoders import one_hot

        return self.net(torch.cat([z, one_hot(labels, self.n_classes, z)], dim=1))


DECODERS = {"mlp": MLPDecoder, "conv": ConvDecoder}
