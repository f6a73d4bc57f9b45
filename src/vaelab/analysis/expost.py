"""Ex-post density estimation (Ghosh et al. 2020, "From variational to deterministic autoencoders").

An auto-encoder's codes need not follow the prior it was trained with (an AE has none: the thesis's
experiment 3). Ghosh et al. generate from any trained model by fitting a simple density to its training
codes *after* training, drawing from it and decoding. As in their code (``estimate_density_and_sample.py``,
``GMM_10``), the density is scikit-learn's Gaussian mixture with K = 10 components and full covariances,
at most 2,000 EM iterations, tolerance 1e-3, one k-means initialisation and scikit-learn's default
regularisation (1e-6 added to each covariance's diagonal); K is a setting (``expost_components``). The
fit runs its linear algebra on one thread.

vaelab's choices where the paper is silent: the codes are the posterior means (the codes every measure
reads); the mixture's random state comes from the stream ``(seed, "expost-fit")``; draws come from the
stream ``(seed, "expost", latent)``, a component per draw by its weight, then its Gaussian through the
covariance's Cholesky factor, so draws are in random component order (scikit-learn's ``sample`` groups
them by component) and the same seed gives the same draws. K is capped at the number of distinct codes.

A quantised code (the VQ-VAE's) is not a density's support: its ex-post density is a categorical per
position over its codebook's vectors, the training codes' index frequencies (:class:`CategoricalExPost`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vaelab.errors import RunError
from vaelab.io import write_npz
from vaelab.records import read_npz
from vaelab.seeding import derive_seed, numpy_rng

MAX_ITER = 2000  # Ghosh et al.'s GaussianMixture(max_iter=2000, tol=1e-3)
TOLERANCE = 1e-3


@dataclass(frozen=True)
class ExPostDensity:
    """A Gaussian mixture fitted to a model's training codes: ``weights`` (K,), ``means`` (K, d),
    ``covariances`` (K, d, d), and how the fit went (``converged``, EM ``iterations``, the mean
    ``log_likelihood`` per code of the codes it was fitted to)."""

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    converged: bool
    iterations: int
    log_likelihood: float

    @property
    def components(self) -> int:
        """K, the number of mixture components."""
        return int(len(self.weights))

    @property
    def latent(self) -> int:
        """d, the code size."""
        return int(self.means.shape[1])

    def sample(self, n: int, seed: int) -> np.ndarray:
        """``n`` draws (float32 (n, d)) on the stream ``(seed, "expost", d)``: a component per draw by its
        weight, then that component's Gaussian."""
        rng = numpy_rng(seed, "expost", self.latent)
        component = rng.choice(self.components, size=n, p=self.weights / self.weights.sum())
        noise = rng.standard_normal((n, self.latent))
        factors = np.linalg.cholesky(self.covariances)
        z = self.means[component] + np.einsum("nij,nj->ni", factors[component], noise)
        return z.astype(np.float32)

    def save(self, path: str | Path) -> None:
        """Write the mixture as an NPZ of plain arrays (no pickle), atomically."""
        write_npz(path, weights=self.weights, means=self.means, covariances=self.covariances,
                  converged=np.asarray(self.converged), iterations=np.asarray(self.iterations),
                  log_likelihood=np.asarray(self.log_likelihood))

    @classmethod
    def load(cls, path: str | Path) -> "ExPostDensity":
        """Read a mixture written by :meth:`save`; a missing, damaged or inconsistent file is a one-line
        :class:`RunError`."""
        return cls.from_saved(read_npz(Path(path)), path)

    @classmethod
    def from_saved(cls, saved: dict[str, np.ndarray], path: str | Path) -> "ExPostDensity":
        """The mixture in the arrays of a file already read (``path`` names it in the error)."""
        try:
            density = cls(np.asarray(saved["weights"], dtype=np.float64), np.asarray(saved["means"], dtype=np.float64),
                          np.asarray(saved["covariances"], dtype=np.float64), bool(saved["converged"]),
                          int(saved["iterations"]), float(saved["log_likelihood"]))
            _check(density)
        except (KeyError, TypeError, ValueError, np.linalg.LinAlgError):
            raise _damaged(path) from None
        return density


def _damaged(path: str | Path) -> RunError:
    return RunError(f"{path} is damaged or not an ex-post density: evaluate the run again "
                    "(`vaelab evaluate RUN_DIR --measures expost`)")


def _check(density: ExPostDensity) -> None:
    """Shapes that agree, finite numbers, weights that sum to 1, covariances with a Cholesky factor."""
    k, d = density.means.shape
    if density.weights.shape != (k,) or density.covariances.shape != (k, d, d) or k < 1 or d < 1:
        raise ValueError("shapes")
    arrays = (density.weights, density.means, density.covariances)
    if not all(np.isfinite(a).all() for a in arrays) or (density.weights < 0).any():
        raise ValueError("values")
    if abs(density.weights.sum() - 1.0) > 1e-6:
        raise ValueError("weights")
    np.linalg.cholesky(density.covariances)


@dataclass(frozen=True)
class CategoricalExPost:
    """The ex-post density of a quantised code (the VQ-VAE's): one categorical per position over the
    ``codebook``'s K vectors (K, D), ``probabilities`` (P, K) the training codes' index frequencies, and the
    mean ``log_likelihood`` per code of those codes. Positions are drawn independently (the paper fits a
    PixelCNN, which models their dependence)."""

    codebook: np.ndarray
    probabilities: np.ndarray
    log_likelihood: float
    converged: bool = True  # a frequency count has no iterations to converge
    iterations: int = 0

    @property
    def components(self) -> int:
        """The codebook vectors the training codes use (at any position)."""
        return int((self.probabilities > 0).any(axis=0).sum())

    @property
    def latent(self) -> int:
        """d = positions x D, the code size."""
        return int(self.probabilities.shape[0] * self.codebook.shape[1])

    def sample(self, n: int, seed: int) -> np.ndarray:
        """``n`` codes (float32 (n, d)) on the stream ``(seed, "expost", d)``: each position's vector drawn by
        its frequency."""
        rng = numpy_rng(seed, "expost", self.latent)
        indices = np.stack([rng.choice(len(self.codebook), size=n, p=p / p.sum()) for p in self.probabilities], 1)
        return self.codebook[indices].reshape(n, -1).astype(np.float32)

    def save(self, path: str | Path) -> None:
        """Write the codebook and frequencies as an NPZ of plain arrays (no pickle), atomically."""
        write_npz(path, codebook=self.codebook, probabilities=self.probabilities,
                  log_likelihood=np.asarray(self.log_likelihood))


# Either kind of ex-post density: the Gaussian mixture, or a quantised code's categorical
ExPost = ExPostDensity | CategoricalExPost


def load_expost(path: str | Path) -> ExPost:
    """Read an ex-post density written by either kind's ``save``; a missing, damaged or inconsistent file is
    a one-line :class:`RunError`."""
    saved = read_npz(Path(path))
    if "probabilities" not in saved:
        return ExPostDensity.from_saved(saved, path)
    try:
        density = CategoricalExPost(np.asarray(saved["codebook"], dtype=np.float64),
                                    np.asarray(saved["probabilities"], dtype=np.float64),
                                    float(saved["log_likelihood"]))
        k, _ = density.codebook.shape
        p = density.probabilities
        if p.ndim != 2 or p.shape[1] != k or not np.isfinite(p).all() or (p < 0).any() or not np.isfinite(
                density.codebook).all() or not np.allclose(p.sum(1), 1.0, atol=1e-6):
            raise ValueError("values")
    except (KeyError, TypeError, ValueError):
        raise _damaged(path) from None
    return density


def fit_categorical(indices: np.ndarray, codebook: np.ndarray) -> CategoricalExPost:
    """The categorical per position of quantised codes over ``codebook`` (K, D): each position's frequencies
    of the ``indices`` (N, P) of the codes' vectors (the model's :meth:`Objective.quantised`)."""
    indices, codebook = np.asarray(indices), np.asarray(codebook, dtype=np.float64)
    k = len(codebook)
    if indices.ndim != 2 or indices.size == 0 or indices.min() < 0 or indices.max() >= k:
        raise ValueError(f"the ex-post categorical needs indices (N, P) with N, P > 0 of the {k} codebook vectors")
    counts = np.stack([np.bincount(column, minlength=k) for column in indices.T]).astype(np.float64)
    probabilities = counts / len(indices)
    log_p = np.log(probabilities[np.arange(indices.shape[1])[None, :], indices])
    return CategoricalExPost(codebook, probabilities, float(log_p.sum(1).mean()))


def fit_expost(codes: np.ndarray, components: int, seed: int,
               quantised: tuple[np.ndarray, np.ndarray] | None = None) -> ExPost:
    """Fit the ex-post density to ``codes`` (N, d): the Gaussian mixture with Ghosh et al.'s settings,
    ``components`` capped at the number of distinct codes, the random state from ``(seed, "expost-fit")``;
    or, for a quantised code (``quantised``: the codes' vector indices and the codebook, the VQ-VAE's), the
    categorical per position."""
    if quantised is not None:
        return fit_categorical(*quantised)
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_limits

    codes = np.asarray(codes, dtype=np.float64)
    if codes.ndim != 2 or len(codes) == 0:
        raise ValueError(f"the ex-post density needs codes (N, d) with N > 0, not shape {codes.shape}")
    k = int(min(components, len(np.unique(codes, axis=0))))
    mixture = GaussianMixture(n_components=k, covariance_type="full", max_iter=MAX_ITER, tol=TOLERANCE,
                              random_state=derive_seed(seed, "expost-fit") % (2**32))
    # BLAS on one thread: a d x d covariance gains nothing from more, and beside a training that holds the cores
    # two spinning BLAS threads made this fit 14 times slower (6.5 s against 0.46 s on 4,000 codes of 16 dims)
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", ConvergenceWarning)  # recorded as `converged` instead
        mixture.fit(codes)
        log_likelihood = float(mixture.score(codes))
    return ExPostDensity(mixture.weights_.astype(np.float64), mixture.means_.astype(np.float64),
                         mixture.covariances_.astype(np.float64), bool(mixture.converged_), int(mixture.n_iter_),
                         log_likelihood)
