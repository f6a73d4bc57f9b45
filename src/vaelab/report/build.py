"""Draw the figures and write ``report.html`` and ``report.md`` from a study folder.

Reads only what the study saved: ``results.json`` and, for each model, the run
directory of its first finished seed (``grids.npz`` with the decoded images,
``map.npz``, ``codes.npz``, ``metrics.jsonl``). Nothing is trained, loaded
into a model or decoded again, so ``vaelab report DIR`` is quick; the data set is
read again only for the images the interactive t-SNE maps show on hover. Any models
and data sets: a section per data set; parts a study switches on (``panels``,
e.g. the thesis's) add to it.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

import numpy as np

from vaelab.analysis.compare import comparison_rows, fmt, fmt_ci, references_for
from vaelab.analysis.generate import DIRECTION_STEPS
from vaelab.analysis.registry import BAR_MEASURES
from vaelab.config import ModelConfig
from vaelab.data.registry import check_same_data, load_dataset
from vaelab.errors import VaelabError
from vaelab.io import atomic_write
from vaelab.pixels import data_uri
from vaelab.records import (CELL_FILES, CODES_NPZ, FIGURES, GRIDS_NPZ, MAP_NPZ, REPORT_HTML, REPORT_MD, load_results,
                            read_metrics, read_model_json, read_npz)
from vaelab.report import figures


def _first_finished(part: dict, model: str, seeds: list[int]) -> str | None:
    """The first seed (study order) with measures for ``model``: the one the figures show."""
    for seed in seeds:
        if str(seed) in part["per_seed"][model]:
            return str(seed)
    return None


def draw_dataset_figures(root: Path, results: dict, dataset: str, out: Path) -> dict[str, Path]:
    """The figures of one data set's section into ``out``; return name -> path (absent parts are skipped)."""
    study, part = results["study"], results["datasets"][dataset]
    shown = {}
    for model in study["models"]:
        seed = _first_finished(part, model, study["seeds"])
        if seed is not None:
            shown[model] = (seed, root / part["runs"][model][seed])
    if not shown:
        return {}
    label = {key: study["models"][key]["label"] for key in shown}
    grids = {key: read_npz(run / GRIDS_NPZ) for key, (_, run) in shown.items()}
    first = next(iter(grids.values()))
    names = [str(name) for name in first["class_names"]]
    drawn: dict[str, Path] = {}

    rows = {"original": first["originals"], **{label[k]: g["reconstructions"] for k, g in grids.items()}}
    drawn["reconstructions"] = figures.image_rows(rows, out / "reconstructions.png",
                                                  "First test images and their reconstructions")
    drawn["centroids"] = figures.image_rows({label[k]: g["centroids"] for k, g in grids.items()},
                                            out / "centroids.png", "Decoded class centroids of the test codes", names)
    drawn["prior"] = figures.image_rows(_generation_rows(grids, label), out / "prior.png", _generation_title(grids))
    clustered = {f"{label[k]}: {c}": images for k, g in grids.items() if "per_cluster" in g
                 for c, images in enumerate(g["per_cluster"])}
    if clustered:
        drawn["per_cluster"] = figures.image_rows(clustered, out / "per_cluster.png",
                                                  "Generation per cluster (mixture priors) or per label (CVAE)")
    if all("traversal" in g for g in grids.values()):  # cells evaluated before traversals were drawn lack them
        rows = {f"{label[k]}: z{int(j)}": images for k, g in grids.items()
                for j, images in zip(g["traversal_dims"], g["traversal"])}
        drawn["traversal"] = figures.image_rows(rows, out / "traversal.png",
                                                "Latent traversals: one dimension swept over its mean ± 3 sd, "
                                                "the others fixed at the first test image's code")
    walked = {k: g for k, g in grids.items() if "attribute_walks" in g}
    walks = {f"{label[k]}: + {name.replace('_', ' ')}": images for k, g in walked.items()
             for name, images in zip(g["attribute_shown"], g["attribute_walks"])}
    if walks:
        # the steps the walks were drawn at; grids saved before they were recorded were drawn at DIRECTION_STEPS
        steps = next(iter(walked.values())).get("attribute_steps", DIRECTION_STEPS)
        drawn["attribute_walks"] = figures.image_rows(
            walks, out / "attribute_walks.png", "Attribute directions (mean test code with it minus without) added to "
            "a test face without it, times the step above (0: the face's own code)", [f"{t:+g}" for t in steps])
    attribute_names = sorted({m[len("attribute_auc_"):] for k in shown for m in part["aggregate"][k]
                              if m.startswith("attribute_auc_")})
    if attribute_names:
        table = np.array([[part["aggregate"][k].get(f"attribute_auc_{n}", {}).get("mean", np.nan) for k in shown]
                          for n in attribute_names], dtype=float)
        drawn["attributes"] = figures.heatmap(table, attribute_names, [label[k] for k in shown],
                                              out / "attributes.png", "Linear-probe ROC AUC of each attribute from "
                                              "the test codes (mean over seeds; 0.5 is chance)")
    maps = {}
    for key, (_, run) in shown.items():
        saved, codes = read_npz(run / MAP_NPZ), read_npz(run / CODES_NPZ)
        if len(saved["tsne"]):
            maps[label[key]] = (saved["tsne"], codes["labels"][saved["index"]])
    if maps:  # studies without the map group have empty maps
        drawn["tsne"] = figures.latent_maps(maps, names, out / "tsne.png",
                                            "t-SNE of the test codes (posterior means for VAEs)")
    silhouettes = {label[k]: (g["silhouettes"], read_npz(shown[k][1] / CODES_NPZ)["labels"],
                              float(np.mean(g["silhouettes"]))) for k, g in grids.items()}
    drawn["silhouette"] = figures.silhouette_plots(silhouettes, names, out / "silhouette.png",
                                                   "Per-class silhouettes of the test codes")
    rows = {}
    for key, g in grids.items():
        for sigma, images in zip(g["sigmas"], g["perturbed"]):
            rows[f"{label[key]} σ={sigma:g}"] = images
    drawn["perturbation"] = figures.image_rows(rows, out / "perturbation.png",
                                               "Test codes + noise (σ × each dimension's spread), decoded")
    sigmas = study["evaluation"]["sigmas"]
    series = {}
    for key in shown:
        cells = [part["aggregate"][key].get(f"perturb_accuracy_s{s:g}") for s in sigmas]
        if all(cells):
            series[label[key]] = (np.array(sigmas), np.array([c["mean"] for c in cells]),
                                  np.array([c["ci"] or 0.0 for c in cells]))
    if series:
        drawn["perturbation_curve"] = figures.curves(series, out / "perturbation_curve.png",
                                                     "How long decoded codes stay recognisable",
                                                     "noise σ (× per-dimension spread)", "classifier accuracy")
    keys = [m for m in BAR_MEASURES if all(m in part["aggregate"][k] for k in shown)]
    if keys:
        bars = {label[k]: (np.array([part["aggregate"][k][m]["mean"] for m in keys]),
                           np.array([part["aggregate"][k][m]["ci"] or 0.0 for m in keys])) for k in shown}
        drawn["measures"] = figures.bars(keys, bars, out / "measures.png", "Latent-space measures (mean, 95% CI)")
    curves = {}
    for key, (_, run) in shown.items():
        history = [row for row in read_metrics(run) if "test_recon" in row]
        x = np.array([row["epoch"] for row in history], dtype=float)
        curves[label[key]] = (x, np.array([row["test_recon"] for row in history]), np.zeros(len(x)))
    drawn["training"] = figures.curves(curves, out / "training.png", "Test reconstruction BCE per epoch (first seed)",
                                       "epoch", "BCE (nats per image)")
    return drawn


def _generation_rows(grids: dict[str, dict], label: dict[str, str]) -> dict[str, np.ndarray]:
    """Each model's decoded prior draws and, where its ex-post density was fitted, its ex-post draws below."""
    if not any("expost" in g for g in grids.values()):
        return {label[k]: g["prior"] for k, g in grids.items()}
    rows = {}
    for key, g in grids.items():
        rows[f"{label[key]}: prior"] = g["prior"]
        if "expost" in g:
            rows[f"{label[key]}: ex-post"] = g["expost"]
    return rows


def _generation_title(grids: dict[str, dict]) -> str:
    title = "Decoded prior draws (the same N(0, I) draws for models of one latent size)"
    if any("expost" in g for g in grids.values()):
        title += " and draws from each model's ex-post density (a GMM on its training codes)"
    return title


def interactive_map(root: Path, results: dict, dataset: str) -> dict | None:
    """What the report's interactive t-SNE view of one data set needs: each model's map (first finished
    seed), the points' classes, and the mapped test images as PNG data URIs for the hover.

    The images come from reading the data set again (as its runs recorded it); where it cannot be read
    or has changed since, the view has no images rather than wrong ones. None where no run has a map.
    """
    study, part = results["study"], results["datasets"][dataset]
    models, shown_index = [], set()
    for model in study["models"]:
        seed = _first_finished(part, model, study["seeds"])
        if seed is None:
            continue
        run = root / part["runs"][model][seed]
        saved, labels = read_npz(run / MAP_NPZ), read_npz(run / CODES_NPZ)["labels"]
        if not len(saved["tsne"]):
            continue
        index = saved["index"].astype(int)
        shown_index.update(index.tolist())
        models.append({"label": study["models"][model]["label"], "run": run, "index": index.tolist(),
                       "x": np.round(saved["tsne"][:, 0], 2).tolist(), "y": np.round(saved["tsne"][:, 1], 2).tolist(),
                       "classes": labels[index].astype(int).tolist()})
    if not models:
        return None
    images: dict[str, str] = {}
    try:
        data = _recorded_data(models[0]["run"])
        images = {str(i): data_uri(data.test_images[i] / 255.0) for i in sorted(shown_index)}
    except (VaelabError, IndexError):
        pass
    first = read_npz(models[0]["run"] / GRIDS_NPZ)
    for model in models:
        del model["run"]
    return {"models": models, "class_names": [str(n) for n in first["class_names"]], "images": images}


def _recorded_data(run: Path):
    """The data set a run was trained on, read again; refused (RunError) where it has changed since."""
    info = read_model_json(run)
    config = info["config"].data
    data = load_dataset(config.name, data_dir=config.data_dir, holdout=config.holdout, download=False,
                        seed=info["config"].train.seed, protocol=config.protocol)
    check_same_data(info["dataset"], data, run)
    return data


def plotly_script() -> str | None:
    """plotly.js from the installed plotly package, to inline (the report opens offline); None without it."""
    try:
        import plotly
    except ImportError:
        return None
    return (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_text(encoding="utf-8")


def check_inputs(root: Path, results: dict) -> None:
    """Read every file the figures need; a missing or damaged one is a one-line :class:`RunError`."""
    study = results["study"]
    for dataset, part in results["datasets"].items():
        for model in study["models"]:
            seed = _first_finished(part, model, study["seeds"])
            if seed is not None:
                for name in CELL_FILES:
                    read_npz(root / part["runs"][model][seed] / name)


def _slug(dataset: str, results: dict) -> str:
    """The data set's folder name, as its runs use it (``runs/<slug>/...``)."""
    runs = results["datasets"][dataset]["runs"]
    for seeds in runs.values():
        for path in seeds.values():
            return Path(path).parent.name
    return dataset.replace(":", "-").replace("/", "_")


def render(results: dict, images: dict[str, dict[str, str]], maps: dict[str, dict | None] | None = None,
           plotly_js: str | None = None) -> tuple[str, str]:
    """The HTML and Markdown reports (images per data set as src strings: data URIs or paths; ``maps``:
    each data set's :func:`interactive_map`, drawn with ``plotly_js`` inlined where both are given)."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("vaelab", "report/templates"),
                      autoescape=select_autoescape(["html", "html.j2"]), trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = fmt
    env.filters["fmt_ci"] = fmt_ci
    study = results["study"]
    sections = []
    for dataset, part in results["datasets"].items():
        sections.append({
            "name": dataset,
            "anchor": "ds-" + _slug(dataset, results),
            "part": part,
            "rows": comparison_rows(part["aggregate"], detail=False),
            "detail_rows": comparison_rows(part["aggregate"], detail=True),
            "images": images.get(dataset, {}),
            "references": references_for(study, dataset, part),
            "interactive": (maps or {}).get(dataset) if plotly_js else None,
        })
    context = {
        "r": results,
        "study": study,
        "models": list(study["models"]),
        "labels": {k: v["label"] for k, v in study["models"].items()},
        # each model's own settings, said by the model (a results.json of any version: read as a run config)
        "notes": {k: ModelConfig(**v["model"]).settings_note() for k, v in study["models"].items()},
        "sections": sections,
        "plotly_js": plotly_js if any(section["interactive"] for section in sections) else None,
        "thesis": "thesis" in study.get("panels", []),
        # models trained on grey levels: their likelihoods on binarised images are not the literature's
        "grey": [v["label"] for v in study["models"].values() if not v.get("data", {}).get("binarize")],
    }
    return env.get_template("report.html.j2").render(**context), env.get_template("report.md.j2").render(**context)


def build_report(root: str | Path) -> dict[str, float]:
    """Draw figures and write ``report.html`` (self-contained) and ``report.md``; return stage timings."""
    root = Path(root)
    results = load_results(root)
    check_inputs(root, results)  # every file is read before any figure is redrawn: all or nothing
    started = time.perf_counter()
    drawn = {dataset: draw_dataset_figures(root, results, dataset, root / FIGURES / _slug(dataset, results))
             for dataset in results["datasets"]}
    figures_seconds = time.perf_counter() - started
    started = time.perf_counter()
    embedded = {dataset: {name: "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
                          for name, path in paths.items()} for dataset, paths in drawn.items()}
    relative = {dataset: {name: path.relative_to(root).as_posix() for name, path in paths.items()}
                for dataset, paths in drawn.items()}
    maps = {dataset: interactive_map(root, results, dataset) for dataset in results["datasets"]}
    html, _ = render(results, embedded, maps, plotly_script())
    _, markdown = render(results, relative)
    atomic_write(root / REPORT_HTML, html)
    atomic_write(root / REPORT_MD, markdown)
    return {"figures": figures_seconds, "report": time.perf_counter() - started}
