"""Latent-space measures. Each is a plain function returning ``dict[str, float]``.

Codes are NumPy arrays (N, d); labels are integer class labels (N,). Every
measure is checked in ``tests/analysis/test_measures.py`` against scikit-learn
where it has the measure and against a hand-computed case where it has not.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn import metrics as skm
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression
from sklearn.manifold import trustworthiness as sk_trustworthiness
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from vaelab.seeding import derive_seed

# --- class separation -------------------------------------------------------------------------


def silhouette(codes: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Mean silhouette coefficient (Rousseeuw 1987), Euclidean, with labels as clusters.

    Returns ``silhouette`` (mean over all points, as in the thesis's Table 4.2)
    and ``silhouette_class_<k>`` (mean over the points of class k).
    """
    per_point = skm.silhouette_samples(codes, labels, metric="euclidean")
    result = {"silhouette": float(per_point.mean())}
    for label in np.unique(labels):
        result[f"silhouette_class_{int(label)}"] = float(per_point[labels == label].mean())
    return result


def silhouette_cosine(codes: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Mean silhouette with the cosine distance 1 - cos(a, b): the angles between codes, the natural distance
    for codes on a sphere (the S-VAE's; Davidson et al. 2018). Codes of norm 0 have no direction: NaN."""
    if not np.all(np.linalg.norm(codes, axis=1) > 0):
        return {"silhouette_cosine": float("nan")}
    return {"silhouette_cosine": float(skm.silhouette_score(codes, labels, metric="cosine"))}


def davies_bouldin(codes: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Davies-Bouldin index (Davies & Bouldin 1979) of the classes; lower is better."""
    return {"davies_bouldin": float(skm.davies_bouldin_score(codes, labels))}


def calinski_harabasz(codes: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Calinski-Harabasz variance ratio (Calinski & Harabasz 1974) of the classes; higher is better."""
    return {"calinski_harabasz": float(skm.calinski_harabasz_score(codes, labels))}


# --- usefulness of the codes ------------------------------------------------------------------


def knn_accuracy(train_codes: np.ndarray, train_labels: np.ndarray, test_codes: np.ndarray,
                 test_labels: np.ndarray, ks: tuple[int, ...] = (5, 10), same_points: bool = False) -> dict[str, float]:
    """k-nearest-neighbour accuracy: train codes are the reference set, test codes are queried.

    ``same_points``: the two sets are the same images (the transductive protocol), so each query leaves
    itself out (leave-one-out k-NN): otherwise every code would find itself at distance 0 among its own
    neighbours and vote for its own label.
    """
    result = {}
    for k in ks:
        classifier = KNeighborsClassifier(n_neighbors=k).fit(train_codes, train_labels)
        if not same_points:
            result[f"knn{k}_accuracy"] = float(classifier.score(test_codes, test_labels))
            continue
        _, neighbours = classifier.kneighbors(n_neighbors=k)  # no query points: each fitted point, itself left out
        counts = np.stack([(train_labels[neighbours] == c).sum(1) for c in classifier.classes_], axis=1)
        votes = classifier.classes_[np.argmax(counts, axis=1)]  # a tie goes to the smallest label, as predict()
        result[f"knn{k}_accuracy"] = float((votes == test_labels).mean())
    return result


def linear_probe(train_codes: np.ndarray, train_labels: np.ndarray, test_codes: np.ndarray,
                 test_labels: np.ndarray) -> dict[str, float]:
    """Linear-probe accuracy: logistic regression on standardised train codes, scored on test codes."""
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    probe.fit(train_codes, train_labels)
    return {"linear_probe_accuracy": float(probe.score(test_codes, test_labels))}


def attribute_probes(train_codes: np.ndarray, train_attributes: np.ndarray, test_codes: np.ndarray,
                     test_attributes: np.ndarray, names: list[str]) -> dict[str, float]:
    """A linear probe per binary attribute (CelebA's 40): logistic regression on standardised train codes, scored
    on the test codes by accuracy and ROC AUC (``attribute_accuracy_<name>``, ``attribute_auc_<name>``), and their
    means over the attributes (``attributes_mean_accuracy``, ``attributes_mean_auc``).

    An attribute that takes one value in the training split cannot be probed and is left out; its AUC is
    left out where the test split holds one value (the AUC is undefined there). The means are over the
    attributes measured."""
    scaler = StandardScaler().fit(train_codes)
    train_x, test_x = scaler.transform(train_codes), scaler.transform(test_codes)
    result: dict[str, float] = {}
    for k, name in enumerate(names):
        train_y, test_y = train_attributes[:, k], test_attributes[:, k]
        if len(np.unique(train_y)) < 2:
            continue
        probe = LogisticRegression(max_iter=2000).fit(train_x, train_y)
        result[f"attribute_accuracy_{name}"] = float(probe.score(test_x, test_y))
        if len(np.unique(test_y)) == 2:
            result[f"attribute_auc_{name}"] = float(skm.roc_auc_score(test_y, probe.decision_function(test_x)))
    for kind in ("accuracy", "auc"):
        values = [v for key, v in result.items() if key.startswith(f"attribute_{kind}_")]
        if values:
            result[f"attributes_mean_{kind}"] = float(np.mean(values))
    return result


def attribute_directions(codes: np.ndarray, attributes: np.ndarray) -> np.ndarray:
    """Each attribute's direction in code space (A, d): the mean code of the images with it minus the mean code
    of those without (zero where one of the two is empty). Adding it to a face's code is "add a smile"."""
    codes = np.asarray(codes, dtype=np.float64)
    directions = np.zeros((attributes.shape[1], codes.shape[1]))
    for k in range(attributes.shape[1]):
        has = attributes[:, k].astype(bool)
        if has.any() and (~has).any():
            directions[k] = codes[has].mean(0) - codes[~has].mean(0)
    return directions


# --- unsupervised clustering ------------------------------------------------------------------


def clustering_accuracy(labels: np.ndarray, clusters: np.ndarray) -> float:
    """Accuracy of the best one-to-one matching of clusters to classes (Hungarian algorithm).

    Used by e.g. Xie et al. 2016 (DEC). With more clusters than classes, the
    unmatched clusters count as errors.
    """
    classes, cluster_ids = np.unique(labels), np.unique(clusters)
    counts = np.zeros((len(cluster_ids), len(classes)), dtype=np.int64)
    for i, c in enumerate(cluster_ids):
        matched = labels[clusters == c]
        for j, k in enumerate(classes):
            counts[i, j] = np.count_nonzero(matched == k)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / len(labels))


def majority_accuracy(labels: np.ndarray, clusters: np.ndarray) -> float:
    """Accuracy when each cluster is labelled by its most frequent class (many-to-one: several clusters may
    share a class; cluster purity). The score of models with more clusters than classes, where a one-to-one
    matching must count every extra cluster wrong (e.g. Makhzani et al.'s 16- and 30-cluster AAEs)."""
    _, cluster_index = np.unique(clusters, return_inverse=True)
    _, class_index = np.unique(labels, return_inverse=True)
    counts = np.zeros((cluster_index.max() + 1, class_index.max() + 1), dtype=np.int64)
    np.add.at(counts, (cluster_index, class_index), 1)
    return float(counts.max(axis=1).sum() / len(labels))


def clustering(codes: np.ndarray, labels: np.ndarray, seed: int = 0) -> dict[str, float]:
    """k-means and a Gaussian mixture (k = number of classes) on the codes: NMI, ARI, accuracy."""
    k = len(np.unique(labels))
    random_state = derive_seed(seed, "clustering") % (2**32)
    assignments = {
        "kmeans": KMeans(n_clusters=k, n_init=10, random_state=random_state).fit_predict(codes),
        "gmm": GaussianMixture(n_components=k, covariance_type="full", n_init=2, reg_covar=1e-4,
                               random_state=random_state).fit(codes).predict(codes),
    }
    result = {}
    for method, clusters in assignments.items():
        result.update(cluster_scores(labels, clusters, method))
    return result


def cluster_scores(labels: np.ndarray, clusters: np.ndarray, prefix: str) -> dict[str, float]:
    """NMI, ARI and Hungarian accuracy of cluster assignments against the classes, as ``<prefix>_nmi`` etc."""
    return {
        f"{prefix}_nmi": float(skm.normalized_mutual_info_score(labels, clusters)),
        f"{prefix}_ari": float(skm.adjusted_rand_score(labels, clusters)),
        f"{prefix}_accuracy": clustering_accuracy(labels, clusters),
    }


# N2D's settings (McConville et al. 2020; run.sh of their code, rymc/n2d): UMAP with 20 neighbours and
# min_dist 0 to as many dimensions as there are clusters.
N2D_NEIGHBOURS = 20
N2D_MIN_DIST = 0.0


def manifold_clustering(codes: np.ndarray, labels: np.ndarray, seed: int = 0, inits: int = 1) -> dict[str, float]:
    """N2D's clustering of the codes' local manifold: UMAP (Euclidean, 20 neighbours, min_dist 0, as many
    dimensions as classes), then a full-covariance Gaussian mixture with one component per class; each
    code's cluster is its most probable component. NMI, ARI and Hungarian accuracy as ``n2d_*``.

    As N2D's reference code (rymc/n2d, ``cluster_manifold_in_embedding``), with scikit-learn's default
    mixture (one initialisation, reg_covar 1e-6). One departure: UMAP's and the mixture's random states
    are derived from ``seed`` (N2D fixes both at 0), so that seeds vary the measure as they vary the
    model. ``inits`` > 1 (a named departure) starts the mixture's EM that many times and keeps the fit of
    highest likelihood, a choice that reads no label: on MNIST-test one start merged two digits in 2 of 5
    seeds (accuracy 0.82 and 0.81, where 10 starts give 0.96 and 0.95 with a higher likelihood; the other
    seeds unchanged). On fewer than 22 codes UMAP gets one neighbour fewer than the codes. Needs umap-learn
    (``pip install 'vaelab[umap]'``).
    """
    import umap  # the optional extra: imported only where the manifold group is measured

    k = len(np.unique(labels))
    random_state = derive_seed(seed, "manifold") % (2**32)
    reducer = umap.UMAP(n_neighbors=min(N2D_NEIGHBOURS, len(codes) - 1), min_dist=N2D_MIN_DIST, n_components=k,
                        metric="euclidean", random_state=random_state, n_jobs=1)
    manifold = reducer.fit_transform(codes)
    mixture = GaussianMixture(n_components=k, covariance_type="full", n_init=inits,
                              random_state=random_state).fit(manifold)
    return cluster_scores(labels, mixture.predict_proba(manifold).argmax(axis=1), "n2d")


# --- map faithfulness -------------------------------------------------------------------------


def map_trustworthiness(codes: np.ndarray, embedding: np.ndarray, n_neighbors: int = 10,
                        max_points: int = 2000, seed: int = 0) -> dict[str, float]:
    """Trustworthiness (Venna & Kaski 2001) of a 2-D map of the codes, on a seeded subsample.

    It needs all pairwise distances (O(n^2) memory), so at most ``max_points`` are used.
    The measure needs ``n_neighbors < n / 2``: on fewer than 22 points it uses fewer neighbours
    (and is NaN below 4 points, where no neighbourhood is left to compare).
    """
    if len(codes) > max_points:
        keep = np.random.default_rng(derive_seed(seed, "trust")).choice(len(codes), max_points, replace=False)
        codes, embedding = codes[keep], embedding[keep]
    n_neighbors = min(n_neighbors, (len(codes) - 1) // 2)
    if n_neighbors < 1:
        return {"tsne_trustworthiness": float("nan")}
    return {"tsne_trustworthiness": float(sk_trustworthiness(codes, embedding, n_neighbors=n_neighbors))}


# --- the VAE's own health ---------------------------------------------------------------------


def active_units(mean: np.ndarray, threshold: float = 0.01) -> dict[str, float]:
    """Active units (Burda et al. 2016): dimensions u with Cov_x(E[z_u|x]) > ``threshold``."""
    variance = np.var(mean.astype(np.float64), axis=0)
    return {"active_units": float(np.count_nonzero(variance > threshold))}


def kl_per_dimension(mean: np.ndarray, logvar: np.ndarray) -> dict[str, float]:
    """Mean KL(q(z_u|x) || N(0, 1)) over x for each latent dimension u, and their sum (nats)."""
    mean, logvar = mean.astype(np.float64), logvar.astype(np.float64)
    kl = 0.5 * (mean**2 + np.exp(logvar) - 1.0 - logvar)
    per_dim = kl.mean(axis=0)
    result = {"kl_total": float(per_dim.sum())}
    result.update({f"kl_dim_{u}": float(v) for u, v in enumerate(per_dim)})
    return result


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (Heusel et al. 2017, FID).

    ``|mu_a - mu_b|^2 + tr(C_a) + tr(C_b) - 2 tr((C_a C_b)^(1/2))``. The trace of
    the matrix square root is taken as the sum of square roots of the
    eigenvalues of the symmetric ``C_a^(1/2) C_b C_a^(1/2)``, which has the same
    spectrum as ``C_a C_b`` and stays stable when the covariances are singular
    (ReLU features often have dead dimensions).
    """
    a, b = features_a.astype(np.float64), features_b.astype(np.float64)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    values, vectors = np.linalg.eigh(cov_a)
    root_a = (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T
    inner = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace_root = float(np.sqrt(np.clip(inner, 0.0, None)).sum())
    mean_term = float(((a.mean(0) - b.mean(0)) ** 2).sum())
    return mean_term + float(np.trace(cov_a) + np.trace(cov_b)) - 2.0 * trace_root


def label_entropy(probabilities: np.ndarray) -> dict[str, float]:
    """Mode coverage of generated samples from a classifier's class probabilities (N, K).

    ``label_entropy``: entropy (nats) of the classifier's predicted labels over
    the samples, divided by log K (1 = every class equally often, 0 = one class).
    ``label_confidence``: mean of the top class probability (how recognisable).
    """
    k = probabilities.shape[1]
    counts = np.bincount(probabilities.argmax(1), minlength=k).astype(np.float64)
    share = counts / counts.sum()
    nonzero = share[share > 0]
    return {
        "label_entropy": float(-(nonzero * np.log(nonzero)).sum() / np.log(k)),
        "label_confidence": float(probabilities.max(1).mean()),
    }


def separation_measures(codes: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Silhouette (Euclidean and cosine), Davies-Bouldin and Calinski-Harabasz together."""
    return {**silhouette(codes, labels), **silhouette_cosine(codes, labels), **davies_bouldin(codes, labels),
            **calinski_harabasz(codes, labels)}
