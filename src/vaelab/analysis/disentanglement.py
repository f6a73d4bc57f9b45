"""Disentanglement metrics on data whose generating factors are known (dSprites-like).

Definitions and default settings follow Locatello et al. (2019) and disentanglement_lib
(``evaluation/metrics/{beta_vae, factor_vae, mig, dci, sap_score}.py`` and the sizes of
``config/unsupervised_study_v1/metric_configs/*.gin``); each metric is a plain function
``name(codes, factors, seed=..., ...) -> dict[str, float]``.

``codes`` (N, d) are representations (posterior means); ``factors`` (N, K) are the
ground-truth factors as integer indices (e.g. shape, scale, orientation, x, y). disentanglement_lib
draws observations from the generative process; here they are drawn from the given points.
When those are the whole factor grid, encoded once (what :mod:`vaelab.analysis.evaluate` does
by default), a uniform draw from them is a draw from dSprites' generative process, so the
two are the same: a deterministic encoder gives a grid point the same code every time. On a
subset the conditional draws (pairs or batches sharing one factor's value) come from the
subset's points that hold it. Factors with a single value (dSprites' colour) carry no
information and are left out.
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np
from sklearn import metrics as skm
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

from vaelab.seeding import derive_seed


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng(derive_seed(seed, "disentanglement", name))


def _varying(factors: np.ndarray) -> np.ndarray:
    """The columns of ``factors`` that take more than one value."""
    factors = np.asarray(factors)
    if factors.ndim != 2:
        raise ValueError(f"factors must be (N, K) integer indices, not shape {factors.shape}")
    keep = [k for k in range(factors.shape[1]) if len(np.unique(factors[:, k])) > 1]
    if not keep:
        raise ValueError("every factor is constant: disentanglement needs factors that vary")
    return factors[:, keep]


class _SharedValues:
    """Draws of points that share one factor's value with given anchor points, by index arithmetic.

    For each factor the points are sorted by its value (stably); a point's value owns the run
    ``order[start:start + count]`` of that order, so a uniform draw from the run is a uniform
    draw among the points holding the anchor's value.
    """

    def __init__(self, factors: np.ndarray) -> None:
        self.order, self.start, self.count = [], [], []
        for column in factors.T:
            order = np.argsort(column, kind="stable")
            values, first, counts = np.unique(column[order], return_index=True, return_counts=True)
            slot = np.searchsorted(values, column)
            self.order.append(order)
            self.start.append(first[slot])
            self.count.append(counts[slot])

    def draw(self, factor: int, anchors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """For each anchor index, the index of a random point (with replacement) sharing its value of ``factor``."""
        offsets = rng.integers(self.count[factor][anchors])
        return self.order[factor][self.start[factor][anchors] + offsets]


def _split(n: int, n_train: int, n_test: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint train and test indices (fewer where there are fewer points, 80/20)."""
    order = rng.permutation(n)
    if n_train + n_test > n:
        n_train = int(0.8 * n)
    return order[:n_train], order[n_train:n_train + n_test]


# --- BetaVAE score (Higgins et al. 2017) -------------------------------------------------------

def beta_vae_score(codes: np.ndarray, factors: np.ndarray, seed: int = 0, batch_size: int = 64,
                   num_train: int = 10000, num_eval: int = 5000) -> dict[str, float]:
    """BetaVAE score: accuracy of a linear classifier that tells which factor was held fixed from
    the mean absolute difference of the codes of pairs sharing that factor.

    Each example, as in disentanglement_lib's ``beta_vae.py``: pick a factor; draw ``batch_size``
    pairs, each pair's first point at random and its second at random among the points that
    share the first's value of that factor (so the held value differs from pair to pair);
    average |z1 - z2| over the pairs. Logistic regression (scikit-learn's defaults, as in
    disentanglement_lib) is fitted on ``num_train`` examples and scored on ``num_eval`` others.
    """
    factors = _varying(factors)
    codes = np.asarray(codes, dtype=np.float64)
    shared, rng = _SharedValues(factors), _rng(seed, "beta_vae")

    def examples(n: int) -> tuple[np.ndarray, np.ndarray]:
        features, targets = np.empty((n, codes.shape[1])), rng.integers(factors.shape[1], size=n)
        for i, k in enumerate(targets):
            first = rng.integers(len(codes), size=batch_size)
            second = shared.draw(int(k), first, rng)
            features[i] = np.abs(codes[first] - codes[second]).mean(0)
        return features, targets

    train_x, train_y = examples(num_train)
    eval_x, eval_y = examples(num_eval)
    model = LogisticRegression(max_iter=1000).fit(train_x, train_y)
    return {"beta_vae_train_accuracy": float(model.score(train_x, train_y)),
            "beta_vae_score": float(model.score(eval_x, eval_y))}


# --- FactorVAE score (Kim & Mnih 2018) ---------------------------------------------------------

PRUNE_STD = 0.05  # disentanglement_lib's prune_dims.threshold (factor_vae_metric.gin), on the standard deviation


def factor_vae_score(codes: np.ndarray, factors: np.ndarray, seed: int = 0, batch_size: int = 64,
                     num_train: int = 10000, num_eval: int = 5000,
                     num_variance_estimate: int = 10000) -> dict[str, float]:
    """FactorVAE score: accuracy of a majority-vote classifier from "the code dimension of least
    variance" to "the factor held fixed".

    As in disentanglement_lib's ``factor_vae.py``: each dimension's variance over
    ``num_variance_estimate`` points normalises it; a dimension whose standard deviation is below
    0.05 is collapsed and takes no part. Each vote: pick a factor, draw ``batch_size`` points
    sharing the value of that factor held by a random point, and take the active dimension whose
    normalised variance over the batch is least. ``factor_vae_active_dims`` says how many
    dimensions took part. (disentanglement_lib counts every dimension there, and indexes its votes
    by the position among the active dimensions; both differ from this only when some collapsed.)
    """
    factors = _varying(factors)
    codes = np.asarray(codes, dtype=np.float64)
    shared, rng = _SharedValues(factors), _rng(seed, "factor_vae")
    sample = rng.choice(len(codes), size=min(num_variance_estimate, len(codes)), replace=False)
    variances = codes[sample].var(0, ddof=1)
    active = np.sqrt(variances) >= PRUNE_STD
    if not active.any():
        return {"factor_vae_train_accuracy": 0.0, "factor_vae_score": 0.0, "factor_vae_active_dims": 0.0}
    global_variances = np.where(active, variances, 1.0)  # collapsed dimensions take no part in the votes

    def votes(n: int) -> np.ndarray:
        table = np.zeros((codes.shape[1], factors.shape[1]), dtype=np.int64)
        for _ in range(n):
            k = int(rng.integers(factors.shape[1]))
            anchor = np.full(batch_size, rng.integers(len(codes)))
            spread = codes[shared.draw(k, anchor, rng)].var(0, ddof=1) / global_variances
            spread[~active] = np.inf
            table[int(np.argmin(spread)), k] += 1
        return table

    train, evaluation = votes(num_train), votes(num_eval)
    classifier = train.argmax(1)  # each dimension votes for the factor it most often stood for
    rows = np.arange(codes.shape[1])
    return {"factor_vae_train_accuracy": float(train[rows, classifier].sum() / max(train.sum(), 1)),
            "factor_vae_score": float(evaluation[rows, classifier].sum() / max(evaluation.sum(), 1)),
            "factor_vae_active_dims": float(active.sum())}


# --- Mutual Information Gap (Chen et al. 2018) -------------------------------------------------

def discretize(codes: np.ndarray, bins: int = 20) -> np.ndarray:
    """Each code dimension cut into ``bins`` equal-width bins over its range (disentanglement_lib's
    histogram discretiser): (N, d) integer bin indices."""
    codes = np.asarray(codes, dtype=np.float64)
    out = np.empty(codes.shape, dtype=np.int64)
    for j in range(codes.shape[1]):
        edges = np.histogram(codes[:, j], bins)[1]
        out[:, j] = np.digitize(codes[:, j], edges[:-1])
    return out


def mutual_information(discrete_codes: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """(d, K) mutual information in nats between each discretised code dimension and each factor."""
    return np.array([[skm.mutual_info_score(factors[:, k], discrete_codes[:, j]) for k in range(factors.shape[1])]
                     for j in range(discrete_codes.shape[1])])


def mig(codes: np.ndarray, factors: np.ndarray, seed: int = 0, num_train: int = 10000,
        bins: int = 20) -> dict[str, float]:
    """Mutual Information Gap: for each factor, the gap between the two code dimensions that know
    most about it, divided by the factor's entropy; averaged over factors.

    Codes are discretised into ``bins`` histogram bins; ``num_train`` images are used.
    A factor carried by one dimension scores near 1; one spread over two dimensions near 0.
    """
    factors = _varying(factors)
    if codes.shape[1] < 2:
        raise ValueError("MIG compares the two most informative dimensions: it needs at least 2")
    rng = _rng(seed, "mig")
    chosen = rng.choice(len(codes), size=min(num_train, len(codes)), replace=False)
    info = mutual_information(discretize(codes[chosen], bins), factors[chosen])
    entropy = np.array([skm.mutual_info_score(factors[chosen, k], factors[chosen, k])
                        for k in range(factors.shape[1])])
    top = np.sort(info, axis=0)[::-1]
    per_factor = (top[0] - top[1]) / entropy
    return {"mig": float(per_factor.mean()),
            **{f"mig_factor_{k}": float(v) for k, v in enumerate(per_factor)}}


# --- DCI (Eastwood & Williams 2018) ------------------------------------------------------------

def _entropy_normalised(p: np.ndarray, base: int) -> np.ndarray:
    """1 - entropy of each row of ``p`` (normalised to sum 1) in log base ``base``."""
    p = p / np.maximum(p.sum(1, keepdims=True), 1e-12)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(p > 0, np.log(p) / np.log(base), 0.0)
    return 1.0 - (-(p * logs).sum(1))


DCI_ESTIMATORS = ("boosted", "forest")


def _importance_model(estimator: str, seed: int, factor: int):
    """The classifier whose impurity importances DCI reads, for one factor."""
    random_state = derive_seed(seed, "dci", factor) % 2**31
    if estimator == "boosted":  # disentanglement_lib's GradientBoostingClassifier(): 100 rounds of depth-3 trees
        return GradientBoostingClassifier(random_state=random_state)
    return RandomForestClassifier(n_estimators=30, max_depth=8, max_features=None, n_jobs=1,
                                  random_state=random_state)


def _fit_one_factor(estimator: str, seed: int, factor: int, x_train: np.ndarray, y_train: np.ndarray,
                    x_test: np.ndarray, y_test: np.ndarray) -> tuple[np.ndarray, float, float]:
    model = _importance_model(estimator, seed, factor).fit(x_train, y_train)
    return (np.abs(model.feature_importances_), float(np.mean(model.predict(x_train) == y_train)),
            float(np.mean(model.predict(x_test) == y_test)))


def dci(codes: np.ndarray, factors: np.ndarray, seed: int = 0, num_train: int = 10000,
        num_test: int = 5000, estimator: str = "boosted") -> dict[str, float]:
    """Disentanglement, completeness and informativeness from the importance of each code dimension
    for predicting each factor.

    One classifier per factor on ``num_train`` points; its impurity importances fill the importance
    matrix and its accuracy on ``num_test`` others is the informativeness. ``estimator`` is
    ``"boosted"`` (the default): scikit-learn's ``GradientBoostingClassifier`` with its defaults
    (100 rounds of depth-3 trees), as disentanglement_lib's ``dci.py``; or ``"forest"``, a faster
    random forest (30 trees of depth at most 8, every dimension considered at each split, as in the
    original DCI paper), whose numbers are not comparable with Locatello et al.'s. The factors'
    classifiers are fitted in parallel threads (the same bytes as one after another).
    Disentanglement weighs each dimension's 1 - entropy (base K) of its importances by its share of
    all importance; completeness averages each factor's 1 - entropy (base d).
    """
    factors = _varying(factors)
    codes = np.asarray(codes, dtype=np.float64)
    if estimator not in DCI_ESTIMATORS:
        raise ValueError(f"unknown DCI estimator {estimator!r}: choose one of {', '.join(DCI_ESTIMATORS)}")
    train, test = _split(len(codes), num_train, num_test, _rng(seed, "dci"))
    jobs = min(factors.shape[1], len(os.sched_getaffinity(0)))
    with ThreadPoolExecutor(max_workers=jobs) as pool:  # scikit-learn's trees grow without the GIL
        fitted = list(pool.map(lambda k: _fit_one_factor(estimator, seed, k, codes[train], factors[train, k],
                                                         codes[test], factors[test, k]), range(factors.shape[1])))
    importance = np.stack([importances for importances, _, _ in fitted], axis=1)
    n_codes, n_factors = importance.shape
    per_code = _entropy_normalised(importance, n_factors) if n_factors > 1 else np.ones(n_codes)
    weights = importance.sum(1) / max(importance.sum(), 1e-12)
    per_factor = _entropy_normalised(importance.T, n_codes) if n_codes > 1 else np.ones(n_factors)
    return {"dci_disentanglement": float((per_code * weights).sum()),
            "dci_completeness": float(per_factor.mean()),
            "dci_informativeness_train": float(np.mean([train_accuracy for _, train_accuracy, _ in fitted])),
            "dci_informativeness": float(np.mean([test_accuracy for _, _, test_accuracy in fitted]))}


# --- SAP score (Kumar et al. 2018) --------------------------------------------------------------

def sap(codes: np.ndarray, factors: np.ndarray, seed: int = 0, num_train: int = 10000,
        num_test: int = 5000) -> dict[str, float]:
    """Separated Attribute Predictability: for each factor, the gap between the two code dimensions
    that alone predict it best (a linear SVM on one dimension, C = 0.01, balanced classes, scored
    on held-out images), averaged over factors (disentanglement_lib's discrete-factor version)."""
    factors = _varying(factors)
    codes = np.asarray(codes, dtype=np.float64)
    if codes.shape[1] < 2:
        raise ValueError("SAP compares the two most predictive dimensions: it needs at least 2")
    train, test = _split(len(codes), num_train, num_test, _rng(seed, "sap"))
    scores = np.zeros((codes.shape[1], factors.shape[1]))
    with warnings.catch_warnings():  # few images per value of a 40-valued factor: scikit-learn says so, often
        warnings.simplefilter("ignore", UserWarning)
        for j in range(codes.shape[1]):
            x_train, x_test = codes[train, j:j + 1], codes[test, j:j + 1]
            for k in range(factors.shape[1]):
                svm = LinearSVC(C=0.01, class_weight="balanced").fit(x_train, factors[train, k])
                scores[j, k] = np.mean(svm.predict(x_test) == factors[test, k])
    top = np.sort(scores, axis=0)[::-1]
    return {"sap": float(np.mean(top[0] - top[1]))}


METRICS: dict[str, Callable[..., dict[str, float]]] = {"beta_vae": beta_vae_score, "factor_vae": factor_vae_score, "mig": mig, "dci": dci, "sap": sap}


def disentanglement_measures(codes: np.ndarray, factors: np.ndarray, seed: int = 0,
                             dci_estimator: str = "boosted") -> dict[str, float]:
    """Every metric above with its default settings (Locatello et al.'s sizes), in one dict."""
    result: dict[str, float] = {}
    for name, metric in METRICS.items():
        options = {"estimator": dci_estimator} if name == "dci" else {}
        result.update(metric(codes, factors, seed=seed, **options))
    return result
