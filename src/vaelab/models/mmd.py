"""The maximum mean discrepancy between codes and prior draws: the divergence of WAE-MMD and InfoVAE.

MMD^2(P, Q) = E k(x, x') + E k(y, y') - 2 E k(x, y) for x, x' ~ P and y, y' ~ Q (Gretton et al. 2012).
Two estimators from samples x (n, d) and y (m, d), and the two kernels of the papers that use it:

- :func:`mmd_unbiased`: the within-sample terms without the diagonal (i = j), the U-statistic, as
  Tolstikhin et al.'s WAE code computes it;
- :func:`mmd_biased`: the means of the whole Gram matrices (the V-statistic), as Zhao et al.'s
  MMD-VAE code computes it; zero when the two samples are the same points;
- :func:`imq_kernels`: WAE's inverse multiquadratics k(x, y) = C / (C + ||x - y||^2), summed over
  C = 2 d sigma^2 s for the scales s in (0.1, 0.2, 0.5, 1, 2, 5, 10) (sigma^2 = 1, the prior's);
- :func:`gaussian_kernel`: MMD-VAE's k(x, y) = exp(-||x - y||^2 / d^2) (its code divides the mean
  squared difference over the d dimensions by d once more).
"""

from __future__ import annotations

import functools
import operator
from typing import Callable

import torch

Kernel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

WAE_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def prior_draws_like(model, z: torch.Tensor, noise: torch.Generator | None) -> torch.Tensor:
    """As many draws from the model's prior as ``z`` has rows, from ``noise`` (torch's global generator,
    as everywhere else, without one): the other sample of the MMD."""
    if noise is None:
        return torch.randn_like(z)  # the priors these models accept are N(0, I)
    return model.sample_prior(len(z), noise)


def squared_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """||x_i - y_j||^2 for every pair: (n, d), (m, d) -> (n, m)."""
    return (x.unsqueeze(1) - y.unsqueeze(0)).pow(2).sum(-1)


def imq_kernels(prior_variance: float = 1.0, scales: tuple[float, ...] = WAE_SCALES) -> Kernel:
    """WAE-MMD's kernel: the sum over ``scales`` of C / (C + ||x - y||^2), C = 2 d ``prior_variance`` s."""
    def kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        distances = squared_distances(x, y)
        base = 2.0 * x.shape[-1] * prior_variance
        terms = [base * s / (base * s + distances) for s in scales]
        return functools.reduce(operator.add, terms)  # sum() would start from the int 0
    return kernel


def gaussian_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """MMD-VAE's kernel: exp(-||x - y||^2 / d^2)."""
    return torch.exp(-squared_distances(x, y) / x.shape[-1] ** 2)


def mmd_unbiased(x: torch.Tensor, y: torch.Tensor, kernel: Kernel) -> torch.Tensor:
    """The U-statistic of MMD^2: within-sample kernels averaged over i != j, the cross term over all pairs."""
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        raise ValueError("the unbiased MMD needs at least two points in each sample")
    k_xx, k_yy = kernel(x, x), kernel(y, y)
    within_x = (k_xx.sum() - k_xx.diagonal().sum()) / (n * (n - 1))
    within_y = (k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    return within_x + within_y - 2.0 * kernel(x, y).mean()


def mmd_biased(x: torch.Tensor, y: torch.Tensor, kernel: Kernel) -> torch.Tensor:
    """The V-statistic of MMD^2: the means of the three Gram matrices, diagonals included."""
    return kernel(x, x).mean() + kernel(y, y).mean() - 2.0 * kernel(x, y).mean()
