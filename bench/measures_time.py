"""Time of each latent-space measure on 10,000 codes, with two side-by-side comparisons.

Codes: a VAE (hidden 512, latent 16) trained briefly on mnist-5k encodes 10,000
real test digits (the MNIST test split from ../shared where present, else
Fashion-MNIST's from Debian, else mnist-5k repeated). Ratios printed:

- t-SNE: openTSNE (vaelab's choice) against scikit-learn's TSNE on the same codes;
- Fréchet distance: vaelab's eigen-decomposition form against scipy's sqrtm form.

Run: ``.venv/bin/python bench/measures_time.py [--skip-sklearn-tsne]``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from vaelab.analysis import likelihood, measures
from vaelab.analysis.embed import tsne_map
from vaelab.analysis.encode import encode_images
from vaelab.api import make_config
from vaelab.data.registry import load_dataset, to_tensor
from vaelab.training.trainer import fit

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def ten_thousand_images():
    if SHARED_MNIST.is_dir():
        data = load_dataset(f"idx:{SHARED_MNIST}", holdout=0.2)
        return "MNIST test split (../shared)", np.concatenate([data.train_images, data.test_images]), \
            np.concatenate([data.train_labels, data.test_labels])
    try:
        data = load_dataset("fashion-mnist", download=False)
        return "Fashion-MNIST test split", data.test_images, data.test_labels
    except Exception:  # noqa: BLE001 - any absence falls back to the embedded digits
        data = load_dataset("mnist-5k")
        images = np.concatenate([data.train_images, data.test_images] * 2)
        labels = np.concatenate([data.train_labels, data.test_labels] * 2)
        return "mnist-5k twice", images, labels


def timed(label: str, fn, rows: list):
    started = time.perf_counter()
    value = fn()
    seconds = time.perf_counter() - started
    rows.append((label, seconds))
    print(f"{label:<44}{seconds:>9.3f}", flush=True)
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-sklearn-tsne", action="store_true", help="skip the slow scikit-learn t-SNE")
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        run = fit(make_config("vae", epochs=5), Path(tmp) / "vae", progress=False)
    source, images, labels = ten_thousand_images()
    mean, logvar = encode_images(run.model, to_tensor(images))
    train = load_dataset("mnist-5k")
    train_mean, _ = encode_images(run.model, to_tensor(train.train_images))
    codes = mean.astype(np.float64)
    print(f"{len(codes)} codes of {codes.shape[1]} dims from {source}; reference set {len(train_mean)} train codes")
    print(f"{'measure':<44}{'seconds':>9}")
    rows: list = []
    timed("silhouette (overall + per class)", lambda: measures.silhouette(codes, labels), rows)
    timed("davies_bouldin", lambda: measures.davies_bouldin(codes, labels), rows)
    timed("calinski_harabasz", lambda: measures.calinski_harabasz(codes, labels), rows)
    timed("knn accuracy (k=5, 10)", lambda: measures.knn_accuracy(train_mean, train.train_labels, mean, labels), rows)
    timed("linear probe", lambda: measures.linear_probe(train_mean, train.train_labels, mean, labels), rows)
    timed("clustering (k-means + GMM: NMI, ARI, acc)", lambda: measures.clustering(codes, labels), rows)
    embedding = timed("t-SNE map, openTSNE (all 10,000)", lambda: tsne_map(codes, 0), rows)
    timed("trustworthiness (2,000 subsample)", lambda: measures.map_trustworthiness(codes, embedding), rows)
    timed("active units", lambda: measures.active_units(mean), rows)
    timed("KL per dimension", lambda: measures.kl_per_dimension(mean, logvar), rows)
    timed("reconstruction BCE/MSE", lambda: likelihood.reconstruction_errors(run.model, to_tensor(images)), rows)
    timed("ELBO + IWAE k=1000 on 100 images", lambda: likelihood.likelihood_measures(
        run.model, to_tensor(images), 0, k=1000, max_examples=100), rows)
    rng = np.random.default_rng(0)
    feats_a = np.maximum(rng.normal(size=(10000, 128)), 0)
    feats_b = np.maximum(rng.normal(size=(10000, 128)) + 0.1, 0)
    eig = timed("Fréchet distance, 128-d features (vaelab)", lambda: measures.frechet_distance(feats_a, feats_b), rows)

    def scipy_fd():
        from scipy import linalg

        ca, cb = np.cov(feats_a, rowvar=False), np.cov(feats_b, rowvar=False)
        return (((feats_a.mean(0) - feats_b.mean(0)) ** 2).sum() + np.trace(ca) + np.trace(cb)
                - 2 * np.trace(np.real(linalg.sqrtm(ca @ cb))))

    ref = timed("Fréchet distance, scipy sqrtm form", scipy_fd, rows)
    times = dict(rows)
    print(f"FD values agree: {eig:.6f} vs {ref:.6f}; time ratio vaelab/scipy = "
          f"{times['Fréchet distance, 128-d features (vaelab)'] / times['Fréchet distance, scipy sqrtm form']:.3f}")
    if not args.skip_sklearn_tsne:
        from sklearn.manifold import TSNE

        timed("t-SNE map, scikit-learn (all 10,000)", lambda: TSNE(init="pca", random_state=0).fit_transform(codes),
              rows)
        times = dict(rows)
        print(f"t-SNE time ratio openTSNE/scikit-learn = "
              f"{times['t-SNE map, openTSNE (all 10,000)'] / times['t-SNE map, scikit-learn (all 10,000)']:.3f}")


if __name__ == "__main__":
    main()
