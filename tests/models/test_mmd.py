"""The MMD estimators and kernels of WAE-MMD and InfoVAE, against hand-computed and brute-force values."""

import math

import numpy as np
import pytest
import torch

from vaelab.models.mmd import WAE_SCALES, gaussian_kernel, imq_kernels, mmd_biased, mmd_unbiased


def brute_force(x: np.ndarray, y: np.ndarray, k, unbiased: bool) -> float:
    """MMD^2 by explicit loops over every pair, straight from its definition."""
    n, m = len(x), len(y)
    xx = [k(x[i], x[j]) for i in range(n) for j in range(n) if not (unbiased and i == j)]
    yy = [k(y[i], y[j]) for i in range(m) for j in range(m) if not (unbiased and i == j)]
    xy = [k(x[i], y[j]) for i in range(n) for j in range(m)]
    return float(np.mean(xx) + np.mean(yy) - 2 * np.mean(xy))


def imq_by_hand(a: np.ndarray, b: np.ndarray) -> float:
    c = 2.0 * len(a)
    return sum(c * s / (c * s + float(((a - b) ** 2).sum())) for s in WAE_SCALES)


def gaussian_by_hand(a: np.ndarray, b: np.ndarray) -> float:
    return math.exp(-float(((a - b) ** 2).sum()) / len(a) ** 2)


def test_a_hand_computed_case_in_one_dimension():
    # x = {0, 1}, y = {2, 4}, one scale (C = 2): k(a, b) = 2 / (2 + (a - b)^2)
    x, y = torch.tensor([[0.0], [1.0]]), torch.tensor([[2.0], [4.0]])
    kernel = imq_kernels(scales=(1.0,))
    k = lambda d2: 2 / (2 + d2)  # noqa: E731
    within_x, within_y = k(1), k(4)  # i != j only: the pairs (0, 1) and (2, 4)
    cross = (k(4) + k(16) + k(1) + k(9)) / 4
    assert float(mmd_unbiased(x, y, kernel)) == pytest.approx(within_x + within_y - 2 * cross, rel=1e-6)
    biased = (2 * k(0) + 2 * k(1)) / 4 + (2 * k(0) + 2 * k(4)) / 4 - 2 * cross
    assert float(mmd_biased(x, y, kernel)) == pytest.approx(biased, rel=1e-6)


@pytest.mark.parametrize("unbiased", [True, False])
@pytest.mark.parametrize("kernel, by_hand", [(imq_kernels(), imq_by_hand), (gaussian_kernel, gaussian_by_hand)])
def test_the_estimators_equal_the_brute_force_formula(kernel, by_hand, unbiased):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 3)), rng.normal(1.0, 2.0, size=(5, 3))
    estimate = (mmd_unbiased if unbiased else mmd_biased)(torch.from_numpy(x), torch.from_numpy(y), kernel)
    assert float(estimate) == pytest.approx(brute_force(x, y, by_hand, unbiased), rel=1e-10)


def test_the_same_points_have_zero_biased_mmd_and_the_same_distribution_near_zero_unbiased_mmd():
    x = torch.randn(50, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert float(mmd_biased(x, x.clone(), gaussian_kernel)) == pytest.approx(0.0, abs=1e-12)
    generator = torch.Generator().manual_seed(1)
    a, b = (torch.randn(2000, 4, generator=generator, dtype=torch.float64) for _ in range(2))
    same = float(mmd_unbiased(a, b, imq_kernels()))
    shifted = float(mmd_unbiased(a, b + 1.0, imq_kernels()))
    assert abs(same) < 5e-3 < shifted


def test_the_unbiased_estimator_needs_two_points():
    with pytest.raises(ValueError, match="at least two points"):
        mmd_unbiased(torch.zeros(1, 2), torch.zeros(3, 2), gaussian_kernel)
