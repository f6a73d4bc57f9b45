"""What the explorer knows and does, without any web server: trained models loaded from their run
folders, the test images they share, their codes and 2-D maps, and every decoding the page asks for.

Each public method validates its input and raises :class:`BadRequest` (the server's 400) with a
message naming the problem; the server only turns JSON into calls. Nothing here writes a file:
run folders are only read.
"""

from __future__ import annotations

import importlib.util
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vaelab import bundle, records
from vaelab.analysis.encode import encode_images
from vaelab.analysis.expost import ExPost, load_expost
from vaelab.analysis.generate import DIRECTION_STEPS, class_centroids, cycled_labels, decode, prior_draws
from vaelab.analysis.measures import attribute_directions
from vaelab.analysis.registry import HEADLINE, describe
from vaelab.data.dataset import to_tensor
from vaelab.errors import RunError
from vaelab.io import is_finite_number
from vaelab.pixels import data_uri
from vaelab.seeding import torch_generator
from vaelab.training.trainer import load_run

MAX_POINTS = 2000  # test images on the map: enough to see the classes, few enough for a fluid page
MAX_IMAGES = 64  # images one request may ask for


class BadRequest(ValueError):
    """A request the explorer cannot answer as asked; its message says what to send instead."""


@dataclass
class Model:
    """One trained model as the explorer holds it."""

    key: str
    label: str
    run_dir: Path
    model: Any  # vaelab.models.registry.LatentModel, on the CPU, in eval mode
    codes: np.ndarray  # posterior means of the shown test images (n, d), float64
    measures: dict[str, float]
    tsne: np.ndarray | None  # the saved t-SNE map of the shown images (n, 2), if the run has one
    expost: ExPost | None  # the ex-post density its evaluation fitted, if any
    pca_mean: np.ndarray = field(init=False)
    pca_axes: np.ndarray = field(init=False)  # (2, d): unit principal directions
    pca: np.ndarray = field(init=False)  # (n, 2): the codes' coordinates on them
    order: list[int] = field(init=False)  # latent dimensions, most used first
    order_by: str = field(init=False)
    spread: np.ndarray = field(init=False)  # each dimension's standard deviation over the shown codes

    def __post_init__(self) -> None:
        self.pca_mean = self.codes.mean(0)
        centred = self.codes - self.pca_mean
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        axes = vt[:2] if len(vt) >= 2 else np.vstack([vt, np.zeros_like(vt)])
        scores = centred @ axes.T
        # an SVD's signs are arbitrary: fix each so that the coordinates' skew is positive, for a stable picture
        skew = np.sign(np.sum(scores ** 3, axis=0))
        skew[skew == 0] = 1
        self.pca_axes, self.pca = axes * skew[:, None], scores * skew
        self.spread = self.codes.std(0)
        kl = [self.measures.get(f"kl_dim_{j}") for j in range(self.codes.shape[1])]
        if all(isinstance(v, (int, float)) for v in kl):
            score, self.order_by = np.asarray(kl, dtype=float), "KL"
        else:
            score, self.order_by = self.spread ** 2, "variance"
        self.order = [int(j) for j in np.argsort(-score, kind="stable")]

    @property
    def latent(self) -> int:
        """The latent size."""
        return int(self.codes.shape[1])


def _measures(run_dir: Path) -> dict[str, float]:
    """The run's ``measures.json`` (``{}`` where it is missing or unreadable: the explorer opens without it)."""
    try:
        saved = records.read_measures(run_dir) or {}
    except (RunError, OSError):
        return {}
    # A damaged value (text, NaN, infinity, an integer no float holds) is shown as missing, not served
    return {k: float(v) for k, v in saved.get("measures", {}).items() if is_finite_number(v)}


def _saved_tsne(run_dir: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """``(index, tsne)`` from the run's ``map.npz``, or None where it has none (or an empty or damaged one)."""
    try:
        saved = records.read_npz(run_dir / records.MAP_NPZ)
        index, tsne = saved["index"].astype(np.int64), saved["tsne"].astype(np.float64)
    except (RunError, KeyError, ValueError, TypeError):
        return None
    if len(index) == 0 or tsne.shape != (len(index), 2):
        return None
    return index, tsne


def _saved_expost(run_dir: Path, latent: int) -> ExPost | None:
    """The run's ex-post density (``expost.npz``), or None where it has none (or a damaged one, or one of
    another code size)."""
    try:  # a missing file is a RunError too
        density = load_expost(run_dir / records.EXPOST_NPZ)
    except RunError:
        return None
    return density if density.latent == latent else None


def find_runs(folders: list[str | Path], dataset: str | None = None) -> list[tuple[str, str, Path]]:
    """``(key, label, run_dir)`` for each folder: a run folder stands for itself; a study folder for the
    first seed that all its models finished, on its first data set (or ``dataset``)."""
    found: list[tuple[str, str, Path]] = []
    for folder in map(Path, folders):
        if bundle.is_bundle(folder):  # checked against its checksums; an archive is unpacked into the cache
            name = folder.name.removesuffix(".tar.gz")
            found.append((name, name, bundle.open_bundle(folder)))
        elif records.is_run_folder(folder):
            found.append((folder.name, folder.name, folder))
        elif records.is_study_folder(folder):
            found.extend(_study_runs(folder, dataset))
        elif not folder.is_dir():
            raise RunError(f"{folder}: no such folder: give a run folder (with model.json) or a study folder "
                           "(with results.json)")
        else:
            raise RunError(f"{folder} is neither a run folder (no model.json) nor a study folder (no results.json): "
                           "train a model or run a study into it first")
    keys: dict[str, int] = {}
    unique = []
    for key, label, run_dir in found:  # two runs named alike (runs/a/vae, runs/b/vae) get vae, vae-2
        keys[key] = keys.get(key, 0) + 1
        suffix = f"-{keys[key]}" if keys[key] > 1 else ""
        unique.append((key + suffix, label + suffix, run_dir))
    return unique


def _study_runs(folder: Path, dataset: str | None) -> list[tuple[str, str, Path]]:
    results = records.load_results(folder)
    names = list(results["datasets"])
    if dataset is None:
        dataset = names[0] if names else None
    if dataset not in results["datasets"]:
        raise RunError(f"{folder}: the study has no data set {dataset!r}: choose one of {', '.join(names)}")
    part, study = results["datasets"][dataset], results["study"]
    runs = part.get("runs", {})
    for seed in map(str, study["seeds"]):
        if runs and all(seed in runs.get(model, {}) for model in study["models"]):
            return [(model, study["models"][model].get("label", model), folder / runs[model][seed])
                    for model in study["models"]]
    raise RunError(f"{folder}: no seed has every model of the study finished on {dataset}: run the study "
                   "to the end first")


class Explorer:
    """Trained models side by side on the test images they share; every method answers one page request.

    ``runs``: ``(key, label, run_dir)`` as :func:`find_runs` returns them. ``max_points``: test images on
    the map (the saved t-SNE map's images where the first run has one).
    """

    def __init__(self, runs: list[tuple[str, str, Path]], max_points: int = MAX_POINTS) -> None:
        if not runs:
            raise RunError("no runs to explore: give run folders or a study folder")
        loaded = [(key, label, load_run(run_dir, "cpu")) for key, label, run_dir in runs]
        first = loaded[0][2]
        self.data = first.load_data()
        for key, _, run in loaded[1:]:
            other = run.load_data() if run.dataset.get("fingerprint") != first.dataset.get("fingerprint") else None
            if other is not None and not np.array_equal(other.test_images, self.data.test_images):
                raise RunError(f"{run.run_dir} and {first.run_dir} were tested on different images (another data "
                               "set or split seed): explore them separately")
        saved = _saved_tsne(first.run_dir)
        n_test = len(self.data.test_labels)
        if saved is not None and saved[0].max() < n_test:
            self.index = saved[0][:max_points]
        else:
            self.index = np.arange(min(n_test, max_points))
        self.images = self.data.test_images[self.index]  # uint8
        self.labels = np.asarray(self.data.test_labels[self.index], dtype=np.int64)
        self.class_names = self.data.class_names
        # binary attributes of the shown images (CelebA's 40), where the data set has them
        attributes, names = self.data.test_attributes, self.data.attribute_names or []
        self.attributes = attributes[self.index] if attributes is not None else np.zeros((len(self.index), 0))
        self.attribute_names = [name for k, name in enumerate(names) if 0 < self.attributes[:, k].sum() < len(self.index)]
        pixels = to_tensor(self.images)
        self.models: dict[str, Model] = {}
        for key, label, run in loaded:
            mean, _ = encode_images(run.model, pixels, self.labels)
            tsne = _saved_tsne(run.run_dir)
            shown = tsne[1][:len(self.index)] if tsne is not None and np.array_equal(
                tsne[0][:len(self.index)], self.index) else None
            self.models[key] = Model(key, label, run.run_dir, run.model, mean.astype(np.float64),
                                     _measures(run.run_dir), shown, _saved_expost(run.run_dir, mean.shape[1]))
        # torch runs one decode at a time: concurrent requests queue here instead of oversubscribing the cores
        self._lock = threading.Lock()
        self._umap: dict[str, np.ndarray] = {}
        self._umap_lock = threading.Lock()

    # ----- what the page shows first -----------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """The models (label, latent size, headline measures, dimensions in order), the data and projections."""
        return {
            "dataset": self.data.name,
            "points": len(self.index),
            "class_names": self.class_names,
            "attributes": self.attribute_names,
            "projections": self.projections(),
            "measures": {name: {"short": short, "meaning": describe(name)[0]} for name, short in HEADLINE.items()},
            "models": [{
                "key": m.key, "label": m.label, "run": str(m.run_dir), "latent": m.latent,
                "objective": m.model.config.objective, "prior": m.model.config.prior,
                "conditional": bool(m.model.conditional), "expost": m.expost is not None,
                "measures": {name: m.measures[name] for name in HEADLINE if name in m.measures},
                "order": m.order, "order_by": m.order_by,
                "range": [[float(lo), float(hi)] for lo, hi in zip(m.pca_mean - 3 * m.spread,
                                                                    m.pca_mean + 3 * m.spread)],
            } for m in self.models.values()],
        }

    def _projection_of(self, m, projection: str) -> np.ndarray:
        """One model's map: its saved t-SNE (offered only where every model has one), PCA or UMAP."""
        if projection == "tsne" and m.tsne is not None:
            return m.tsne
        if projection == "pca":
            return m.pca
        if projection == "umap":
            return self._umap_of(m)
        raise BadRequest(f"{m.run_dir} has no {projection} map")

    def projections(self) -> list[str]:
        """The 2-D maps on offer: the saved t-SNE (where every model has one), PCA, UMAP (with the extra)."""
        names = ["tsne"] if all(m.tsne is not None for m in self.models.values()) else []
        names.append("pca")
        if importlib.util.find_spec("umap") is not None:  # found, not imported: listing the maps stays cheap
            names.append("umap")
        return names

    def map(self, projection: str) -> dict[str, Any]:
        """Every model's 2-D map of the shown test images, with their labels."""
        if projection not in self.projections():
            raise BadRequest(f"unknown projection {projection!r}: choose one of {', '.join(self.projections())}")
        maps = {}
        for key, m in self.models.items():
            xy = self._projection_of(m, projection)
            maps[key] = {"x": np.round(xy[:, 0], 4).tolist(), "y": np.round(xy[:, 1], 4).tolist()}
        return {"projection": projection, "labels": self.labels.tolist(), "maps": maps}

    def _umap_of(self, m: Model) -> np.ndarray:
        """UMAP (McInnes et al. 2018) of a model's codes, seeded, made on first request (seconds) and kept."""
        with self._umap_lock:
            if m.key not in self._umap:
                import umap

                self._umap[m.key] = umap.UMAP(random_state=0, n_jobs=1).fit_transform(m.codes)
            return self._umap[m.key]

    def point(self, i: Any) -> dict[str, Any]:
        """Shown test image ``i``: the image, its class, each model's reconstruction and code."""
        i = self._point_index(i, "point")
        reconstructions, codes = {}, {}
        for key, m in self.models.items():
            codes[key] = m.codes[i].tolist()
            reconstructions[key] = data_uri(self._decode(m, m.codes[i][None], self.labels[i:i + 1])[0])
        return {"point": i, "label": int(self.labels[i]), "class": self.class_names[self.labels[i]],
                "image": data_uri(self.images[i] / 255.0), "reconstructions": reconstructions, "codes": codes}

    # ----- decodings ----------------------------------------------------------------------------------
    def decode(self, key: Any, z: Any, label: Any = None) -> dict[str, Any]:
        """Decode one code ``z`` (a list of the model's latent size) with model ``key``."""
        m = self._model(key)
        code = self._vector(z, m.latent, "z")
        labels = self._labels_for(m, label, 1)
        return {"model": m.key, "image": data_uri(self._decode(m, code[None], labels)[0])}

    def plane(self, keys: Any, source: Any, x: Any, y: Any) -> dict[str, Any]:
        """Decode the point ``(x, y)`` of model ``source``'s PCA plane (other components at their mean) with
        each model in ``keys``.

        Each model has its own latent space: the point is carried to another model's PCA plane by the
        rotation that best lays that model's map of the same test images onto the source's (orthogonal
        Procrustes on the maps in units of their spread), so side by side they decode the same region of
        the data.
        """
        from scipy.linalg import orthogonal_procrustes

        origin = self._model(source)
        point = self._vector([x, y], 2, "(x, y)")
        models = self._models(keys)
        source_scale = origin.pca.std(0) + 1e-12
        standard = point / source_scale
        images, codes = {}, {}
        for m in models:
            scale = m.pca.std(0) + 1e-12
            rotation, _ = orthogonal_procrustes(m.pca / scale, origin.pca / source_scale)  # m's map -> source's
            mapped = (standard @ rotation.T) * scale
            z = m.pca_mean + mapped @ m.pca_axes
            codes[m.key] = z.tolist()
            images[m.key] = data_uri(self._decode(m, z[None], self._labels_for(m, None, 1))[0])
        return {"images": images, "codes": codes}

    def interpolate(self, keys: Any, a: Any, b: Any, steps: Any = 8, path: Any = "linear") -> dict[str, Any]:
        """Decoded codes along the path from shown image ``a``'s code to ``b``'s, ``steps`` images per model
        (``linear``, or ``spherical``: slerp, which keeps a Gaussian code's norm)."""
        a, b = self._point_index(a, "a"), self._point_index(b, "b")
        steps = self._integer(steps, "steps", 2, MAX_IMAGES)
        if path not in ("linear", "spherical"):
            raise BadRequest(f"path must be 'linear' or 'spherical', not {path!r}")
        t = np.linspace(0.0, 1.0, steps)
        strips = {}
        for m in self._models(keys):
            za, zb = m.codes[a], m.codes[b]
            z = _slerp(za, zb, t) if path == "spherical" else (1 - t)[:, None] * za + t[:, None] * zb
            labels = np.where(t < 0.5, self.labels[a], self.labels[b])  # a conditional model: the nearer end's
            strips[m.key] = [data_uri(image) for image in self._decode(m, z, labels)]
        return {"path": path, "steps": steps, "strips": strips}

    def centroids(self, keys: Any, sigma: Any = 0.0, seed: Any = 0) -> dict[str, Any]:
        """Each class's mean code, plus noise of ``sigma`` times each dimension's spread (the thesis's
        experiments 2 and 7), decoded by each model; the same noise draw for every sigma of one seed."""
        sigma = self._number(sigma, "sigma", 0.0, 10.0)
        seed = self._integer(seed, "seed", 0, 2**31 - 1)
        rows = {}
        for m in self._models(keys):
            centres = class_centroids(m.codes, self.labels)
            noise = torch.randn(centres.shape, generator=torch_generator(seed, "explore-centroids"),
                                dtype=torch.float64).numpy()
            z = centres + sigma * m.spread * noise
            rows[m.key] = [data_uri(image) for image in self._decode(m, z, np.unique(self.labels))]
        classes = [self.class_names[k] for k in np.unique(self.labels)]
        return {"sigma": sigma, "seed": seed, "classes": classes, "rows": rows}

    def prior(self, keys: Any, seed: Any = 0, n: Any = 12, source: Any = "prior") -> dict[str, Any]:
        """``n`` draws on one seeded stream, decoded by each model: from its prior (``source`` "prior", the
        thesis's experiment 3: models with the N(0, I) prior and one latent size decode the same draws) or
        from its ex-post density (``"expost"``, experiment 3b: a Gaussian mixture fitted to its training
        codes; ``missing`` names the models whose evaluation fitted none)."""
        seed = self._integer(seed, "seed", 0, 2**31 - 1)
        n = self._integer(n, "n", 1, MAX_IMAGES)
        if source not in ("prior", "expost"):
            raise BadRequest(f"source must be 'prior' or 'expost', not {str(source)[:40]!r}")
        rows, missing = {}, []
        for m in self._models(keys):
            if source == "expost":
                if m.expost is None:
                    missing.append(m.label)
                    continue
                z = m.expost.sample(n, seed)
            else:
                with self._lock:
                    z = prior_draws(m.model, n, seed).numpy()
            rows[m.key] = [data_uri(image) for image in self._decode(m, z, cycled_labels(n, len(self.class_names)))]
        return {"seed": seed, "n": n, "source": source, "rows": rows, "missing": missing}

    def attribute(self, keys: Any, name: Any, point: Any, steps: Any = len(DIRECTION_STEPS)) -> dict[str, Any]:
        """"Add a smile": attribute ``name``'s direction in each model's code space (the mean code of the shown
        images with it minus the mean of those without) added to shown image ``point``'s code, ``steps`` amounts
        over the report's range (:data:`~vaelab.analysis.generate.DIRECTION_STEPS`, -1 to 2; 0: the image's own
        code, 1: the whole mean difference), decoded; the default steps are the report's own."""
        if not self.attribute_names:
            raise BadRequest(f"{self.data.name} has no binary attributes to follow (CelebA has 40)")
        if name not in self.attribute_names:
            raise BadRequest(f"unknown attribute {str(name)[:40]!r}: choose one of {', '.join(self.attribute_names)}")
        point = self._point_index(point, "point")
        steps = self._integer(steps, "steps", 2, MAX_IMAGES)
        k = (self.data.attribute_names or []).index(name)
        amounts = np.linspace(DIRECTION_STEPS[0], DIRECTION_STEPS[-1], steps)
        strips = {}
        for m in self._models(keys):
            direction = attribute_directions(m.codes, self.attributes[:, k:k + 1])[0]
            z = m.codes[point][None] + amounts[:, None] * direction[None]
            strips[m.key] = [data_uri(image) for image in
                             self._decode(m, z, np.full(steps, self.labels[point]))]
        return {"attribute": name, "point": point, "amounts": np.round(amounts, 4).tolist(), "strips": strips}

    # ----- helpers --------------------------------------------------------------------------------------
    def _decode(self, m: Model, z: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
        with self._lock:
            return decode(m.model, z.astype(np.float32), labels if m.model.conditional else None)

    def _model(self, key: Any) -> Model:
        if not isinstance(key, str) or key not in self.models:
            raise BadRequest(f"unknown model {key!r}: choose one of {', '.join(self.models)}")
        return self.models[key]

    def _models(self, keys: Any) -> list[Model]:
        if keys is None:
            return list(self.models.values())
        if not isinstance(keys, list) or not keys:
            raise BadRequest("models must be a non-empty list of model keys")
        return [self._model(key) for key in keys]

    def _labels_for(self, m: Model, label: Any, n: int) -> np.ndarray | None:
        if not m.model.conditional:
            return None
        label = 0 if label is None else self._integer(label, "label", 0, len(self.class_names) - 1)
        return np.full(n, label, dtype=np.int64)

    def _point_index(self, i: Any, name: str) -> int:
        return self._integer(i, name, 0, len(self.index) - 1)

    @staticmethod
    def _integer(value: Any, name: str, low: int, high: int) -> int:
        # ASCII digits only, and few of them: str.isdigit() admits '²', which int() refuses, and int() refuses
        # strings of over 4,300 digits
        if isinstance(value, str) and INTEGER_TEXT.fullmatch(value.strip()):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise BadRequest(f"{name} must be an integer from {low} to {high}, not {value!r}")
        return value

    @staticmethod
    def _number(value: Any, name: str, low: float, high: float) -> float:
        if not is_finite_number(value) or not low <= value <= high:
            raise BadRequest(f"{name} must be a number from {low:g} to {high:g}, not {value!r}")
        return float(value)

    @staticmethod
    def _vector(values: Any, size: int, name: str) -> np.ndarray:
        if not isinstance(values, list) or len(values) != size:
            raise BadRequest(f"{name} must be a list of {size} numbers"
                             + (f", not {len(values)}" if isinstance(values, list) else ""))
        if not all(is_finite_number(v) for v in values):
            raise BadRequest(f"{name} must hold finite numbers only (no NaN, infinity or text)")
        if any(abs(v) > 1e4 for v in values):  # before converting: a JSON integer may be too large for a float
            raise BadRequest(f"{name} is out of range: keep every value within ±10000")
        return np.asarray(values, dtype=np.float64)


INTEGER_TEXT = re.compile(r"-?[0-9]{1,18}")  # a query parameter's integer: ASCII digits, within int64


def _slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation between ``a`` and ``b`` (White 2016); linear where they are parallel."""
    cos = np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12)
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    if omega < 1e-6:
        return (1 - t)[:, None] * a + t[:, None] * b
    return (np.sin((1 - t) * omega)[:, None] * a + np.sin(t * omega)[:, None] * b) / np.sin(omega)
