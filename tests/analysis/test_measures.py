"""Every measure against an oracle: scikit-learn where it has one, a hand-computed case where not."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import linalg
from scipy import stats as sps
from sklearn import metrics as skm
from sklearn.datasets import make_blobs
from sklearn.manifold import trustworthiness

from tests.conftest import needs_umap
from vaelab.analysis import measures
from vaelab.analysis.likelihood import iwae_log_likelihood
from vaelab.models.distributions import log_normal_diag
from vaelab.analysis.stats import mean_ci, paired_difference


@pytest.fixture(scope="module")
def blobs():
    codes, labels = make_blobs(n_samples=600, centers=4, n_features=6, cluster_std=2.5, random_state=0)
    return codes, labels


def test_silhouette_matches_sklearn(blobs):
    codes, labels = blobs
    result = measures.silhouette(codes, labels)
    assert result["silhouette"] == pytest.approx(skm.silhouette_score(codes, labels), abs=1e-12)
    per_point = skm.silhouette_samples(codes, labels)
    for k in range(4):
        assert result[f"silhouette_class_{k}"] == pytest.approx(per_point[labels == k].mean(), abs=1e-12)


def test_silhouette_hand_computed_case():
    # 1-D points 0, 1 (class 0) and 4, 5 (class 1): s(0) = 1 - 1/4.5, s(1) = 1 - 1/3.5, symmetric.
    codes = np.array([[0.0], [1.0], [4.0], [5.0]])
    labels = np.array([0, 0, 1, 1])
    expected = ((1 - 1 / 4.5) + (1 - 1 / 3.5)) / 2
    assert measures.silhouette(codes, labels)["silhouette"] == pytest.approx(expected)


def test_davies_bouldin_and_calinski_harabasz_match_sklearn(blobs):
    codes, labels = blobs
    assert measures.davies_bouldin(codes, labels)["davies_bouldin"] == pytest.approx(skm.davies_bouldin_score(codes, labels))
    assert measures.calinski_harabasz(codes, labels)["calinski_harabasz"] == pytest.approx(
        skm.calinski_harabasz_score(codes, labels))


def test_calinski_harabasz_hand_computed_case():
    # Two classes {0, 2} and {10, 12} in 1-D: between = 2 * 2 * 5^2 = 100, within = 4 * 1 = 4.
    codes = np.array([[0.0], [2.0], [10.0], [12.0]])
    labels = np.array([0, 0, 1, 1])
    expected = (100 / (2 - 1)) / (4 / (4 - 2))
    assert measures.calinski_harabasz(codes, labels)["calinski_harabasz"] == pytest.approx(expected)


def test_knn_accuracy_matches_a_brute_force_vote(blobs):
    codes, labels = blobs
    train, test = codes[:400], codes[400:]
    result = measures.knn_accuracy(train, labels[:400], test, labels[400:], ks=(5,))
    distances = ((test[:, None, :] - train[None, :, :]) ** 2).sum(-1)
    nearest = np.argsort(distances, axis=1, kind="stable")[:, :5]
    votes = np.array([np.bincount(labels[:400][row], minlength=4).argmax() for row in nearest])
    assert result["knn5_accuracy"] == pytest.approx((votes == labels[400:]).mean())


def test_knn_on_the_same_points_leaves_each_one_out(blobs):
    codes, labels = blobs
    codes, labels = codes[:300], labels[:300]
    result = measures.knn_accuracy(codes, labels, codes, labels, ks=(1, 5), same_points=True)
    distances = ((codes[:, None, :] - codes[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(distances, np.inf)  # leave-one-out by hand: a point is never its own neighbour
    for k in (1, 5):
        nearest = np.argsort(distances, axis=1, kind="stable")[:, :k]
        votes = np.array([np.bincount(labels[row], minlength=4).argmax() for row in nearest])
        assert result[f"knn{k}_accuracy"] == pytest.approx((votes == labels).mean())
    # without leaving itself out, 1-NN on the same points is its own label: always right
    assert measures.knn_accuracy(codes, labels, codes, labels, ks=(1,))["knn1_accuracy"] == 1.0
    assert result["knn1_accuracy"] < 1.0


def test_linear_probe_separates_separable_codes():
    codes, labels = make_blobs(n_samples=300, centers=3, n_features=4, cluster_std=0.3, random_state=1)
    result = measures.linear_probe(codes[:200], labels[:200], codes[200:], labels[200:])
    assert result["linear_probe_accuracy"] == 1.0


def test_attribute_probes_against_hand_cases_and_the_mann_whitney_auc():
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(800, 3))
    noisy = (codes[:, 1] + rng.normal(scale=1.0, size=800) > 0).astype(np.uint8)
    attributes = np.stack([(codes[:, 0] > 0.2).astype(np.uint8),  # a half-space of the codes: probed exactly
                           noisy,  # read through noise: between chance and 1
                           (rng.random(800) < 0.4).astype(np.uint8),  # unrelated to the codes: chance
                           np.zeros(800, np.uint8)], axis=1)  # one value: cannot be probed, left out
    names = ["edge", "noisy", "coin", "never"]
    result = measures.attribute_probes(codes[:600], attributes[:600], codes[600:], attributes[600:], names)
    assert result["attribute_accuracy_edge"] >= 0.98 and result["attribute_auc_edge"] >= 0.999
    assert abs(result["attribute_auc_coin"] - 0.5) < 0.1 and 0.65 < result["attribute_auc_noisy"] < 0.95
    assert "attribute_accuracy_never" not in result and "attribute_auc_never" not in result
    assert result["attributes_mean_auc"] == pytest.approx(np.mean([result[f"attribute_auc_{n}"] for n in names[:3]]))
    # the AUC is the Mann-Whitney U statistic of the probe's scores over (positives x negatives), computed apart
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(codes[:600])
    scores = LogisticRegression(max_iter=2000).fit(scaler.transform(codes[:600]), noisy[:600]).decision_function(
        scaler.transform(codes[600:]))
    positive, negative = scores[noisy[600:] == 1], scores[noisy[600:] == 0]
    u_statistic = sps.mannwhitneyu(positive, negative).statistic
    assert result["attribute_auc_noisy"] == pytest.approx(u_statistic / (len(positive) * len(negative)), abs=1e-12)


def test_attribute_directions_are_differences_of_means_by_hand():
    codes = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0], [6.0, 9.0]])
    attributes = np.array([[1, 0], [1, 0], [0, 0], [0, 0]], np.uint8)
    directions = measures.attribute_directions(codes, attributes)
    assert directions.tolist() == [[1.0 - 5.0, 2.0 - 7.0], [0.0, 0.0]]  # with (1, 2) minus without (5, 7); empty: 0


def test_clustering_accuracy_hand_computed_case():
    labels = np.array([0, 0, 1, 1, 2, 2])
    clusters = np.array([1, 1, 0, 0, 0, 2])
    # best matching: cluster 1 -> class 0 (2), cluster 0 -> class 1 (2), cluster 2 -> class 2 (1)
    assert measures.clustering_accuracy(labels, clusters) == pytest.approx(5 / 6)
    assert measures.clustering_accuracy(labels, np.array([5, 5, 7, 7, 9, 9])) == 1.0


def test_clustering_scores_match_sklearn_on_separated_blobs():
    codes, labels = make_blobs(n_samples=400, centers=4, n_features=5, cluster_std=0.5, random_state=2)
    result = measures.clustering(codes, labels, seed=0)
    for method in ("kmeans", "gmm"):
        assert result[f"{method}_accuracy"] == 1.0
        assert result[f"{method}_nmi"] == pytest.approx(1.0)
        assert result[f"{method}_ari"] == pytest.approx(1.0)
    noisy = measures.clustering(*make_blobs(n_samples=400, centers=4, cluster_std=4.0, random_state=3), seed=0)
    assert 0 < noisy["kmeans_nmi"] < 1 and noisy == measures.clustering(
        *make_blobs(n_samples=400, centers=4, cluster_std=4.0, random_state=3), seed=0)


def test_trustworthiness_matches_sklearn_and_subsamples(blobs):
    codes, _ = blobs
    embedding = codes[:, :2]
    result = measures.map_trustworthiness(codes, embedding, n_neighbors=10, max_points=10_000)
    assert result["tsne_trustworthiness"] == pytest.approx(trustworthiness(codes, embedding, n_neighbors=10))
    assert measures.map_trustworthiness(codes, codes, max_points=10_000)["tsne_trustworthiness"] == pytest.approx(1.0)
    sub = measures.map_trustworthiness(codes, embedding, max_points=100, seed=0)
    assert 0 < sub["tsne_trustworthiness"] <= 1


def test_active_units_hand_computed_case():
    rng = np.random.default_rng(0)
    mean = np.stack([rng.normal(0, 1, 5000), rng.normal(0, 0.05, 5000), rng.normal(3, 0.2, 5000)], axis=1)
    # variances about 1, 0.0025 and 0.04: two dimensions above 0.01
    assert measures.active_units(mean)["active_units"] == 2


def test_kl_per_dimension_hand_computed_case():
    mean = np.array([[1.0, 0.0], [1.0, 0.0]])
    logvar = np.array([[0.0, math.log(2.0)], [0.0, math.log(2.0)]])
    result = measures.kl_per_dimension(mean, logvar)
    assert result["kl_dim_0"] == pytest.approx(0.5)
    assert result["kl_dim_1"] == pytest.approx(0.5 * (2 - 1 - math.log(2)))
    assert result["kl_total"] == pytest.approx(result["kl_dim_0"] + result["kl_dim_1"])


def test_frechet_distance_against_the_closed_form_and_scipy():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 3)) @ np.diag([1.0, 2.0, 0.5])
    b = rng.normal(size=(4000, 3)) + np.array([1.0, -1.0, 0.0])
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    oracle = (((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b)
              - 2 * np.trace(np.real(linalg.sqrtm(cov_a @ cov_b))))
    assert measures.frechet_distance(a, b) == pytest.approx(oracle, rel=1e-9)
    assert measures.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    # 1-D hand case: (mu_a - mu_b)^2 + (sd_a - sd_b)^2
    x, y = np.array([[0.0], [2.0]]), np.array([[5.0], [9.0]])  # sample variances 2 and 8
    assert measures.frechet_distance(x, y) == pytest.approx((1 - 7) ** 2 + (math.sqrt(2) - math.sqrt(8)) ** 2)


def test_frechet_distance_survives_dead_features():
    rng = np.random.default_rng(1)
    a = np.concatenate([rng.normal(size=(500, 4)), np.zeros((500, 3))], axis=1)
    b = np.concatenate([rng.normal(size=(500, 4)) + 0.5, np.zeros((500, 3))], axis=1)
    value = measures.frechet_distance(a, b)
    assert np.isfinite(value) and value > 0


def test_label_entropy_hand_computed_cases():
    uniform = np.eye(4)[np.arange(100) % 4]
    assert measures.label_entropy(uniform)["label_entropy"] == pytest.approx(1.0)
    single = np.tile([0.7, 0.1, 0.1, 0.1], (10, 1))
    result = measures.label_entropy(single)
    assert result["label_entropy"] == 0.0 and result["label_confidence"] == pytest.approx(0.7)
    half = np.eye(4)[np.arange(100) % 2]
    assert measures.label_entropy(half)["label_entropy"] == pytest.approx(math.log(2) / math.log(4))


class LinearGaussian:
    """p(z) = N(0, I_2), p(x|z) = N(W z + b, s^2 I_3): log p(x) = log N(x; b, W W^T + s^2 I) exactly."""

    W = torch.tensor([[1.0, 0.5], [-0.3, 2.0], [0.8, -1.0]], dtype=torch.float64)
    b = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)
    s2 = 0.25

    def log_likelihood(self, x, z):
        mean = z @ self.W.T + self.b
        return log_normal_diag(x, mean, torch.full_like(mean, math.log(self.s2)))

    def true_log_px(self, x):
        cov = (self.W @ self.W.T + self.s2 * torch.eye(3, dtype=torch.float64)).numpy()
        return sps.multivariate_normal(self.b.numpy(), cov).logpdf(x.numpy())

    def posterior(self, x):
        precision = torch.eye(2, dtype=torch.float64) + self.W.T @ self.W / self.s2
        cov = torch.linalg.inv(precision)
        mean = (x - self.b) @ self.W @ cov.T / self.s2
        return mean, cov


def test_iwae_is_exact_with_the_true_posterior_of_a_diagonal_case():
    model = LinearGaussian()
    model.W = torch.tensor([[1.5, 0.0], [0.0, 0.5], [0.0, 0.0]], dtype=torch.float64)  # diagonal posterior
    x = torch.tensor([[1.0, 0.0, 2.5], [-2.0, 1.0, 1.0]], dtype=torch.float64)
    mean, cov = model.posterior(x)
    logvar = torch.log(torch.diagonal(cov)).expand_as(mean).clone()
    estimate = iwae_log_likelihood(x, mean, logvar, model.log_likelihood, k=7, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(estimate.numpy(), model.true_log_px(x), atol=1e-9)


def test_iwae_tightens_to_the_true_log_likelihood_as_k_grows():
    model = LinearGaussian()
    x = torch.tensor([[1.0, 0.0, 2.5], [-2.0, 1.0, 1.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    truth = model.true_log_px(x)
    mean, cov = model.posterior(x)
    logvar = torch.log(torch.diagonal(cov)).expand_as(mean).clone() + 0.7  # a too-broad diagonal proposal
    gen = torch.Generator().manual_seed(0)
    elbo_like = iwae_log_likelihood(x, mean, logvar, model.log_likelihood, k=1, generator=gen)
    tight = iwae_log_likelihood(x, mean, logvar, model.log_likelihood, k=20000, generator=gen).numpy()
    np.testing.assert_allclose(tight, truth, atol=0.01)
    averaged_elbo = np.mean([iwae_log_likelihood(x, mean, logvar, model.log_likelihood, k=1, generator=gen).numpy()
                             for _ in range(300)], axis=0)
    assert (averaged_elbo < truth - 0.05).all() and elbo_like.shape == (3,)


def test_mean_ci_matches_scipy_t_interval():
    values = [0.11, 0.14, 0.09, 0.13]
    result = mean_ci(values)
    low, high = sps.t.interval(0.95, df=3, loc=np.mean(values), scale=sps.sem(values))
    assert result["mean"] == pytest.approx(np.mean(values))
    assert result["ci"] == pytest.approx((high - low) / 2)
    assert mean_ci([0.5]) == {"mean": 0.5, "ci": None, "n": 1}
    diff = paired_difference([1.0, 2.0, 3.0], [0.5, 1.0, 2.0])
    assert diff["mean"] == pytest.approx(np.mean([0.5, 1.0, 1.0])) and diff["n"] == 3


def test_trustworthiness_on_a_handful_of_points_uses_fewer_neighbours():
    from sklearn.manifold import trustworthiness

    from vaelab.analysis.measures import map_trustworthiness

    rng = np.random.default_rng(0)
    codes, embedding = rng.normal(size=(9, 4)), rng.normal(size=(9, 2))
    assert map_trustworthiness(codes, embedding)["tsne_trustworthiness"] == pytest.approx(
        trustworthiness(codes, embedding, n_neighbors=4))
    assert np.isnan(map_trustworthiness(codes[:2], embedding[:2])["tsne_trustworthiness"])


# --- manifold clustering (N2D) ------------------------------------------------------------------


def _n2d_oracle(codes: np.ndarray, labels: np.ndarray, random_state: int, inits: int = 1) -> dict[str, float]:
    """N2D's ``cluster_manifold_in_embedding`` with its run.sh settings, written out from its code: UMAP
    (Euclidean, 20 neighbours, min_dist 0, as many dimensions as clusters), a default full-covariance GMM,
    argmax of its probabilities; accuracy by trying every matching of clusters to classes. ``inits``: the
    mixture's starts (N2D's code: scikit-learn's default, 1)."""
    import itertools

    import umap
    from sklearn.mixture import GaussianMixture

    k = len(np.unique(labels))
    embedded = umap.UMAP(random_state=random_state, metric="euclidean", n_components=k, n_neighbors=20,
                         min_dist=0.0, n_jobs=1).fit_transform(codes)
    clusters = GaussianMixture(covariance_type="full", n_components=k, n_init=inits,
                               random_state=random_state).fit(embedded).predict_proba(embedded).argmax(1)
    accuracy = max(np.mean(np.array(order)[clusters] == labels) for order in itertools.permutations(range(k)))
    return {"n2d_nmi": skm.normalized_mutual_info_score(labels, clusters),
            "n2d_ari": skm.adjusted_rand_score(labels, clusters), "n2d_accuracy": accuracy}


@pytest.mark.slow  # umap compiles its kernels in each process
@needs_umap
def test_manifold_clustering_is_n2d_s_recipe_and_finds_separated_clusters():
    from vaelab.seeding import derive_seed

    # overlapping blobs, so that the clusters are imperfect and any difference in the recipe would show
    codes, labels = make_blobs(n_samples=500, centers=4, n_features=8, cluster_std=4.0, random_state=1)
    result = measures.manifold_clustering(codes, labels, seed=3)
    oracle = _n2d_oracle(codes, labels, derive_seed(3, "manifold") % (2**32))
    assert result == pytest.approx(oracle, abs=1e-12)
    assert 0.3 < result["n2d_accuracy"] < 1.0
    assert measures.manifold_clustering(codes, labels, seed=3) == result  # seeded: the same numbers again
    started = measures.manifold_clustering(codes, labels, seed=3, inits=4)  # the named departure: more starts
    assert started == pytest.approx(_n2d_oracle(codes, labels, derive_seed(3, "manifold") % (2**32), inits=4),
                                    abs=1e-12)
    separated, classes = make_blobs(n_samples=300, centers=3, n_features=8, cluster_std=0.5, random_state=0)
    assert measures.manifold_clustering(separated, classes) == {"n2d_nmi": 1.0, "n2d_ari": 1.0, "n2d_accuracy": 1.0}
    few = measures.manifold_clustering(separated[:15], classes[:15])  # fewer codes than N2D's 20 neighbours
    assert all(np.isfinite(v) for v in few.values())


def test_majority_accuracy_hand_computed_case_and_against_a_contingency_table():
    from sklearn.metrics.cluster import contingency_matrix

    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    clusters = np.array([7, 7, 3, 3, 3, 9, 9, 9])  # 7: {0, 0}; 3: {0, 1, 1}; 9: {2, 2, 2}
    assert measures.majority_accuracy(labels, clusters) == pytest.approx(7 / 8)
    # more clusters than classes: each may take the same class (Hungarian counts the extra ones wrong)
    split = np.array([0, 1, 2, 3, 3, 4, 4, 5])
    assert measures.majority_accuracy(labels, split) == 1.0
    assert measures.clustering_accuracy(labels, split) < 1.0
    rng = np.random.default_rng(0)
    labels, clusters = rng.integers(0, 10, 500), rng.integers(0, 16, 500)
    expected = contingency_matrix(clusters, labels).max(axis=1).sum() / 500
    assert measures.majority_accuracy(labels, clusters) == pytest.approx(expected)


def test_the_cosine_silhouette_by_brute_force():
    rng = np.random.default_rng(0)
    codes = np.concatenate([rng.normal([3, 0, 0], 1.0, (15, 3)), rng.normal([0, 3, 1], 1.0, (12, 3))])
    labels = np.array([0] * 15 + [1] * 12)
    unit = codes / np.linalg.norm(codes, axis=1, keepdims=True)
    distance = 1.0 - unit @ unit.T
    scores = []
    for i in range(len(codes)):
        own = labels == labels[i]
        a = distance[i, own].sum() / (own.sum() - 1)  # the mean distance to the others of its class
        b = distance[i, ~own].mean()
        scores.append((b - a) / max(a, b))
    assert measures.silhouette_cosine(codes, labels)["silhouette_cosine"] == pytest.approx(np.mean(scores), abs=1e-12)
    # the cosine distance ignores the norm: scaling each code changes nothing
    scaled = codes * rng.uniform(0.1, 10.0, (len(codes), 1))
    assert measures.silhouette_cosine(scaled, labels) == pytest.approx(measures.silhouette_cosine(codes, labels))
    codes[0] = 0.0
    assert np.isnan(measures.silhouette_cosine(codes, labels)["silhouette_cosine"])
