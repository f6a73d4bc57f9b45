"""The run folder and the study folder: every file name, and the readers and writers of their formats.

A **run folder** (``vaelab train``, or one cell of a study)::

    checkpoint.safetensors  weights, optimiser state and history (written by training.checkpoint)
    weights.safetensors     the weights alone, for users and other tools
    model.json              the resolved config, its identity, data set, progress, hardware
    metrics.jsonl           one JSON line per epoch
    measures.json           what ``vaelab evaluate`` (or the study) measured, with its settings
    codes.npz               the test codes (``mean``, ``labels``, ``logvar``, ``factors``)
    map.npz                 the t-SNE map (``tsne``, ``index`` into the test set)
    grids.npz               the decoded images the report draws

A **study folder**::

    study.yaml  results.json  hardware.json  timings.json  report.html  report.md
    runs/<data set>/<model>-seed<k>/   a run folder per cell
    classifiers/<data set>/seed<k>/    the feature classifier of the generation measures
    figures/<data set>/*.png

No other module spells these names. The readers never trust what they read: a
damaged file is a one-line :class:`~vaelab.errors.RunError`, and the cell
files a study reuses are checked against each other and the run's data set
(:func:`cell_files_valid`), so a file with the right keys but wrong shapes,
NaN or text where a number belongs is redone, not reused.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from vaelab.config import ModelConfig, RunConfig, build_config, config_hash
from vaelab.errors import ConfigError, RunError, notice
from vaelab.io import is_finite_number, json_text, parse_json, read_json, write_json
from vaelab.version import __version__

# the run folder
CHECKPOINT = "checkpoint.safetensors"
WEIGHTS = "weights.safetensors"
MODEL_JSON = "model.json"
METRICS = "metrics.jsonl"
MEASURES_JSON = "measures.json"
CODES_NPZ = "codes.npz"
MAP_NPZ = "map.npz"
GRIDS_NPZ = "grids.npz"
CELL_FILES = (CODES_NPZ, MAP_NPZ, GRIDS_NPZ)  # what a study's evaluation writes beside measures.json
EXPOST_NPZ = "expost.npz"  # the ex-post density, where the expost measures fitted it (optional: not a cell file)

# the study folder
STUDY_YAML = "study.yaml"
RESULTS_JSON = "results.json"
HARDWARE_JSON = "hardware.json"
TIMINGS_JSON = "timings.json"
REPORT_HTML = "report.html"
REPORT_MD = "report.md"
RUNS = "runs"
CLASSIFIERS = "classifiers"
FIGURES = "figures"

# a classifier folder
CLASSIFIER_JSON = "classifier.json"


def dataset_slug(name: str) -> str:
    """A folder name for a data set: ``idx:/data/tiny`` -> ``idx-tiny``, ``dsprites:600`` -> ``dsprites-600``;
    other names as they are."""
    if name.startswith("idx:"):
        return "idx-" + (Path(name[4:]).expanduser().resolve().name or "data")
    return name.replace(":", "-")


def cell_dir(root: Path, dataset: str, model: str, seed: int) -> Path:
    """``runs/<data set>/<model>-seed<k>`` under the study folder ``root``."""
    return Path(root) / RUNS / dataset_slug(dataset) / f"{model}-seed{seed}"


def classifier_dir(root: Path, dataset: str, seed: int) -> Path:
    """``classifiers/<data set>/seed<k>`` under the study folder ``root``."""
    return Path(root) / CLASSIFIERS / dataset_slug(dataset) / f"seed{seed}"


def is_run_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a run (its ``model.json``)."""
    return (Path(folder) / MODEL_JSON).is_file()


def is_study_folder(folder: Path) -> bool:
    """Whether ``folder`` holds a study's results (its ``results.json``)."""
    return (Path(folder) / RESULTS_JSON).is_file()


# --- model.json -------------------------------------------------------------------------------------------


def write_model_json(run_dir: Path, config: RunConfig, dataset: dict[str, Any], epochs_done: int,
                     status: str, hardware: dict[str, str] | None = None) -> None:
    """Write ``model.json``: config, version, data set, seed, progress, and the device and precision used."""
    write_json(Path(run_dir) / MODEL_JSON, {
        "vaelab_version": __version__,
        "status": status,
        "epochs_done": epochs_done,
        "seed": config.train.seed,
        "dataset": dataset,
        "config": config.model_dump(mode="json"),
        "identity": config.identity(),
        "hardware": hardware or {},
    })


def read_model_json(run_dir: Path) -> dict[str, Any]:
    """Read and validate ``model.json``; the config comes back as a :class:`RunConfig`."""
    path = Path(run_dir) / MODEL_JSON
    if not Path(run_dir).is_dir():
        raise RunError(f"{run_dir}: no such run directory")
    if not path.is_file():
        raise RunError(f"{run_dir}: no {MODEL_JSON}: not a vaelab run directory")
    try:
        info = read_json(path)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RunError(f"{path}: not valid JSON: the run directory is damaged; train again") from None
    if not isinstance(info, dict) or not isinstance(info.get("config"), dict):
        # Never fall back to defaults: resuming from them would silently train another run.
        raise RunError(f"{path}: holds no run config: the run directory is damaged; train again")
    recorded = info.get("identity")  # absent in runs written before vaelab recorded it
    # The hash of the config as written (not as re-validated, which fills in settings added by later
    # versions): a config that still validates can still be wrong (a flipped digit, an edited path), and
    # would load another run's settings beside these weights.
    if recorded is not None and recorded != config_hash(info["config"]):
        raise RunError(f"{path}: its config does not match its recorded identity {recorded!r}: the file was "
                       "edited or damaged; restore it, or train again")
    try:
        info["config"] = build_config(info["config"])
    except ConfigError as error:
        raise RunError(f"{path}: {error}: the run directory is damaged; train again") from None
    # The rest is description; the checkpoint is the source of truth. Damaged parts read as unknown.
    for key, kind, default in (("dataset", dict, {}), ("hardware", dict, {}), ("status", str, "unknown")):
        if not isinstance(info.get(key), kind):
            info[key] = default
    shape = info["dataset"].get("image_shape")
    if not (isinstance(shape, list) and len(shape) == 3 and all(_count(n) for n in shape)):
        info["dataset"].pop("image_shape", None)
    for key, most in (("n_classes", 100000), ("n_test", 10 ** 9)):
        if not (_count(info["dataset"].get(key)) and info["dataset"][key] <= most):
            info["dataset"].pop(key, None)
    return info


def _count(value: Any) -> bool:
    """Whether ``value`` is a positive int (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


# --- metrics.jsonl ----------------------------------------------------------------------------------------


def metrics_text(history: list[dict[str, Any]]) -> str:
    """``metrics.jsonl``'s content: one JSON line per epoch (NaN written as null)."""
    return "".join(json_text(row) + "\n" for row in history)


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The rows of a run's ``metrics.jsonl`` that parse (a damaged line does not make the run unloadable)."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = parse_json(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


# --- measures.json ----------------------------------------------------------------------------------------


def write_measures(run_dir: Path, record: dict[str, Any]) -> None:
    """Write ``RUN_DIR/measures.json`` (measures, groups, settings, classifier, timings), atomically."""
    write_json(Path(run_dir) / MEASURES_JSON, record)


def read_measures(run_dir: Path) -> dict | None:
    """``RUN_DIR/measures.json`` if it exists (None if not; a damaged one is a one-line :class:`RunError`)."""
    path = Path(run_dir) / MEASURES_JSON
    if not path.is_file():
        return None
    saved = _parsed_or_none(path)
    if not isinstance(saved, dict) or not isinstance(saved.get("measures"), dict):
        raise RunError(f"{path} is damaged: measure the run again (`vaelab evaluate {run_dir}`)")
    return saved


def a_measure(value: Any) -> bool:
    """Whether a saved measure is a finite number, or None (missing: what NaN is written as).

    NaN and infinity read from a hand-edited file (``parse_json`` reads them as None, Python's own
    reader does not), text, lists and booleans are not measures."""
    return value is None or is_finite_number(value)


def _parsed_or_none(path: Path) -> Any:
    """The JSON value of an existing file; None where it does not parse (the caller says it is damaged)."""
    try:
        return read_json(path)
    except (ValueError, UnicodeDecodeError):
        return None


# --- hardware.json -------------------------------------------------------------------------------------------


def write_hardware(root: Path, record: dict[str, Any]) -> None:
    """Write a study's ``hardware.json``: the device, precision and threads its cells run with."""
    write_json(Path(root) / HARDWARE_JSON, record)


def read_hardware(root: Path) -> dict | None:
    """A study's ``hardware.json`` record; None if it is missing or damaged (then it is rewritten, with a
    note)."""
    path = Path(root) / HARDWARE_JSON
    if not path.is_file():
        return None
    value = _parsed_or_none(path)
    if not isinstance(value, dict) or "precision" not in value:
        notice(f"{path} is damaged: writing it again for this machine")
        return None
    return value


# --- NPZ files ---------------------------------------------------------------------------------------------


def read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an NPZ file (pickles refused); a missing or damaged file is a one-line :class:`RunError`."""
    try:
        with np.load(path, allow_pickle=False) as saved:
            return {name: saved[name] for name in saved.files}
    except FileNotFoundError:
        raise RunError(f"{path} is missing: run the study again to redo that cell") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        raise RunError(f"{path} is damaged: delete it and run the study again to redo that cell") from None


GRID_ARRAYS = ("originals", "reconstructions", "centroids", "prior", "sigmas", "perturbed", "silhouettes",
               "class_names")


def cell_files_valid(run_dir: Path, dataset: dict[str, Any]) -> bool:
    """Whether a cell's ``codes.npz``, ``map.npz`` and ``grids.npz`` are whole and agree with each other and
    with the run's data set (``model.json``'s ``dataset``: its ``n_test`` where recorded).

    Checked: the arrays load without pickle; the codes are finite, (n, d) with n labels in range (and
    ``logvar`` the shape of ``mean``); the map's index points into the n test images and its t-SNE has one
    finite 2-D point per index; the grids hold every array the report draws, with one silhouette per test
    image. A file that fails is redone by the study rather than reused."""
    try:
        codes, saved_map, grids = (read_npz(Path(run_dir) / name) for name in CELL_FILES)
    except RunError:
        return False
    return _codes_valid(codes, dataset) and _map_valid(saved_map, len(codes["labels"])) and \
        _grids_valid(grids, len(codes["labels"]))


def _numeric(array: np.ndarray) -> bool:
    return array.dtype.kind in "iuf" and bool(np.isfinite(array).all())


def _codes_valid(codes: dict[str, np.ndarray], dataset: dict[str, Any]) -> bool:
    mean, labels = codes.get("mean"), codes.get("labels")
    if mean is None or labels is None or mean.ndim != 2 or labels.shape != (len(mean),):
        return False
    if not (_numeric(mean) and labels.dtype.kind in "iu" and len(mean) > 0):
        return False
    if "n_test" in dataset and len(mean) != dataset["n_test"]:
        return False
    if "n_classes" in dataset and not (0 <= labels.min() and labels.max() < dataset["n_classes"]):
        return False
    logvar = codes.get("logvar")
    return logvar is None or (logvar.shape == mean.shape and _numeric(logvar))


def _map_valid(saved: dict[str, np.ndarray], n_test: int) -> bool:
    index, tsne = saved.get("index"), saved.get("tsne")
    if index is None or tsne is None or index.ndim != 1 or tsne.shape != (len(index), 2):
        return False
    if len(index) == 0:  # the map group was not asked for
        return True
    return index.dtype.kind in "iu" and 0 <= index.min() and index.max() < n_test and _numeric(tsne)


def _grids_valid(grids: dict[str, np.ndarray], n_test: int) -> bool:
    if not all(name in grids for name in GRID_ARRAYS) or grids["class_names"].dtype.kind != "U":
        return False
    return grids["silhouettes"].shape == (n_test,) and all(
        _numeric(grids[name]) for name in GRID_ARRAYS if name not in ("class_names", "silhouettes"))


# --- results.json ---------------------------------------------------------------------------------------------


def write_results(root: Path, results: dict[str, Any]) -> None:
    """Write a study's ``results.json`` atomically (NaN and infinities as null: valid JSON)."""
    write_json(Path(root) / RESULTS_JSON, results)


def load_results(out: str | Path) -> dict[str, Any]:
    """``results.json`` of a study folder, with one-line errors for a missing, damaged or older file."""
    path = Path(out) / RESULTS_JSON
    if not path.is_file():
        raise RunError(f"{out}: no {RESULTS_JSON}: run `vaelab study run FILE --out {out}` "
                       f"(or `vaelab reproduce --out {out}`) first")
    try:
        results = read_json(path)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RunError(f"{path} is damaged (not JSON): run the study again into {out} to rewrite it") from None
    if not isinstance(results, dict) or not isinstance(results.get("datasets"), dict) or "study" not in results:
        raise RunError(f"{path} was not written by this version of vaelab's studies: run the study again "
                       f"into a new folder")
    if not _complete(results):
        raise RunError(f"{path} is incomplete or damaged: run the study again into {out} to rewrite it")
    return results


def _valid_model(section: dict) -> bool:
    """Whether a study's model section is settings this vaelab reads (the report asks each model for them)."""
    try:
        ModelConfig(**section)
    except (ValidationError, TypeError, ValueError):
        return False
    return True


def _complete(results: dict) -> bool:
    """Whether results.json has every part the report and the comparison read, of the right kind."""
    study = results["study"]
    if not (isinstance(study, dict) and isinstance(study.get("models"), dict) and isinstance(study.get("seeds"), list)
            and isinstance(study.get("evaluation"), dict) and isinstance(results.get("failed", []), list)):
        return False
    if not all(isinstance(m, dict) and isinstance(m.get("label"), str) and isinstance(m.get("model"), dict)
               and isinstance(m.get("train"), dict) and _valid_model(m["model"]) for m in study["models"].values()):
        return False
    for part in results["datasets"].values():
        if not isinstance(part, dict):
            return False
        for key in ("per_seed", "aggregate", "runs"):
            table = part.get(key)
            if not isinstance(table, dict) or set(table) != set(study["models"]):
                return False
            if not all(isinstance(v, dict) for v in table.values()):
                return False
        if not isinstance(part.get("paired", {}), dict) or not isinstance(part.get("classifier", {}), dict):
            return False
    return True
