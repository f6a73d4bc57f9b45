"""Evaluate a trained run: every measure group on its test split, written to ``measures.json``.

Groups (``vaelab evaluate --measures``):

- ``separation``: silhouette (overall and per class), Davies-Bouldin, Calinski-Harabasz
- ``knn``, ``probe``: k-NN (k = 5, 10) and linear-probe accuracy, train codes -> test codes
- ``clustering``: k-means and GMM with k = classes: NMI, ARI, Hungarian accuracy; for a model
  with a mixture prior also its own clusters, argmax p(c|z) (``own_*``)
- ``map``: trustworthiness of the 2-D t-SNE map
- ``health``: reconstruction BCE/MSE; for VAEs KL per dimension and active units
- ``likelihood``: negative ELBO and IWAE NLL on binarised test images (VAEs only)
- ``generation``: Fréchet distance of prior samples to test images in the classifier's
  feature space, label entropy and confidence of the samples
- ``expost``: the same of draws from the ex-post density, a Gaussian mixture fitted to the training
  codes after training (:mod:`vaelab.analysis.expost`, Ghosh et al. 2020); the fitted mixture is
  kept on the :class:`Evaluation` (saved as the run's ``expost.npz``)
- ``perturbation``: classifier accuracy on decoded codes + noise, per noise scale
- ``disentanglement``: BetaVAE and FactorVAE scores, MIG, DCI and SAP against the images'
  generating factors (only on data that knows them, e.g. ``dsprites``; skipped elsewhere), at
  Locatello et al.'s sizes, drawn from the whole factor grid encoded (:func:`factor_codes`)
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from vaelab.analysis import generate, likelihood, measures
from vaelab.analysis.disentanglement import disentanglement_measures
from vaelab.analysis.embed import tsne_map
from vaelab.analysis.encode import Codes, encode_split
from vaelab.analysis.expost import ExPost, fit_expost
from vaelab.analysis.registry import (
    CLASSIFIER_GROUPS,
    GROUPS,
    TRAIN_CODE_GROUPS,
    installed_groups,
    missing_extra,
    require_extras,
)
from vaelab.config import EvalSettings
from vaelab.data.dataset import Dataset, to_tensor
from vaelab.errors import ConfigError, notice
from vaelab.models.base import INFERENCE_BATCH
from vaelab.records import EXPOST_NPZ
from vaelab.seeding import numpy_rng


@dataclass
class Reference:
    """The classifier used as feature extractor, and the features of the real test images."""

    classifier: Any
    info: dict
    test_features: np.ndarray


@dataclass
class Evaluation:
    """Measures of one run, how long each group took, and what the figures need."""

    measures: dict[str, float]
    timings: dict[str, float]
    test_codes: Codes
    tsne: np.ndarray | None = None
    tsne_index: np.ndarray | None = None
    expost: ExPost | None = None  # the ex-post density (the expost group fits it)

    def save_density(self, run_dir: Path) -> None:
        """Write the ex-post density, where this evaluation fitted one, as the run's ``expost.npz`` (the
        report's and the explorer's ex-post draws come from it)."""
        if self.expost is not None:
            self.expost.save(run_dir / EXPOST_NPZ)


def parse_groups(text: str | None) -> tuple[str, ...]:
    """``"separation,knn"`` -> ("separation", "knn"); None or "all" -> every group whose optional packages
    are installed (a note names the others and how to install what they need). A named group whose
    package is missing is a :class:`ConfigError`."""
    if text is None or text.strip() == "all":
        installed = installed_groups()
        for group in GROUPS:
            if group not in installed:
                notice(f"{missing_extra([group])}; measuring the other groups")
        return installed
    groups = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [g for g in groups if g not in GROUPS]
    if unknown or not groups:
        raise ConfigError(f"unknown measure group(s) {', '.join(unknown) or '(none)'}: choose from {', '.join(GROUPS)}")
    require_extras(groups)  # before the run and its data load
    return groups


def make_reference(classifier, info: dict, data: Dataset) -> Reference:
    """Classifier features of the real test images (the FID reference)."""
    features, _ = classifier.features_and_probabilities(to_tensor(data.test_images))
    return Reference(classifier, info, features)


def subsample(n: int, limit: int | None, seed: int, purpose: str = "tsne") -> np.ndarray:
    """Sorted indices of a seeded subsample of at most ``limit`` of ``n`` points (all of them for None)."""
    if limit is None or n <= limit:
        return np.arange(n)
    return np.sort(numpy_rng(seed, f"{purpose}-subsample").choice(n, limit, replace=False))


@dataclass
class Context:
    """What a measure group reads: the model, its data, the encoded splits, the settings and the seed."""

    model: Any
    data: Dataset
    seed: int
    settings: EvalSettings
    reference: Reference | None
    test: Codes
    train: Codes | None
    evaluation: Evaluation
    timed: Callable[[str, Callable[[], Any]], Any]

    @property
    def train_codes(self) -> Codes:
        """The training split's codes (encoded only where a group that reads them runs)."""
        if self.train is None:
            raise RuntimeError("the training split was not encoded: add the group to TRAIN_CODE_GROUPS")
        return self.train

    @property
    def classifier_reference(self) -> Reference:
        """The reference classifier (evaluate() refuses to run a group that needs it without one)."""
        if self.reference is None:
            raise RuntimeError("no reference classifier: add the group to CLASSIFIER_GROUPS")
        return self.reference

    @functools.cached_property
    def codes(self) -> np.ndarray:
        """The test codes in float64, converted once for every group that reads them."""
        return self.test.mean.astype(np.float64)

    @functools.cached_property
    def test_tensor(self):
        """The test images as a float tensor, converted once (health and likelihood both decode them)."""
        return to_tensor(self.data.test_images)


def _separation(c: Context) -> dict[str, float]:
    return c.timed("separation", lambda: measures.separation_measures(c.codes, c.test.labels))


def _knn(c: Context) -> dict[str, float]:
    train = c.train_codes
    return c.timed("knn", lambda: measures.knn_accuracy(train.mean, train.labels, c.test.mean, c.test.labels,
                                                        same_points=c.data.splits_are_one))


def _probe(c: Context) -> dict[str, float]:
    train = c.train_codes
    return c.timed("probe", lambda: measures.linear_probe(train.mean, train.labels, c.test.mean, c.test.labels))


def _attributes(c: Context) -> dict[str, float]:
    train, test, names = c.data.train_attributes, c.data.test_attributes, c.data.attribute_names
    if train is None or test is None or names is None:
        return {}  # only data with several binary attributes
    return c.timed("attributes", lambda: measures.attribute_probes(c.train_codes.mean, train, c.test.mean, test,
                                                                   names))


def _clustering(c: Context) -> dict[str, float]:
    result = c.timed("clustering", lambda: measures.clustering(c.codes, c.test.labels, c.seed))
    if c.model.has_clusters:  # a mixture prior or a categorical y: the model's own clusters
        result.update(c.timed("own_clustering", lambda: own_cluster_scores(c.model, c.data.test_images,
                                                                          c.test.labels)))
    return result


def _manifold(c: Context) -> dict[str, float]:
    return c.timed("manifold", lambda: measures.manifold_clustering(c.codes, c.test.labels, c.seed,
                                                                    c.settings.manifold_inits))


def _map(c: Context) -> dict[str, float]:
    codes = c.codes
    index = subsample(len(codes), c.settings.tsne_points, c.seed)
    c.evaluation.tsne_index = index
    tsne = c.timed("tsne", lambda: tsne_map(codes[index], c.seed, iterations=c.settings.tsne_iterations))
    c.evaluation.tsne = tsne
    return c.timed("map", lambda: measures.map_trustworthiness(codes[index], tsne, seed=c.seed))


def _health(c: Context) -> dict[str, float]:
    images, labels, test, logvar = c.test_tensor, c.test.labels, c.test, c.test.logvar
    health = c.timed("reconstruction", lambda: likelihood.reconstruction_errors(c.model, images, test.mean,
                                                                                labels=labels))
    if logvar is not None and c.model.prior.closed_form_kl:
        health.update(c.timed("kl", lambda: measures.kl_per_dimension(test.mean, logvar)))
    elif logvar is not None:  # a learned prior's KL does not split by dimension: its total, by Monte Carlo
        health.update(c.timed("kl", lambda: likelihood.kl_monte_carlo(c.model, images, c.seed, labels)))
    health.update(measures.active_units(test.mean))
    health.update(c.model.objective.code_measures(c.model, test.mean))
    return health


def _likelihood(c: Context) -> dict[str, float]:
    if c.test.logvar is None:  # a deterministic encoder has no bound
        return {}
    return c.timed("likelihood", lambda: likelihood.likelihood_measures(
        c.model, c.test_tensor, c.seed, k=c.settings.iwae_k, max_examples=c.settings.iwae_examples,
        labels=c.test.labels))


def _generation(c: Context) -> dict[str, float]:
    return c.timed("generation", lambda: _generated(
        c, generate.prior_draws(c.model, c.settings.generation_samples, c.seed), "prior"))


def _expost(c: Context) -> dict[str, float]:
    codes = c.train_codes.mean
    density = c.timed("expost_fit", lambda: fit_expost(codes, c.settings.expost_components, c.seed,
                                                        c.model.objective.quantised(c.model, codes)))
    c.evaluation.expost = density
    result = c.timed("expost", lambda: _generated(c, density.sample(c.settings.generation_samples, c.seed), "expost"))
    return {**result, "expost_components": float(density.components),
            "expost_log_likelihood": density.log_likelihood, "expost_converged": float(density.converged)}


def _perturbation(c: Context) -> dict[str, float]:
    return c.timed("perturbation", lambda: _perturbed(c.model, c.classifier_reference, c.test, c.settings, c.seed))


def _disentanglement(c: Context) -> dict[str, float]:
    if c.data.test_factors is None:  # only data that knows its factors
        return {}
    pool_codes, pool_factors = c.timed("encode_factor_grid", lambda: factor_codes(c.model, c.data, c.test,
                                                                                  c.settings, c.seed))
    result = c.timed("disentanglement", lambda: disentanglement_measures(
        pool_codes, pool_factors, c.seed, dci_estimator=c.settings.dci_estimator))
    result["disentanglement_points"] = float(len(pool_factors))
    return result


# Each group of the measure registry (vaelab.analysis.registry) and the function that computes it.
GROUP_FUNCTIONS: dict[str, Callable[[Context], dict[str, float]]] = {
    "separation": _separation, "knn": _knn, "probe": _probe, "attributes": _attributes, "clustering": _clustering,
    "manifold": _manifold, "map": _map,
    "health": _health, "likelihood": _likelihood, "generation": _generation, "expost": _expost,
    "perturbation": _perturbation, "disentanglement": _disentanglement,
}


def evaluate(model, data: Dataset, seed: int, groups: tuple[str, ...] | None = None,
             settings: EvalSettings | None = None, reference: Reference | None = None) -> Evaluation:
    """Run the measure ``groups`` for a model on its data set's test split, in the registry's order (None:
    every group whose optional packages are installed)."""
    settings = settings or EvalSettings()
    groups = installed_groups() if groups is None else groups
    require_extras(groups)
    if CLASSIFIER_GROUPS & set(groups) and reference is None:
        raise ValueError("generation/perturbation measures need a reference classifier")
    timings: dict[str, float] = {}
    results: dict[str, float] = {}

    def timed(name: str, fn):
        started = time.perf_counter()
        value = fn()
        timings[name] = round(time.perf_counter() - started, 4)
        return value

    test = timed("encode", lambda: encode_split(model, data.test_images, data.test_labels, data.test_factors))
    train = timed("encode_train", lambda: encode_split(model, data.train_images, data.train_labels)) \
        if TRAIN_CODE_GROUPS & set(groups) else None
    evaluation = Evaluation(results, timings, test)
    context = Context(model, data, seed, settings, reference, test, train, evaluation, timed)
    for name in GROUPS:
        if name in groups:
            results.update(GROUP_FUNCTIONS[name](context))
    return evaluation


GRID_CHUNK = 16384  # grid images rendered and encoded at a time (64 MB of dSprites' uint8 images)


def factor_codes(model, data: Dataset, test: Codes, settings: EvalSettings, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The codes and factors the disentanglement metrics draw from.

    Where the data set is a full factor grid (``data.factor_grid``), every point of it (or
    ``settings.factor_points`` seeded ones) is rendered and encoded, chunk by chunk, so that the
    metrics' draws are draws from the generative process, as in Locatello et al.; elsewhere the
    test split's codes.
    """
    grid = data.factor_grid
    if grid is None:
        if test.factors is None:
            raise ValueError("the disentanglement metrics need the test split's factors: this data set has none")
        return test.mean.astype(np.float64), test.factors
    index = subsample(len(grid), settings.factor_points, seed, "factor-grid")
    factors = grid.points(index)
    means = []
    for start in range(0, len(factors), GRID_CHUNK):
        chunk = factors[start:start + GRID_CHUNK]
        means.append(encode_split(model, grid.render(chunk), chunk[:, grid.label_factor]).mean)
    return np.concatenate(means).astype(np.float64), factors


def own_cluster_scores(model, images_uint8: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The model's own clusters against the classes: NMI, ARI, Hungarian and majority accuracy (``own_*``)."""
    clusters = own_clusters(model, images_uint8)
    return {**measures.cluster_scores(labels, clusters, "own"),
            "own_majority_accuracy": measures.majority_accuracy(labels, clusters)}


def own_clusters(model, images_uint8: np.ndarray) -> np.ndarray:
    """The model's own cluster of each image (:meth:`LatentModel.clusters`), in batches on its device."""
    import torch

    images = to_tensor(images_uint8).to(model.device)
    with torch.no_grad():
        return torch.cat([model.clusters(images[i:i + INFERENCE_BATCH]).cpu()
                          for i in range(0, len(images), INFERENCE_BATCH)]).numpy()


def _generated(c: Context, z, source: str) -> dict[str, float]:
    """The Fréchet distance of the decoded codes ``z`` to the test images, and their label entropy and
    confidence, named ``{source}_*`` (a conditional model decodes them with the classes in turn)."""
    reference = c.classifier_reference
    n_classes = len(np.unique(c.test.labels))
    samples = generate.decode(c.model, z, generate.cycled_labels(len(z), n_classes))  # labels: read by a CVAE only
    features, probabilities = reference.classifier.features_and_probabilities(to_tensor_float(samples))
    return {f"{source}_fd": measures.frechet_distance(features, reference.test_features),
            **{f"{source}_{k}": v for k, v in measures.label_entropy(probabilities).items()}}


def _perturbed(model, reference: Reference, test: Codes, settings: EvalSettings, seed: int) -> dict[str, float]:
    result = {}
    # The noise scale is each dimension's spread over the whole test split; the decoding
    # and classifying (the costly part) may run on a seeded subsample.
    keep = subsample(len(test.labels), settings.perturbation_examples, seed, "perturbation")
    for sigma in settings.sigmas:
        images = generate.decode(model, generate.perturb(test.mean, sigma, seed)[keep], test.labels[keep])
        _, probabilities = reference.classifier.features_and_probabilities(to_tensor_float(images))
        result[f"perturb_accuracy_s{sigma:g}"] = float((probabilities.argmax(1) == test.labels[keep]).mean())
    return result


def to_tensor_float(images: np.ndarray):
    """float images (N, H, W) or (N, C, H, W) in [0, 1] (as :func:`generate.decode` returns them) -> tensor
    (N, C, H, W)."""
    import torch

    tensor = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    return tensor.unsqueeze(1) if tensor.ndim == 3 else tensor


def measures_record(evaluation: Evaluation, groups: tuple[str, ...], settings: EvalSettings,
                    reference: Reference | None) -> dict:
    """What ``measures.json`` holds (written by :func:`vaelab.records.write_measures`): the measures, the
    groups and settings they were made with, the feature classifier's description, and timings."""
    return {
        "measures": evaluation.measures,
        "groups": list(groups),
        "settings": settings.model_dump(mode="json"),
        "classifier": reference.info if reference is not None else None,
        "timings": evaluation.timings,
    }
