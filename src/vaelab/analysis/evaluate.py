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
- ``perturbation``: classifier accuracy on decoded codes + noise, per noise scale
- ``disentanglement``: BetaVAE and FactorVAE scores, MIG, DCI and SAP against the images'
  generating factors (only on data that knows them, e.g. ``dsprites``; skipped elsewhere), at
  Locatello et al.'s sizes, drawn from the whole factor grid encoded (:func:`factor_codes`)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vaelab.analysis import generate, likelihood, measures
from vaelab.analysis.disentanglement import disentanglement_measures
from vaelab.analysis.embed import tsne_map
from vaelab.analysis.encode import Codes, encode_split
from vaelab.config import EvalSettings
from vaelab.data.registry import Dataset, to_tensor
from vaelab.errors import ConfigError, RunError
from vaelab.io import read_json, write_json
from vaelab.models.base import INFERENCE_BATCH

GROUPS = ("separation", "knn", "probe", "clustering", "map", "health", "likelihood", "generation", "perturbation",
          "disentanglement")
# What a study measures when its file does not say: every group that applies to any data set.
DEFAULT_GROUPS = GROUPS[:-1]
CLASSIFIER_GROUPS = {"generation", "perturbation"}


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


def parse_groups(text: str | None) -> tuple[str, ...]:
    """``"separation,knn"`` -> ("separation", "knn"); None or "all" -> every group."""
    if text is None or text.strip() == "all":
        return GROUPS
    groups = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [g for g in groups if g not in GROUPS]
    if unknown or not groups:
        raise ConfigError(f"unknown measure group(s) {', '.join(unknown) or '(none)'}: choose from {', '.join(GROUPS)}")
    return groups


def make_reference(classifier, info: dict, data: Dataset) -> Reference:
    """Classifier features of the real test images (the FID reference)."""
    features, _ = classifier.features_and_probabilities(to_tensor(data.test_images))
    return Reference(classifier, info, features)


def subsample(n: int, limit: int | None, seed: int, purpose: str = "tsne") -> np.ndarray:
    """Sorted indices of a seeded subsample of at most ``limit`` of ``n`` points (all of them for None)."""
    if limit is None or n <= limit:
        return np.arange(n)
    from vaelab.seeding import numpy_rng

    return np.sort(numpy_rng(seed, f"{purpose}-subsample").choice(n, limit, replace=False))


def evaluate(model, data: Dataset, seed: int, groups: tuple[str, ...] = GROUPS,
             settings: EvalSettings | None = None, reference: Reference | None = None) -> Evaluation:
    """Run the measure ``groups`` for a model on its data set's test split."""
    settings = settings or EvalSettings()
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
    codes, labels = test.mean.astype(np.float64), test.labels
    need_train = {"knn", "probe"} & set(groups)
    train = timed("encode_train", lambda: encode_split(model, data.train_images, data.train_labels)) if need_train else None
    evaluation = Evaluation(results, timings, test)

    if "separation" in groups:
        results.update(timed("separation", lambda: measures.separation_measures(codes, labels)))
    if "knn" in groups:
        results.update(timed("knn", lambda: measures.knn_accuracy(train.mean, train.labels, test.mean, labels)))
    if "probe" in groups:
        results.update(timed("probe", lambda: measures.linear_probe(train.mean, train.labels, test.mean, labels)))
    if "clustering" in groups:
        results.update(timed("clustering", lambda: measures.clustering(codes, labels, seed)))
        if model.has_clusters:  # a mixture prior or a categorical y: the model's own clusters
            results.update(timed("own_clustering", lambda: measures.cluster_scores(
                labels, own_clusters(model, data.test_images), "own")))
    if "map" in groups:
        index = subsample(len(codes), settings.tsne_points, seed)
        evaluation.tsne_index = index
        evaluation.tsne = timed("tsne", lambda: tsne_map(codes[index], seed, iterations=settings.tsne_iterations))
        results.update(timed("map", lambda: measures.map_trustworthiness(codes[index], evaluation.tsne, seed=seed)))
    images = to_tensor(data.test_images)
    stochastic = test.logvar is not None
    if "health" in groups:
        health = timed("reconstruction", lambda: likelihood.reconstruction_errors(model, images, test.mean,
                                                                                 labels=labels))
        if stochastic and model.prior.closed_form_kl:
            health.update(timed("kl", lambda: measures.kl_per_dimension(test.mean, test.logvar)))
        elif stochastic:  # a learned prior's KL does not split by dimension: its total, by Monte Carlo
            health.update(timed("kl", lambda: likelihood.kl_monte_carlo(model, images, seed, labels)))
        health.update(measures.active_units(test.mean))
        results.update(health)
    if "likelihood" in groups and stochastic:
        results.update(timed("likelihood", lambda: likelihood.likelihood_measures(
            model, images, seed, k=settings.iwae_k, max_examples=settings.iwae_examples, labels=labels)))
    if "generation" in groups:
        results.update(timed("generation", lambda: _generation(model, reference, settings, seed,
                                                               len(np.unique(labels)))))
    if "perturbation" in groups:
        results.update(timed("perturbation", lambda: _perturbation(model, reference, test, settings, seed)))
    if "disentanglement" in groups and data.test_factors is not None:
        pool_codes, pool_factors = timed("encode_factor_grid", lambda: factor_codes(model, data, test, settings, seed))
        results.update(timed("disentanglement", lambda: disentanglement_measures(
            pool_codes, pool_factors, seed, dci_estimator=settings.dci_estimator)))
        results["disentanglement_points"] = float(len(pool_factors))
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
        return test.mean.astype(np.float64), test.factors
    index = subsample(len(grid), settings.factor_points, seed, "factor-grid")
    factors = grid.points(index)
    means = []
    for start in range(0, len(factors), GRID_CHUNK):
        chunk = factors[start:start + GRID_CHUNK]
        means.append(encode_split(model, grid.render(chunk), chunk[:, grid.label_factor]).mean)
    return np.concatenate(means).astype(np.float64), factors


def own_clusters(model, images_uint8: np.ndarray) -> np.ndarray:
    """The model's own cluster of each image (:meth:`LatentModel.clusters`), in batches on its device."""
    import torch

    images = to_tensor(images_uint8).to(model.device)
    with torch.no_grad():
        return torch.cat([model.clusters(images[i:i + INFERENCE_BATCH]).cpu()
                          for i in range(0, len(images), INFERENCE_BATCH)]).numpy()


def _generation(model, reference: Reference, settings: EvalSettings, seed: int, n_classes: int) -> dict[str, float]:
    z = generate.prior_draws(model, settings.generation_samples, seed)
    samples = generate.decode(model, z, generate.cycled_labels(len(z), n_classes))  # labels: read by a CVAE only
    features, probabilities = reference.classifier.features_and_probabilities(to_tensor_float(samples))
    return {"prior_fd": measures.frechet_distance(features, reference.test_features),
            **{f"prior_{k}": v for k, v in measures.label_entropy(probabilities).items()}}


def _perturbation(model, reference: Reference, test: Codes, settings: EvalSettings, seed: int) -> dict[str, float]:
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


MEASURES_JSON = "measures.json"


def write_measures(run_dir: Path, evaluation: Evaluation, groups: tuple[str, ...], settings: EvalSettings,
                   reference: Reference | None) -> dict:
    """Write ``RUN_DIR/measures.json`` (measures, settings, extractor, timings) and return it."""
    record = {
        "measures": evaluation.measures,
        "groups": list(groups),
        "settings": settings.model_dump(mode="json"),
        "classifier": reference.info if reference is not None else None,
        "timings": evaluation.timings,
    }
    write_json(Path(run_dir) / MEASURES_JSON, record)
    return record


def read_measures(run_dir: Path) -> dict | None:
    """``RUN_DIR/measures.json`` if it exists (None if not; a damaged one is a one-line :class:`RunError`)."""
    path = Path(run_dir) / MEASURES_JSON
    if not path.is_file():
        return None
    try:
        saved = read_json(path)
    except (ValueError, UnicodeDecodeError):
        saved = None
    if not isinstance(saved, dict) or not isinstance(saved.get("measures"), dict):
        raise RunError(f"{path} is damaged: measure the run again (`vaelab evaluate {run_dir}`)")
    return saved
