"""Decoders from the thesis: MLP and convolutional.

A decoder maps codes (B, latent) to pixel *logits* (B, C, H, W). The thesis's
final sigmoid is applied by :meth:`LatentModel.decode_images`; the loss works on
logits, where binary cross-entropy is numerically stable.
"""

from __future__ import annotations

import torch
from torch import nn

from vaelab.models.encoders import conv_kernel


class MLPDecoder(nn.Module):
    """Dense(hidden, LeakyReLU) -> Dense(C*H*W) -> (C, H, W) logits (784 and 1x28x28 for MNIST).

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
    """z as 1x1xlatent; ConvT 64@(H/4 x W/4) valid, 64@5x5, 64@5x5 s2 (H/2), 32@5x5,
    32@5x5 s2 (H), 32@5x5, all LeakyReLU; Conv C@5x5 same -> logits.

    At 28x28 it is the thesis's decoder (7x7, 14x14, 28x28); the encoder's mirror at other sizes.
    """

    def __init__(self, latent: int, hidden: int | tuple[int, ...] = 512, negative_slope: float = 0.3,
                 image_shape: tuple[int, int, int] = (1, 28, 28)):
        super().__init__()
        del hidden  # the convolutional decoder's width is fixed by the thesis
        s = negative_slope
        self.net = nn.Sequential(
            nn.Unflatten(1, (latent, 1, 1)),
            nn.ConvTranspose2d(latent, 64, conv_kernel(image_shape), 1), nn.LeakyReLU(s),
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


DECODERS = {"mlp": MLPDecoder, "conv": ConvDecoder}
