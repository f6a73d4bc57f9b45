"""Encoders from the thesis: MLP and convolutional.

An encoder maps images (B, C, H, W) to the parameters of q(z|x): ``(mean,
logvar)``. A deterministic encoder (the AE's) has no ``logvar`` head and
returns ``(code, None)``. Encoders never sample: sampling belongs to the
objective.
"""

from __future__ import annotations

import torch
from torch import nn


class _Heads(nn.Module):
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
        self.heads = _Heads(widths[-1], latent, stochastic)

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

    def __init__(self, latent: int, hidden: int = 512, stochastic: bool = True,
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
        self.heads = _Heads(128, latent, stochastic)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Images (B, C, H, W) -> ``(mean, logvar)`` of q(z|x) (``logvar`` None for the AE)."""
        return self.heads(self.trunk(x))  # in channels_last where the weights are (see build_model)


class MixtureEncoder(nn.Module):
    """q(y|x) q(z|x,y) on another encoder's trunk: the GMVAE's posterior (Rui Shu's formulation).

    A ``cluster`` head gives the logits of the categorical q(y|x); the Gaussian
    heads read the trunk's features beside the one-hot y, giving q(z|x,y) for
    every y at once. ``forward`` returns the moment-matched Gaussian of the
    mixture sum_y q(y|x) q(z|x,y) (its mean is the code the measures read);
    :meth:`posterior` gives the parts the objective needs.
    """

    def __init__(self, base: nn.Module, components: int, latent: int):
        super().__init__()
        self.components = components
        self.features = base.features
        self.trunk = base.trunk
        self.cluster = nn.Linear(base.features, components)
        self.heads = _Heads(base.features + components, latent, stochastic=True)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(logits of q(y|x) (B, K), means (B, K, d), logvars (B, K, d))`` of q(z|x,y) for every y."""
        h = self.trunk(x)
        batch, k = len(h), self.components
        onehots = torch.eye(k, dtype=h.dtype, device=h.device).expand(batch, k, k)
        mean, logvar = self.heads(torch.cat([h.unsqueeze(1).expand(batch, k, h.shape[1]), onehots], dim=2))
        return self.cluster(h), mean, logvar

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The mixture's mean and log-variance (moment-matched, per dimension)."""
        logits, means, logvars = self.posterior(x)
        weights = torch.softmax(logits.float(), dim=1).unsqueeze(2)
        means, variances = means.float(), logvars.float().exp()
        mean = (weights * means).sum(1)
        variance = (weights * (variances + means.pow(2))).sum(1) - mean.pow(2)
        return mean, variance.clamp_min(1e-12).log()


class ConditionalEncoder(nn.Module):
    """q(z|x,y) on another encoder's trunk: the CVAE's encoder (Sohn et al. 2015).

    The trunk reads the image; the heads read its features beside the one-hot label.
    """

    def __init__(self, base: nn.Module, n_classes: int, latent: int):
        super().__init__()
        self.n_classes = n_classes
        self.features = base.features
        self.trunk = base.trunk
        self.heads = _Heads(base.features + n_classes, latent, stochastic=True)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, logvar)`` of q(z|x,y) for images and their integer labels."""
        h = self.trunk(x)
        return self.heads(torch.cat([h, one_hot(labels, self.n_classes, h)], dim=1))


def one_hot(labels: torch.Tensor, n_classes: int, like: torch.Tensor) -> torch.Tensor:
    """Integer labels (B,) as one-hot rows (B, K) in ``like``'s dtype and device."""
    return torch.nn.functional.one_hot(labels.long().to(like.device), n_classes).to(like.dtype)


ENCODERS = {"mlp": MLPEncoder, "conv": ConvEncoder}
