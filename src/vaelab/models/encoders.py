"""Encoders from the thesis: MLP and convolutional.

An encoder maps images (B, C, H, W) to the parameters of q(z|x): ``(mean,
logvar)``. A deterministic encoder (the AE's) has no ``logvar`` head and
returns ``(code, None)``. Encoders never sample: sampling belongs to the
objective.
"""

from __future__ import annotations

import torch
from torch import nn


class Heads(nn.Module):
    """The ``mean`` head and, for a stochastic encoder, the ``logvar`` head."""

    def __init__(self, features: int, latent: int, stochastic: bool):
        super().__init__()
        self.mean = nn.Linear(features, latent)
        self.logvar = nn.Linear(features, latent) if stochastic else None

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(mean, logvar)`` of features ``h``; ``logvar`` is None for a deterministic encoder."""
        return self.mean(h), (self.logvar(h) if self.logvar is not None else None)


class MLPEncoder(nn.Module):
    """flatten C*H*W (784 for MNIST) -> Dense(hidden, LeakyReLU) -> Dense(latent) heads ``mean`` [, ``logvar``].

    ``hidden`` is one width (the thesis's one hidden layer) or several, in order
    (e.g. VaDE's 500, 500, 2000), each followed by a LeakyReLU.
    """

    def __init__(self, latent: int, hidden: int | tuple[int, ...] = 512, stochastic: bool = True,
                 negative_slope: float = 0.3, image_shape: tuple[int, int, int] = (1, 28, 28)):
        super().__init__()
        widths = (hidden,) if isinstance(hidden, int) else tuple(hidden)
        n_pixels = image_shape[0] * image_shape[1] * image_shape[2]
        layers: list[nn.Module] = [nn.Flatten()]
        for n_in, n_out in zip((n_pixels, *widths[:-1]), widths):
            layers += [nn.Linear(n_in, n_out), nn.LeakyReLU(negative_slope)]
        self.features = widths[-1]  # the trunk's output width
        self.trunk = nn.Sequential(*layers)
        self.heads = Heads(widths[-1], latent, stochastic)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Images (B, C, H, W) -> ``(mean, logvar)`` of q(z|x) (``logvar`` None for the AE)."""
        return self.heads(self.trunk(x))


def _conv(c_in: int, c_out: int, kernel: int, stride: int, same: bool, slope: float) -> list[nn.Module]:
    # "same" padding for odd kernels; with stride 2 it halves 28 -> 14 -> 7 as Keras does.
    return [nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2 if same else 0), nn.LeakyReLU(slope)]


def conv_kernel(image_shape: tuple[int, int, int]) -> tuple[int, int]:
    """The size after the conv trunk's two halvings, (H/4, W/4): the kernel of its last, "valid" layer.

    7x7 at 28x28 (the thesis's), 8x8 at 32x32, 16x16 at 64x64: the trunk is the thesis's at any size
    whose sides divide by 4 (checked where the model is built).
    """
    return image_shape[1] // 4, image_shape[2] // 4


class ConvEncoder(nn.Module):
    """Conv 32@5x5 s1, 32@5x5 s2, 64@5x5 s1, 64@5x5 s2 (same), 128@(H/4 x W/4) valid -> 1x1; Dense heads.

    At 28x28 the last kernel is the thesis's 7x7; the first layer reads the images' C channels.
    """

    def __init__(self, latent: int, hidden: int | tuple[int, ...] = 512, stochastic: bool = True,
                 negative_slope: float = 0.3, image_shape: tuple[int, int, int] = (1, 28, 28)):
        super().__init__()
        del hidden  # the convolutional encoder's width is fixed by the thesis
        s = negative_slope
        self.trunk = nn.Sequential(
            *_conv(image_shape[0], 32, 5, 1, True, s),
            *_conv(32, 32, 5, 2, True, s),
            *_conv(32, 64, 5, 1, True, s),
            *_conv(64, 64, 5, 2, True, s),
            nn.Conv2d(64, 128, conv_kernel(image_shape)), nn.LeakyReLU(s),
            nn.Flatten(),
        )
        self.features = 128  # the trunk's output width
        self.heads = Heads(128, latent, stochastic)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Images (B, C, H, W) -> ``(mean, logvar)`` of q(z|x) (``logvar`` None for the AE)."""
        return self.heads(self.trunk(x))  # in channels_last where the weights are (see build_model)


def one_hot(labels: torch.Tensor, n_classes: int, like: torch.Tensor) -> torch.Tensor:
    """Integer labels (B,) as one-hot rows (B, K) in ``like``'s dtype and device."""
    return torch.nn.functional.one_hot(labels.long().to(like.device), n_classes).to(like.dtype)


# What an objective builds its posterior network on (Objective.build_encoder): each has a trunk, its output
# width (features) and the heads.
Encoder = MLPEncoder | ConvEncoder
ENCODERS: dict[str, type[Encoder]] = {"mlp": MLPEncoder, "conv": ConvEncoder}
