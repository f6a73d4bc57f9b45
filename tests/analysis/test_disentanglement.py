"""Disentanglement metrics on synthetic codes with known answers, and hand-computed pieces."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from vaelab.analysis import disentanglement as dis

SIZES = (3, 6, 40, 32, 32)  # dSprites' shape, scale, orientation, x, y


def grid_sample(n: int, seed: int = 0) -> np.ndarray:
    """``n`` random points of the dSprites factor grid, as integer indices (N, 5)."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(size, size=n) for size in SIZES], axis=1)


@pytest.fixture(scope="module")
def factors() -> np.ndarray:
    return grid_sample(3000)


def perfect(factors: np.ndarray) -> np.ndarray:
    """Codes equal to the factors (scaled to unit range, a little noise): one dimension per factor."""
    rng = np.random.default_rng(1)
    return factors / (np.array(SIZES) - 1) + 0.001 * rng.normal(size=factors.shape)


def random_codes(factors: np.ndarray) -> np.ndarray:
    return np.random.default_rng(2).normal(size=(len(factors), 5))


SMALL = {"beta_vae_score": dict(num_train=500, num_eval=300), "factor_vae_score": dict(num_train=500, num_eval=300),
         "mig": {}, "dci": dict(num_train=2000, num_test=1000), "sap": dict(num_train=2000, num_test=1000)}


@pytest.mark.parametrize("name,key,low", [("beta_vae_score", "beta_vae_score", 0.98),
                                          ("factor_vae_score", "factor_vae_score", 0.98),
                                          ("mig", "mig", 0.85),
                                          ("dci", "dci_disentanglement", 0.9),
                                          ("dci", "dci_completeness", 0.9),
                                          ("sap", "sap", 0.1)])
def test_codes_equal_to_the_factors_score_high(factors, name, key, low):
    assert getattr(dis, name)(perfect(factors), factors, **SMALL[name])[key] > low


@pytest.mark.parametrize("name,key,high", [("beta_vae_score", "beta_vae_score", 0.35),  # chance is 1/5
                                           ("factor_vae_score", "factor_vae_score", 0.35),
                                           ("mig", "mig", 0.05),
                                           ("dci", "dci_disentanglement", 0.3),
                                           ("sap", "sap", 0.05)])
def test_random_codes_score_near_chance(factors, name, key, high):
    assert getattr(dis, name)(random_codes(factors), factors, **SMALL[name])[key] < high


def test_sap_on_binary_factors_is_the_gap_between_a_perfect_predictor_and_chance():
    rng = np.random.default_rng(5)
    binary = rng.integers(2, size=(4000, 3))
    codes = binary + 0.01 * rng.normal(size=binary.shape)
    # each factor: its own dimension predicts it perfectly (1.0); any other is at chance (about 0.5)
    assert dis.sap(codes, binary, num_train=2000, num_test=1000)["sap"] == pytest.approx(0.5, abs=0.04)


def test_dci_informativeness_is_the_forest_s_accuracy(factors):
    result = dis.dci(perfect(factors), factors, **SMALL["dci"])
    assert result["dci_informativeness"] > 0.95  # every factor is recoverable from its dimension
    assert dis.dci(random_codes(factors), factors, **SMALL["dci"])["dci_informativeness"] < 0.4


def test_a_factor_split_over_two_dimensions_lowers_mig(factors):
    codes = perfect(factors)
    whole = dis.mig(codes, factors)
    split = np.concatenate([codes, codes[:, 2:3] + 0.001 * np.random.default_rng(3).normal(size=(len(codes), 1))],
                           axis=1)  # orientation carried twice
    halves = dis.mig(split, factors)
    assert halves["mig_factor_2"] < 0.1 < whole["mig_factor_2"]
    assert halves["mig"] < whole["mig"] - 0.1
    assert halves["mig_factor_0"] == pytest.approx(whole["mig_factor_0"])


def test_constant_factors_are_left_out(factors):
    with_colour = np.concatenate([np.zeros((len(factors), 1), dtype=int), factors], axis=1)
    assert dis.mig(perfect(factors), with_colour) == dis.mig(perfect(factors), factors) or \
        dis.mig(perfect(factors), with_colour)["mig"] == pytest.approx(dis.mig(perfect(factors), factors)["mig"])
    with pytest.raises(ValueError, match="every factor is constant"):
        dis.mig(perfect(factors), np.zeros((len(factors), 2), dtype=int))


def test_discretize_matches_numpy_histogram():
    x = np.random.default_rng(4).normal(size=(500, 3))
    binned = dis.discretize(x, bins=20)
    for j in range(3):
        counts = np.histogram(x[:, j], 20)[0]
        assert np.array_equal(np.bincount(binned[:, j] - 1, minlength=20), counts)


def test_mutual_information_by_hand():
    # z copies f exactly: I(z; f) = H(f) = log 2 for a fair coin; an independent z: 0
    f = np.array([[0], [1], [0], [1]])
    z = np.array([[5, 1], [7, 1], [5, 2], [7, 2]])
    info = dis.mutual_information(z, f)
    assert info[0, 0] == pytest.approx(np.log(2)) and info[1, 0] == pytest.approx(0.0)
    assert info[0, 0] == pytest.approx(skm.mutual_info_score(f[:, 0], z[:, 0]))


def test_normalised_entropy_by_hand():
    rows = np.array([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    assert dis._entropy_normalised(rows, 3) == pytest.approx([1.0, 0.0, 1 - np.log(2) / np.log(3)])


def test_factor_vae_with_collapsed_dimensions_ignores_them(factors):
    codes = np.concatenate([perfect(factors) * 3, np.zeros((len(factors), 2))], axis=1)  # 2 dead dimensions
    result = dis.factor_vae_score(codes, factors, num_train=300, num_eval=200)
    assert result["factor_vae_active_dims"] == 5 and result["factor_vae_score"] > 0.98
    dead = dis.factor_vae_score(np.zeros((len(factors), 3)), factors, num_train=10, num_eval=10)
    assert dead["factor_vae_score"] == 0.0 and dead["factor_vae_active_dims"] == 0


def test_metrics_are_seeded(factors):
    codes = random_codes(factors)
    assert dis.beta_vae_score(codes, factors, seed=3, **SMALL["beta_vae_score"]) == \
        dis.beta_vae_score(codes, factors, seed=3, **SMALL["beta_vae_score"])
    assert dis.sap(codes, factors, seed=3, **SMALL["sap"]) == dis.sap(codes, factors, seed=3, **SMALL["sap"])


def test_bad_shapes_are_refused(factors):
    with pytest.raises(ValueError, match=r"factors must be \(N, K\)"):
        dis.mig(perfect(factors), factors[:, 0])
    with pytest.raises(ValueError, match="at least 2"):
        dis.mig(perfect(factors)[:, :1], factors)

