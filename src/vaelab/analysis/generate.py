"""Generations: from the prior, from the ex-post density, from class centroids, and from perturbed codes."""

from __future__ import annotations

import numpy as np
import torch

from vaelab.analysis.expost import ExPost
from vaelab.models.base import INFERENCE_BATCH
from vaelab.seeding import torch_generator


@torch.no_grad()
def prior_draws(model, n: int, seed: int) -> torch.Tensor:
    """``n`` draws from the model's prior on the stream ``(seed, "prior", latent)``, on the CPU.

    Every model with the N(0, I) prior and the same latent size decodes the same draws;
    a learned prior draws from itself on the same stream.
    """
    return model.sample_prior(n, torch_generator(seed, "prior", model.config.latent)).cpu()


def class_centroids(codes: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The mean code of each class, in class order (K, d)."""
    return np.stack([codes[labels == k].mean(0) for k in np.unique(labels)])


@torch.no_grad()
def decode(model, z: torch.Tensor | np.ndarray, labels=None, batch: int = INFERENCE_BATCH) -> np.ndarray:
    """Decoded images in [0, 1] for codes ``z`` (decoded on the model's device): (N, H, W) for grey images,
    (N, C, H, W) for colour.

    ``labels`` (N,): the classes a conditional model (the CVAE) decodes with; others ignore them.
    """
    z = torch.as_tensor(np.asarray(z, dtype=np.float32)).to(model.device)
    labels = torch.as_tensor(np.asarray(labels, dtype=np.int64)) if labels is not None else None
    model.eval()
    out = [model.decode_images(z[start:start + batch], labels[start:start + batch] if labels is not None else None)
           .cpu() for start in range(0, len(z), batch)]
    images = torch.cat(out)
    return (images[:, 0] if images.shape[1] == 1 else images).numpy()


def cycled_labels(n: int, n_classes: int) -> np.ndarray:
    """0, 1, ..., K-1, 0, 1, ...: the classes a conditional model generates prior draws for, evenly."""
    return np.arange(n) % n_classes


def perturb(codes: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """Codes plus Gaussian noise of ``sigma`` times each dimension's spread over the data.

    Scaling by the per-dimension standard deviation makes the sweep comparable
    between models whose codes live on different scales (an AE's codes are not
    tied to N(0, I)).
    """
    scale = codes.std(axis=0, keepdims=True)
    noise = torch.randn(codes.shape, generator=torch_generator(seed, "perturb", sigma), dtype=torch.float64).numpy()
    return (codes + sigma * scale * noise).astype(np.float32)


@torch.no_grad()
def traversals(model, code: np.ndarray, codes: np.ndarray, label: int | None = None, dims: int = 5,
               steps: int = 9) -> tuple[np.ndarray, np.ndarray]:
    """Latent traversals: one dimension at a time swept while the others keep ``code``'s values.

    Each dimension j goes over its mean ± 3 standard deviations across ``codes`` (the test
    codes: comparable between models whatever their scale) in ``steps`` steps. The ``dims``
    dimensions whose means vary most over the data go first (the active units' criterion,
    Burda et al. 2016). Returns ``(images (dims, steps, H, W), the dimensions shown)``.
    """
    codes = np.asarray(codes, dtype=np.float64)
    centre, spread = codes.mean(0), codes.std(0)
    shown = np.argsort(-codes.var(0), kind="stable")[:dims]
    rows = []
    for j in shown:
        z = np.repeat(np.asarray(code, dtype=np.float64)[None], steps, axis=0)
        z[:, j] = centre[j] + np.linspace(-3.0, 3.0, steps) * spread[j]
        rows.append(decode(model, z, np.full(steps, label) if label is not None else None))
    return np.stack(rows), shown.astype(np.int64)


N_SHOWN = 10  # test images shown per row in the figures
# The attributes whose directions the report decodes, where a data set has them (CelebA's names); otherwise its
# first four. Steps along a direction: 0 is the face's own code, 1 adds the whole mean difference.
SHOWN_ATTRIBUTES = ("Smiling", "Male", "Eyeglasses", "Blond_Hair")
DIRECTION_STEPS = (-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0)
N_PRIOR = 12  # prior draws shown per model
N_PER_CLUSTER = 8  # draws shown per cluster or class


@torch.no_grad()
def per_cluster_draws(model, seed: int, n: int = N_PER_CLUSTER) -> np.ndarray | None:
    """Generation per cluster or class, (K, n, H, W): draws from each component of a mixture prior
    (GMVAE, VaDE), or the same prior draws decoded with each label (the CVAE); None for other models."""
    if model.conditional:
        z = prior_draws(model, n, seed)
        return np.stack([decode(model, z, np.full(n, c)) for c in range(model.n_classes)])
    prior = model.prior
    if not hasattr(prior, "responsibilities"):
        return None
    eps = torch.randn((prior.components, n, model.config.latent), generator=torch_generator(seed, "per-cluster"))
    means, logvars = prior.means.detach().float().cpu(), prior.logvars.detach().float().cpu()
    z = means.unsqueeze(1) + torch.exp(0.5 * logvars).unsqueeze(1) * eps
    return np.stack([decode(model, z[c]) for c in range(prior.components)])


@torch.no_grad()
def attribute_walks(model, codes: np.ndarray, attributes: np.ndarray, names: list[str],
                    labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """"Add a smile": for each shown attribute (:data:`SHOWN_ATTRIBUTES` where the data set has them), the first test
    face without it, decoded from its code plus each of :data:`DIRECTION_STEPS` times the attribute's direction
    (:func:`~vaelab.analysis.measures.attribute_directions` over the test codes). Returns ``(images (A, steps, …),
    the attributes' names)``; attributes every face has, or none has, are skipped."""
    from vaelab.analysis.measures import attribute_directions

    wanted = [n for n in SHOWN_ATTRIBUTES if n in names] or list(names[:len(SHOWN_ATTRIBUTES)])
    directions = attribute_directions(codes, attributes)
    rows, shown = [], []
    for name in wanted:
        k = names.index(name)
        without = np.flatnonzero(attributes[:, k] == 0)
        if not len(without) or not directions[k].any():
            continue
        face = without[0]
        z = codes[face][None].astype(np.float64) + np.asarray(DIRECTION_STEPS)[:, None] * directions[k][None]
        face_labels = np.full(len(z), labels[face]) if labels is not None else None
        rows.append(decode(model, z, face_labels))
        shown.append(name)
    return (np.stack(rows) if rows else np.zeros((0, len(DIRECTION_STEPS)))), np.asarray(shown, dtype=str)


def figure_grids(model, test_images: np.ndarray, codes: np.ndarray, labels: np.ndarray, seed: int,
                 sigmas: tuple[float, ...], class_names: list[str],
                 expost: ExPost | None = None, attributes: tuple[np.ndarray, list[str]] | None = None
                 ) -> dict[str, np.ndarray]:
    """What the report's image figures show for one run, decoded once so that the report only reads.

    ``originals``/``reconstructions``: the first test images and their decodings;
    ``centroids``: decoded class centroids (class order); ``prior``: the shared prior
    draws (the same for every model with this latent size and seed); ``perturbed``:
    (len(sigmas), N_SHOWN, H, W) decoded codes plus noise; ``silhouettes``: each test
    code's silhouette (sklearn), for the per-class plots; ``class_names`` in label order;
    ``per_cluster`` (models with clusters or labels only): :func:`per_cluster_draws`;
    ``traversal``/``traversal_dims``: :func:`traversals` from the first test image's code;
    ``expost`` (where the ex-post density was fitted): as many of its draws as ``prior``, decoded;
    ``attribute_walks``/``attribute_shown``/``attribute_steps`` (data with binary attributes, given as ``(test
    attributes, names)``): :func:`attribute_walks` and its :data:`DIRECTION_STEPS`.
    """
    from sklearn.metrics import silhouette_samples

    traversal, traversal_dims = traversals(model, codes[0], codes, int(labels[0]))
    shown, shown_labels = codes[:N_SHOWN], labels[:N_SHOWN]
    return {
        "originals": test_images[:N_SHOWN].astype(np.float32) / 255.0,
        "reconstructions": decode(model, shown, shown_labels),
        "centroids": decode(model, class_centroids(codes, labels), np.unique(labels)),
        "prior": decode(model, prior_draws(model, N_PRIOR, seed), cycled_labels(N_PRIOR, len(class_names))),
        "sigmas": np.asarray(sigmas, dtype=np.float64),
        "perturbed": np.stack([decode(model, perturb(codes, sigma, seed)[:N_SHOWN], shown_labels)
                               for sigma in sigmas]),
        "silhouettes": silhouette_samples(codes.astype(np.float64), labels),
        "class_names": np.asarray(class_names, dtype=str),
        "traversal": traversal,
        "traversal_dims": traversal_dims,
        **({"per_cluster": clusters} if (clusters := per_cluster_draws(model, seed)) is not None else {}),
        **({"expost": decode(model, expost.sample(N_PRIOR, seed), cycled_labels(N_PRIOR, len(class_names)))}
           if expost is not None else {}),
        **(dict(zip(("attribute_walks", "attribute_shown"), attribute_walks(model, codes, *attributes, labels)),
                attribute_steps=np.asarray(DIRECTION_STEPS)) if attributes is not None else {}),
    }
