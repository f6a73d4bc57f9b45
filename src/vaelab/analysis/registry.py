"""Every measure vaelab reports, in one place: its group, what it means, which way is better, whether a
summary shows it, and what its group needs.

A *measure* is one key of ``measures.json``; a *group* is what ``vaelab evaluate --measures`` and a
study's ``measures:`` name, and is computed by one function in :mod:`vaelab.analysis.evaluate`.
Everything else that lists measures derives from :data:`REGISTRY`: the groups and their default, the
CLI help, ``describe`` and ``is_detail`` (tables and the report), the headline columns (the study table,
the explorer), the report's bar chart, and the check of a study file's measure names. This module
imports nothing heavy: the CLI's ``--help`` and the study reader use it.

To add a measure: add its entry to its group here, and its computation to the group's function.
"""

from __future__ import annotations

import difflib
import importlib.util
from dataclasses import dataclass

from vaelab.errors import ConfigError


@dataclass(frozen=True)
class Measure:
    """One measure (or a family of them: ``name`` ends in ``*``, e.g. ``silhouette_class_*``)."""

    name: str
    meaning: str  # a family's meaning has a ``{}`` for what follows the prefix
    direction: int  # +1: higher is better; -1: lower is better; 0: neither
    headline: str = ""  # its short column name, where a summary shows it
    column: int = 0  # its place among the headline columns (the study table's order since vaelab 0.1)
    detail: bool = False  # shown in detail tables only (per class, per dimension, settings, training fits)
    bar: bool = False  # in the report's bar chart of latent-space measures

    @property
    def family(self) -> bool:
        return self.name.endswith("*")

    def matches(self, name: str) -> bool:
        """Whether ``name`` is this measure (or a member of this family)."""
        if self.family:
            prefix = self.name[:-1]
            return name.startswith(prefix) and len(name) > len(prefix)
        return name == self.name


@dataclass(frozen=True)
class Group:
    """A measure group: what it needs, and the measures it writes (in the order tables show them)."""

    name: str
    meaning: str
    measures: tuple[Measure, ...]
    needs: frozenset[str] = frozenset()  # "train codes", "classifier" (the feature extractor), "factors", ...
    default: bool = True  # measured by a study whose file does not list its measures


REGISTRY: tuple[Group, ...] = (
    Group("separation", "how well the classes separate in the code space", (
        Measure("silhouette", "mean silhouette of the classes (Rousseeuw 1987)", +1, headline="silhouette", column=0, bar=True),
        Measure("silhouette_class_*", "silhouette of class {}", +1, detail=True),
        Measure("silhouette_cosine", "mean silhouette of the classes with the cosine distance (angles: codes on "
                                     "a sphere, the S-VAE's)", +1),
        Measure("davies_bouldin", "Davies-Bouldin index of the classes", -1),
        Measure("calinski_harabasz", "Calinski-Harabasz ratio of the classes", +1),
    )),
    Group("knn", "k-nearest-neighbour classification of the test codes", (
        Measure("knn5_accuracy", "5-NN accuracy, train codes -> test codes", +1, headline="5-NN acc", column=1, bar=True),
        Measure("knn10_accuracy", "10-NN accuracy, train codes -> test codes", +1),
    ), needs=frozenset({"train codes"})),
    Group("probe", "a linear probe of the classes", (
        Measure("linear_probe_accuracy", "logistic-regression probe accuracy", +1, headline="probe acc", column=2, bar=True),
    ), needs=frozenset({"train codes"})),
    Group("attributes", "a linear probe of each binary attribute (data sets that have several: CelebA's 40)", (
        Measure("attributes_mean_auc", "mean over the attributes of a linear probe's ROC AUC on the test codes", +1,
                headline="attr. AUC", column=13),
        Measure("attributes_mean_accuracy", "mean over the attributes of a linear probe's accuracy", +1),
        Measure("attribute_auc_*", "linear probe ROC AUC of attribute {}", +1, detail=True),
        Measure("attribute_accuracy_*", "linear probe accuracy of attribute {}", +1, detail=True),
    ), needs=frozenset({"train codes", "attributes"})),
    Group("clustering", "k-means and GMM clusters (and a mixture model's own) against the classes", (
        Measure("kmeans_nmi", "k-means NMI with the classes", +1, bar=True),
        Measure("kmeans_ari", "k-means ARI with the classes", +1),
        Measure("kmeans_accuracy", "k-means accuracy (Hungarian matching)", +1),
        Measure("gmm_nmi", "GMM NMI with the classes", +1),
        Measure("gmm_ari", "GMM ARI with the classes", +1),
        Measure("gmm_accuracy", "GMM accuracy (Hungarian matching)", +1),
        Measure("own_nmi", "the model's own clusters: NMI with the classes", +1),
        Measure("own_ari", "the model's own clusters: ARI with the classes", +1),
        Measure("own_accuracy", "the model's own clusters: Hungarian accuracy", +1, headline="own clusters acc", column=3),
        Measure("own_majority_accuracy", "the model's own clusters: accuracy with each labelled by its majority "
                                         "class (many-to-one; for more clusters than classes)", +1),
    )),
    Group("manifold", "N2D: a GMM on the UMAP manifold of the codes (McConville et al. 2020; the umap extra)", (
        Measure("n2d_nmi", "N2D clusters (GMM on the codes' UMAP manifold): NMI with the classes", +1),
        Measure("n2d_ari", "N2D clusters: ARI with the classes", +1),
        Measure("n2d_accuracy", "N2D clusters: Hungarian accuracy", +1, headline="N2D acc", column=12),
    ), needs=frozenset({"umap"}), default=False),
    Group("map", "the 2-D t-SNE map of the codes", (
        Measure("tsne_trustworthiness", "trustworthiness of the t-SNE map (10 neighbours)", +1, bar=True),
    )),
    Group("health", "reconstruction, KL, active units (and a VQ-VAE's codebook use)", (
        Measure("recon_bce", "reconstruction BCE, nats per image", -1, headline="recon BCE", column=4),
        Measure("recon_mse", "reconstruction MSE per pixel", -1),
        Measure("kl_total", "KL(q(z|x) || p(z)), nats", 0),
        Measure("kl_dim_*", "KL of latent dimension {}", 0, detail=True),
        Measure("active_units", "active latent units (Burda et al. 2016)", 0),
        Measure("codebook_usage", "share of the codebook's vectors the test codes use (VQ-VAE)", +1),
        Measure("codebook_perplexity", "exp entropy of the test codes' codebook indices (VQ-VAE; K at most)", +1),
    )),
    Group("likelihood", "the ELBO and the IWAE bound (models with a posterior)", (
        Measure("neg_elbo_binarized", "negative ELBO on binarised test images, nats", -1),
        Measure("nll_iwae_binarized", "IWAE negative log-likelihood, binarised, nats", -1, headline="IWAE NLL", column=6),
        Measure("neg_elbo", "negative ELBO on the grey levels (continuous likelihoods), nats", -1),
        Measure("nll_iwae", "IWAE negative log-likelihood on the grey levels (continuous likelihoods), nats", -1),
        Measure("nll_iwae_bpd", "IWAE NLL in bits per dimension (continuous likelihoods, 8 bits for 256 levels)", -1,
                headline="bits/dim", column=11),
        Measure("iwae_k", "importance samples per image of the IWAE bound", 0, detail=True),
        Measure("iwae_examples", "test images of the IWAE bound", 0, detail=True),
    )),
    Group("generation", "prior samples, through the feature classifier", (
        Measure("prior_fd", "Fréchet distance of prior samples to test images", -1, headline="prior FD", column=5),
        Measure("prior_label_entropy", "label entropy of prior samples (1 = all classes)", +1),
        Measure("prior_label_confidence", "classifier confidence on prior samples", +1),
    ), needs=frozenset({"classifier"})),
    Group("expost", "draws from a Gaussian mixture fitted to the training codes after training (ex-post density, "
                    "Ghosh et al. 2020), through the feature classifier", (
        Measure("expost_fd", "Fréchet distance of ex-post density samples to test images", -1, headline="ex-post FD",
                column=5),
        Measure("expost_label_entropy", "label entropy of ex-post density samples (1 = all classes)", +1),
        Measure("expost_label_confidence", "classifier confidence on ex-post density samples", +1),
        Measure("expost_components", "components of the ex-post mixture (capped at the distinct codes)", 0,
                detail=True),
        Measure("expost_log_likelihood", "mean log-density of the training codes under the ex-post mixture", 0,
                detail=True),
        Measure("expost_converged", "whether the ex-post mixture's EM converged (1) or stopped at 2,000 steps (0)",
                0, detail=True),
    ), needs=frozenset({"classifier", "train codes"})),
    Group("perturbation", "decoded test codes plus noise, through the feature classifier", (
        Measure("perturb_accuracy_s*", "classifier accuracy on decoded codes + noise, sigma {}", +1),
    ), needs=frozenset({"classifier"})),
    Group("disentanglement", "Locatello et al.'s five metrics against the generating factors (data that knows them)", (
        Measure("beta_vae_score", "BetaVAE score: which factor was fixed, from code differences (Higgins et al. 2017)",
                +1),
        Measure("beta_vae_train_accuracy", "BetaVAE score's classifier on its training examples", +1, detail=True),
        Measure("factor_vae_score", "FactorVAE score: majority vote from the least-varying dimension (Kim & Mnih 2018)",
                +1, headline="FactorVAE score", column=7),
        Measure("factor_vae_train_accuracy", "FactorVAE score's classifier on its training votes", +1, detail=True),
        Measure("factor_vae_active_dims", "dimensions with a standard deviation of at least 0.05 (FactorVAE score)", 0),
        Measure("mig", "mutual information gap (Chen et al. 2018)", +1, headline="MIG", column=8),
        Measure("mig_factor_*", "MIG of factor {}", +1, detail=True),
        Measure("dci_disentanglement", "DCI disentanglement (Eastwood & Williams 2018)", +1, headline="DCI dis.", column=9),
        Measure("dci_completeness", "DCI completeness", +1),
        Measure("dci_informativeness", "DCI informativeness: held-out accuracy of predicting each factor", +1),
        Measure("dci_informativeness_train", "DCI informativeness on the training codes", +1, detail=True),
        Measure("sap", "separated attribute predictability (Kumar et al. 2018)", +1, headline="SAP", column=10),
        Measure("disentanglement_points", "points of the factor grid the disentanglement metrics drew from", 0,
                detail=True),
    ), needs=frozenset({"factors"}), default=False),
)

GROUPS: tuple[str, ...] = tuple(group.name for group in REGISTRY)
# What a study measures when its file does not say: every group that applies to any data set.
DEFAULT_GROUPS: tuple[str, ...] = tuple(group.name for group in REGISTRY if group.default)
CLASSIFIER_GROUPS: frozenset[str] = frozenset(group.name for group in REGISTRY if "classifier" in group.needs)
TRAIN_CODE_GROUPS: frozenset[str] = frozenset(group.name for group in REGISTRY if "train codes" in group.needs)

_ENTRIES: tuple[tuple[Group, Measure], ...] = tuple((group, m) for group in REGISTRY for m in group.measures)
# name -> (meaning, direction) of every single (not family) measure, in the tables' order
MEASURE_INFO: dict[str, tuple[str, int]] = {m.name: (m.meaning, m.direction) for _, m in _ENTRIES if not m.family}
# The measures a summary shows, with their short column names (the study table, the explorer), in its order.
HEADLINE: dict[str, str] = {m.name: m.headline for m in sorted((m for _, m in _ENTRIES if m.headline),
                                                                 key=lambda m: m.column)}
BAR_MEASURES: tuple[str, ...] = tuple(m.name for _, m in _ENTRIES if m.bar)


def entry(name: str) -> tuple[Group, Measure] | None:
    """The group and registry entry of a measure name (None for a name vaelab does not write)."""
    for group, measure in _ENTRIES:
        if measure.matches(name):
            return group, measure
    return None


# The optional packages a group may need: need -> (the module, the extra that installs it).
EXTRAS: dict[str, tuple[str, str]] = {"umap": ("umap", "vaelab[umap]")}


def missing_extra(groups: list[str] | tuple[str, ...]) -> str | None:
    """Why ``groups`` cannot be measured here: the one line naming an optional package that is not installed
    and how to install it (None where every package they need is there)."""
    for group in REGISTRY:
        for need in sorted(group.needs & EXTRAS.keys()) if group.name in groups else ():
            module, extra = EXTRAS[need]
            if importlib.util.find_spec(module) is None:
                return f"the {group.name} measures need {module}, which is not installed: pip install '{extra}'"
    return None


def require_extras(groups: list[str] | tuple[str, ...]) -> None:
    """Raise the :class:`ConfigError` of :func:`missing_extra` where ``groups`` need a package that is not
    installed (the one check: ``evaluate``, ``--measures`` and a study's preflight all call it)."""
    missing = missing_extra(groups)
    if missing:
        raise ConfigError(missing)


def installed_groups() -> tuple[str, ...]:
    """Every group whose optional packages are installed, in the registry's order ("all" of them)."""
    return tuple(group for group in GROUPS if missing_extra([group]) is None)


def describe(name: str) -> tuple[str, int]:
    """Meaning and direction of a measure (the name itself and 0 for one the registry does not know)."""
    found = entry(name)
    if found is None:
        return (name, 0)
    measure = found[1]
    suffix = name[len(measure.name) - 1:] if measure.family else ""
    return (measure.meaning.format(suffix) if measure.family else measure.meaning, measure.direction)


def is_detail(name: str) -> bool:
    """Per-class and per-dimension entries and evaluation settings: shown in detail tables only."""
    found = entry(name)
    return found is not None and found[1].detail


def check_measure(name: str, groups: list[str] | tuple[str, ...]) -> str | None:
    """Why ``name`` cannot be a measure of a study measuring ``groups`` (None if it can)."""
    found = entry(name)
    if found is None:
        close = difflib.get_close_matches(name, list(MEASURE_INFO), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"unknown measure {name!r}: {hint}`vaelab measures` lists them"
    if found[0].name not in groups:
        return (f"{name!r} is measured by the {found[0].name!r} group, which the study's measures "
                f"({', '.join(groups)}) leave out")
    return None
