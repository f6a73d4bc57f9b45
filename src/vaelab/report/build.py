"""Draw the figures and write ``report.html`` and ``report.md`` from a study folder.

Needs only what :func:`vaelab.experiments.thesis.reproduce` saved (results,
codes, maps, run directories), so ``vaelab report DIR`` redraws without
training.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import silhouette_samples

from vaelab.analysis import generate
from vaelab.analysis.encode import Codes
from vaelab.analysis.compare import comparison_rows, fmt, fmt_ci
from vaelab.data.registry import load_dataset
from vaelab.experiments.thesis import MODELS, StudyPaths, load_results
from vaelab.io import atomic_write
from vaelab.report import figures
from vaelab.training.trainer import load_run

N_SHOWN = 10


def draw_figures(root: Path, results: dict) -> dict[str, Path]:
    """Draw every figure of the study into ``root/figures``; return name -> path."""
    paths = StudyPaths(root)
    study = results["study"]
    seed = study["seeds"][0]
    data = load_dataset(study["dataset"], data_dir=_data_dir(study), seed=seed)
    names = data.class_names
    runs = {key: load_run(paths.run(key, seed)) for key in study["models"]}
    models = {key: run.model for key, run in runs.items()}
    codes = {key: Codes.load(paths.codes(key, seed)) for key in study["models"]}
    label = {key: MODELS.get(key, key) for key in study["models"]}
    out = paths.figures
    drawn: dict[str, Path] = {}

    # 1. reconstructions of the first test images
    first = data.test_images[:N_SHOWN].astype(np.float32) / 255.0
    rows = {"original": first}
    rows.update({label[k]: generate.decode(m, codes[k].mean[:N_SHOWN]) for k, m in models.items()})
    drawn["reconstructions"] = figures.image_rows(rows, out / "reconstructions.png",
                                                  "Experiment 1: first test images and their reconstructions")
    # 2. class centroids
    rows = {label[k]: generate.decode(m, generate.class_centroids(codes[k].mean, codes[k].labels))
            for k, m in models.items()}
    drawn["centroids"] = figures.image_rows(rows, out / "centroids.png",
                                            "Experiment 2: decoded class centroids of the test codes", names)
    # 3./4. the same prior draws through every decoder
    z = generate.prior_draws(12, models["vae"].config.latent, seed)
    drawn["prior"] = figures.image_rows({label[k]: generate.decode(models[k], z) for k in ("ae", "vae")},
                                        out / "prior.png", "Experiment 3: the same N(0, I) draws, AE vs VAE decoder")
    drawn["improved"] = figures.image_rows({label[k]: generate.decode(models[k], z) for k in ("vae", "conv-vae")},
                                           out / "improved.png", "Experiment 4: the same N(0, I) draws, MLP vs conv VAE")
    # 5. t-SNE maps
    maps = {}
    for key in study["models"]:
        with np.load(paths.map(key, seed)) as saved:
            maps[label[key]] = (saved["tsne"], codes[key].labels[saved["index"]])
    drawn["tsne"] = figures.latent_maps(maps, names, out / "tsne.png",
                                        "Experiment 5: t-SNE of the test codes (posterior means for VAEs)")
    # 6. silhouettes
    sil = {label[k]: (silhouette_samples(codes[k].mean.astype(np.float64), codes[k].labels), codes[k].labels,
                      results["per_seed"][k][str(seed)]["silhouette"]) for k in study["models"]}
    drawn["silhouette"] = figures.silhouette_plots(sil, names, out / "silhouette.png",
                                                   "Experiment 6: per-class silhouettes of the test codes")
    # 7. perturbation: images and curve
    sigmas = study["evaluation"]["sigmas"]
    rows = {}
    for key in ("ae", "vae"):
        for sigma in sigmas:
            noisy = generate.perturb(codes[key].mean, sigma, seed)[:N_SHOWN]
            rows[f"{key.upper()} σ={sigma:g}"] = generate.decode(models[key], noisy)
    drawn["perturbation"] = figures.image_rows(rows, out / "perturbation.png",
                                               "Experiment 7: test codes + noise (σ × each dimension's spread)")
    series = {}
    for key in study["models"]:
        cells = [results["aggregate"][key][f"perturb_accuracy_s{s:g}"] for s in sigmas]
        series[label[key]] = (np.array(sigmas), np.array([c["mean"] for c in cells]),
                              np.array([c["ci"] or 0.0 for c in cells]))
    drawn["perturbation_curve"] = figures.curves(series, out / "perturbation_curve.png",
                                                 "Experiment 7: how long decoded codes stay recognisable",
                                                 "noise σ (× per-dimension spread)", "classifier accuracy")
    # 8 and overview: key measures with CIs
    keys = ["silhouette", "knn5_accuracy", "linear_probe_accuracy", "kmeans_nmi", "tsne_trustworthiness"]
    series = {label[k]: (np.array([results["aggregate"][k][m]["mean"] for m in keys]),
                         np.array([results["aggregate"][k][m]["ci"] or 0.0 for m in keys])) for k in study["models"]}
    drawn["measures"] = figures.bars(keys, series, out / "measures.png", "Latent-space measures (mean, 95% CI)")
    # training curves of the first seed
    curves = {}
    for key in study["models"]:
        history = runs[key].history
        x = np.array([row["epoch"] for row in history], dtype=float)
        curves[label[key]] = (x, np.array([row["test_recon"] for row in history]), np.zeros(len(x)))
    drawn["training"] = figures.curves(curves, out / "training.png", "Test reconstruction BCE per epoch (first seed)",
                                       "epoch", "BCE (nats per image)")
    return drawn


def _data_dir(study: dict):
    first = next(iter(study["models"].values()))
    return first["config"]["data"].get("data_dir")


def render(results: dict, images: dict[str, str]) -> tuple[str, str]:
    """The HTML and Markdown reports (images given as src strings: data URIs or paths)."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("vaelab", "report/templates"),
                      autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = fmt
    env.filters["fmt_ci"] = fmt_ci
    context = {
        "r": results,
        "models": list(results["study"]["models"]),
        "labels": {k: MODELS.get(k, k) for k in results["study"]["models"]},
        "rows": comparison_rows(results["aggregate"], detail=False),
        "detail_rows": comparison_rows(results["aggregate"], detail=True),
        "images": images,
    }
    return env.get_template("report.html.j2").render(**context), env.get_template("report.md.j2").render(**context)


def build_report(root: str | Path) -> dict[str, float]:
    """Draw figures and write ``report.html`` (self-contained) and ``report.md``; return stage timings."""
    root = Path(root)
    results = load_results(root)
    started = time.perf_counter()
    drawn = draw_figures(root, results)
    figures_seconds = time.perf_counter() - started
    started = time.perf_counter()
    embedded = {name: "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
                for name, path in drawn.items()}
    relative = {name: f"figures/{path.name}" for name, path in drawn.items()}
    html, _ = render(results, embedded)
    _, markdown = render(results, relative)
    atomic_write(root / "report.html", html)
    atomic_write(root / "report.md", markdown)
    return {"figures": figures_seconds, "report": time.perf_counter() - started}
