"""The ex-post density (Ghosh et al. 2020): its fit against scikit-learn's, its draws against the mixture's
moments, and its file."""

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from vaelab.analysis.expost import MAX_ITER, TOLERANCE, CategoricalExPost, ExPostDensity, fit_expost, load_expost
from vaelab.errors import RunError
from vaelab.seeding import derive_seed


def three_blobs(n: int = 600, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0, 0.0], [6.0, 0.0, 1.0], [0.0, 5.0, -3.0]])
    return np.concatenate([c + rng.normal(size=(n // 3, 3)) * s for c, s in zip(centres, (0.5, 1.0, 2.0))])


def test_the_fit_is_scikit_learns_mixture_with_ghosh_et_als_settings():
    codes = three_blobs()
    density = fit_expost(codes, 3, seed=7)
    with threadpool_limits(1):  # as the fit: its last bits depend on BLAS's threads
        oracle = GaussianMixture(n_components=3, covariance_type="full", max_iter=MAX_ITER, tol=TOLERANCE,
                                 random_state=derive_seed(7, "expost-fit") % (2**32)).fit(codes)
    np.testing.assert_array_equal(density.weights, oracle.weights_)
    np.testing.assert_array_equal(density.means, oracle.means_)
    np.testing.assert_array_equal(density.covariances, oracle.covariances_)
    assert density.log_likelihood == pytest.approx(oracle.score(codes))
    assert density.converged and density.iterations == oracle.n_iter_
    assert (MAX_ITER, TOLERANCE) == (2000, 1e-3)  # Ghosh et al.'s code: GaussianMixture(max_iter=2000, tol=1e-3)


def test_draws_follow_the_mixture():
    density = fit_expost(three_blobs(), 3, seed=0)
    z = density.sample(200_000, seed=1).astype(np.float64)
    assert z.shape == (200_000, 3) and z.dtype == np.float64
    # the mixture's mean and covariance, by hand: sum_k w_k mu_k and sum_k w_k (S_k + mu_k mu_k^T) - mu mu^T
    mean = density.weights @ density.means
    second = sum(w * (s + np.outer(m, m)) for w, m, s in zip(density.weights, density.means, density.covariances))
    np.testing.assert_allclose(z.mean(0), mean, atol=0.03)
    np.testing.assert_allclose(np.cov(z.T), second - np.outer(mean, mean), atol=0.1)


def test_each_component_is_drawn_with_its_weight_and_its_own_covariance():
    means = np.array([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]])  # far apart: each draw's component is plain
    covariances = np.array([np.eye(2), [[4.0, 1.5], [1.5, 1.0]], [[0.25, 0.0], [0.0, 9.0]]])
    density = ExPostDensity(np.array([0.2, 0.3, 0.5]), means, covariances, True, 1, 0.0)
    z = density.sample(100_000, seed=2).astype(np.float64)
    nearest = np.argmin(((z[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_allclose(np.bincount(nearest, minlength=3) / len(z), density.weights, atol=0.005)
    for k in range(3):
        np.testing.assert_allclose(np.cov(z[nearest == k].T), covariances[k], atol=0.1 * covariances[k].max())


def test_draws_are_in_random_component_order_and_repeat_with_their_seed():
    density = fit_expost(three_blobs(), 3, seed=0)
    first = density.sample(12, seed=3)
    np.testing.assert_array_equal(first, density.sample(12, seed=3))
    assert not np.array_equal(first, density.sample(12, seed=4))
    nearest = np.argmin(((first[:, None, :] - density.means[None]) ** 2).sum(-1), axis=1)
    assert len(set(nearest[:6].tolist())) > 1  # scikit-learn's sample() would give one component's draws first


def test_components_are_capped_at_the_distinct_codes():
    codes = np.repeat(np.array([[0.0, 1.0], [2.0, 3.0]]), 5, axis=0)  # one class, two distinct codes
    density = fit_expost(codes, 10, seed=0)
    assert density.components == 2
    assert np.isfinite(density.sample(5, seed=0)).all()
    assert fit_expost(np.zeros((4, 2)), 10, seed=0).components == 1
    with pytest.raises(ValueError, match="N > 0"):
        fit_expost(np.zeros((0, 2)), 10, seed=0)


def test_the_file_round_trips_and_refuses_damage(tmp_path):
    density = fit_expost(three_blobs(), 3, seed=0)
    density.save(tmp_path / "expost.npz")
    again = ExPostDensity.load(tmp_path / "expost.npz")
    np.testing.assert_array_equal(again.sample(20, seed=5), density.sample(20, seed=5))
    assert (again.converged, again.iterations, again.log_likelihood) == \
        (density.converged, density.iterations, density.log_likelihood)

    np.savez(tmp_path / "bad.npz", weights=np.array([0.5, 0.6]), means=np.zeros((2, 3)),
             covariances=np.stack([np.eye(3)] * 2), converged=True, iterations=1, log_likelihood=0.0)
    with pytest.raises(RunError, match="not an ex-post density: evaluate the run again"):
        ExPostDensity.load(tmp_path / "bad.npz")  # weights that do not sum to 1
    np.savez(tmp_path / "indefinite.npz", weights=np.array([1.0]), means=np.zeros((1, 2)),
             covariances=-np.eye(2)[None], converged=True, iterations=1, log_likelihood=0.0)
    with pytest.raises(RunError, match="damaged or not an ex-post density"):
        ExPostDensity.load(tmp_path / "indefinite.npz")
    np.savez(tmp_path / "pickled.npz", weights=np.array([{"a": 1}], dtype=object))
    with pytest.raises(RunError, match="damaged"):
        ExPostDensity.load(tmp_path / "pickled.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(RunError, match="damaged"):
        ExPostDensity.load(tmp_path / "junk.npz")


# --- a quantised code's ex-post density: a categorical per position over the codebook (the VQ-VAE's) ---------------

CODEBOOK = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
# 2 positions: the first takes vectors 0, 0, 1, 2 (frequencies 1/2, 1/4, 1/4), the second always 2
INDICES = np.array([[0, 2], [0, 2], [1, 2], [2, 2]])


def _quantised_codes() -> np.ndarray:
    return CODEBOOK[INDICES].reshape(len(INDICES), -1)


def test_the_categorical_is_each_position_s_index_frequencies():
    density = fit_expost(_quantised_codes(), 10, seed=0, quantised=(INDICES, CODEBOOK))
    assert isinstance(density, CategoricalExPost)
    np.testing.assert_allclose(density.probabilities, [[0.5, 0.25, 0.25], [0.0, 0.0, 1.0]])
    assert density.latent == 4 and density.components == 3
    # the mean log-probability of the training codes, by hand: position 2 is certain
    expected = np.mean([np.log(0.5), np.log(0.5), np.log(0.25), np.log(0.25)])
    assert density.log_likelihood == pytest.approx(expected)


def test_the_categorical_s_draws_follow_its_frequencies_and_repeat_with_their_seed():
    density = fit_expost(_quantised_codes(), 10, seed=0, quantised=(INDICES, CODEBOOK))
    draws = density.sample(20000, seed=3)
    assert draws.shape == (20000, 4) and draws.dtype == np.float32
    first = [np.mean(np.all(draws[:, :2] == vector, axis=1)) for vector in CODEBOOK]
    np.testing.assert_allclose(first, [0.5, 0.25, 0.25], atol=0.01)
    assert np.all(draws[:, 2:] == CODEBOOK[2])
    np.testing.assert_array_equal(density.sample(50, seed=3), draws[:50])


def test_the_categorical_s_file_round_trips_and_refuses_damage(tmp_path):
    density = fit_expost(_quantised_codes(), 10, seed=0, quantised=(INDICES, CODEBOOK))
    density.save(tmp_path / "expost.npz")
    again = load_expost(tmp_path / "expost.npz")
    assert isinstance(again, CategoricalExPost)
    np.testing.assert_array_equal(again.sample(30, seed=1), density.sample(30, seed=1))
    mixture = fit_expost(three_blobs(), 3, seed=0)  # the other kind is read by the same function
    mixture.save(tmp_path / "mixture.npz")
    assert isinstance(load_expost(tmp_path / "mixture.npz"), ExPostDensity)
    np.savez(tmp_path / "bad.npz", codebook=CODEBOOK, probabilities=np.array([[0.5, 0.6, 0.0]]), log_likelihood=0.0)
    with pytest.raises(RunError, match="damaged or not an ex-post density"):
        load_expost(tmp_path / "bad.npz")  # frequencies that do not sum to 1
    np.savez(tmp_path / "shape.npz", codebook=CODEBOOK, probabilities=np.array([[0.5, 0.5]]), log_likelihood=0.0)
    with pytest.raises(RunError, match="damaged"):
        load_expost(tmp_path / "shape.npz")  # two frequencies for three vectors


def test_the_categorical_refuses_indices_that_are_not_the_codebook_s():
    for indices in (np.array([[0, 3]]), np.array([[-1, 0]]), np.zeros((0, 2), dtype=int), np.array([0, 1])):
        with pytest.raises(ValueError, match="indices"):
            fit_expost(np.zeros((1, 4)), 10, seed=0, quantised=(indices, CODEBOOK))
