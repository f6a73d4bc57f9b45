"""The unit of work of a study: a job that an executor runs, in this process or on a Ray worker.

Two kinds of job, both described by plain values so that they can travel to
another process:

- a **classifier** job trains (or finds) the feature classifier of one data set
  and seed, which the generation and perturbation measures of every cell with
  that data set and seed share;
- a **cell** job is one (data set, model, seed): train (or reuse a finished run,
  or resume an interrupted one), then evaluate, writing everything into the
  cell's run directory: ``measures.json``, ``codes.npz``, ``map.npz`` and
  ``grids.npz`` (the decoded images the report shows).

``measures.json`` is written last: a cell whose ``measures.json`` matches the
study's evaluation settings is finished.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from vaelab.errors import RunError, VaelabError

CODES_NPZ = "codes.npz"
MAP_NPZ = "map.npz"
GRIDS_NPZ = "grids.npz"
CELL_FILES = (CODES_NPZ, MAP_NPZ, GRIDS_NPZ)


def dataset_slug(name: str) -> str:
    """A folder name for a data set: ``idx:/data/tiny`` -> ``idx-tiny``, ``dsprites:600`` -> ``dsprites-600``;
    other names as they are."""
    if name.startswith("idx:"):
        return "idx-" + (Path(name[4:]).expanduser().resolve().name or "data")
    return name.replace(":", "-")


@dataclass(frozen=True)
class Job:
    """What one unit of work needs, as plain values (picklable, the same in every process)."""

    kind: str  # "classifier" or "cell"
    root: str  # the study folder
    dataset: str
    data_dir: str | None
    seed: int
    settings: dict[str, Any]  # EvalSettings
    protocol: str = "holdout"  # the study's evaluation protocol (holdout or transductive)
    device: str = "cpu"
    precision: str = "fp32"
    threads: int | None = None  # torch threads for this job (results of conv models depend on it)
    model: str = ""  # cell jobs: the model's key, its resolved config and the measure groups
    config: dict[str, Any] = field(default_factory=dict)
    groups: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """How the job is named in progress lines and failure reports."""
        if self.kind == "classifier":
            return f"classifier {self.dataset} seed {self.seed}"
        return f"{self.model} seed {self.seed} on {self.dataset}"

    @property
    def run_dir(self) -> Path:
        """The cell's run directory (cell jobs) or the classifier's folder."""
        if self.kind == "classifier":
            return classifier_dir(Path(self.root), self.dataset, self.seed)
        return cell_dir(Path(self.root), self.dataset, self.model, self.seed)


def cell_dir(root: Path, dataset: str, model: str, seed: int) -> Path:
    """``runs/<data set>/<model>-seed<k>`` under the study folder."""
    return root / "runs" / dataset_slug(dataset) / f"{model}-seed{seed}"


def classifier_dir(root: Path, dataset: str, seed: int) -> Path:
    """``classifiers/<data set>/seed<k>`` under the study folder."""
    return root / "classifiers" / dataset_slug(dataset) / f"seed{seed}"


def run_job(job: Job, on_epoch: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Run one job; never raises for a failing job: the outcome says ``ok`` and, if not, why.

    Returns ``{"job", "ok", "error", "seconds", "timings", "reused"}``. A user
    error (divergence, bad data) is reported by its one-line message; anything
    else by its type and message, so that one broken cell never stops the others.
    """
    started = time.perf_counter()
    outcome: dict[str, Any] = {"job": job.name, "ok": True, "error": None, "timings": {}, "reused": False}
    try:
        if job.kind == "classifier":
            _classifier_job(job, outcome)
        else:
            _cell_job(job, outcome, on_epoch)
    except VaelabError as error:
        outcome.update(ok=False, error=str(error))
    except KeyboardInterrupt:
        raise
    except Exception as error:  # a bug in one cell must not lose the others' work
        outcome.update(ok=False, error=f"{type(error).__name__}: {error}")
    outcome["seconds"] = round(time.perf_counter() - started, 4)
    return outcome


def _setup(job: Job):
    import torch

    from vaelab.hardware import make_deterministic, resolve

    if job.threads:
        torch.set_num_threads(job.threads)
    device, resolved = resolve(job.device, job.precision)
    make_deterministic(device)
    return device, resolved


@functools.lru_cache(maxsize=2)
def _data(dataset: str, data_dir: str | None, seed: int, protocol: str = "holdout"):
    """The data set of a seed, loaded once per process for the cells that share it."""
    from vaelab.data.registry import load_dataset

    return load_dataset(dataset, data_dir=data_dir, seed=seed, protocol=protocol)


def _classifier(job: Job, device):
    from vaelab.analysis.classifier import load_or_train_classifier

    data = _data(job.dataset, job.data_dir, job.seed, job.protocol)
    folder = classifier_dir(Path(job.root), job.dataset, job.seed)
    return load_or_train_classifier(folder, data, job.seed, job.settings["classifier_epochs"], device)


def _classifier_job(job: Job, outcome: dict[str, Any]) -> None:
    from vaelab.io import folder_lock

    device, _ = _setup(job)
    with folder_lock(job.run_dir):
        _classifier(job, device)


def measures_current(run_dir: Path, config: dict[str, Any], settings: dict[str, Any],
                     groups: tuple[str, ...]) -> dict | None:
    """A cell's saved ``measures.json`` if it measures the run of this ``config`` (resolved, as JSON) with
    these settings and groups, and its files exist; else None.

    The config is checked too: a folder holding another run (a changed study) never lends its measures.
    """
    from vaelab.analysis.evaluate import read_measures
    from vaelab.training.checkpoint import read_model_json

    try:
        saved = read_measures(run_dir)
        if saved is not None and read_model_json(run_dir)["config"].model_dump(mode="json") != config:
            return None
    except RunError:  # damaged: redone
        return None
    if saved is None or saved.get("settings") != settings or saved.get("groups") != list(groups):
        return None
    if not all(_a_measure(value) for value in saved["measures"].values()):
        return None  # a string, a list or a boolean where a number belongs: the file is not vaelab's; redone
    if not all(_readable_npz(run_dir / name) for name in CELL_FILES):
        return None  # missing or damaged: the cell's evaluation is redone
    return saved


def _a_measure(value) -> bool:
    """Whether a saved measure is a number, or None (missing: what NaN is written as)."""
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _readable_npz(path: Path) -> bool:
    """Whether ``path`` is a whole NPZ whose arrays load without pickle (a cheap check of a cell's files)."""
    import zipfile

    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as saved:
            for name in saved.files:
                saved[name]
        return True
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return False


def _cell_job(job: Job, outcome: dict[str, Any], on_epoch) -> None:
    from vaelab.analysis.evaluate import make_reference, write_measures
    from vaelab.analysis.registry import CLASSIFIER_GROUPS
    from vaelab.analysis.evaluate import evaluate as measure
    from vaelab.analysis.generate import figure_grids
    from vaelab.config import EvalSettings, RunConfig
    import numpy as np

    from vaelab.io import write_npz

    device, resolved = _setup(job)
    config = RunConfig.model_validate(job.config)
    data = _data(job.dataset, job.data_dir, job.seed, job.protocol)
    run_dir = job.run_dir
    started = time.perf_counter()
    run, reused = train_or_reuse(config, run_dir, data, on_epoch, device, resolved.precision)
    outcome["timings"]["train"] = round(time.perf_counter() - started, 4)
    outcome["reused"] = reused
    if measures_current(run_dir, job.config, job.settings, job.groups) is not None:
        return
    started = time.perf_counter()
    settings = EvalSettings.model_validate(job.settings)
    reference = None
    if CLASSIFIER_GROUPS & set(job.groups):
        classifier, info = _classifier(job, device)
        reference = make_reference(classifier, info, data)
    evaluation = measure(run.model, data, job.seed, job.groups, settings, reference)
    evaluation.test_codes.save(run_dir / CODES_NPZ)
    if evaluation.tsne is not None:
        write_npz(run_dir / MAP_NPZ, tsne=evaluation.tsne, index=evaluation.tsne_index)
    else:  # the map group was not asked for: an empty map (never an object array, which would need pickle)
        write_npz(run_dir / MAP_NPZ, tsne=np.zeros((0, 2)), index=np.zeros(0, dtype=np.int64))
    codes = evaluation.test_codes
    write_npz(run_dir / GRIDS_NPZ, **figure_grids(run.model, data.test_images, codes.mean, codes.labels, job.seed,
                                                   settings.sigmas, data.class_names))
    record = write_measures(run_dir, evaluation, job.groups, settings, reference)  # last: the cell is done
    outcome["timings"].update({f"measure/{name}": seconds for name, seconds in record["timings"].items()})
    outcome["timings"]["evaluate"] = round(time.perf_counter() - started, 4)


def train_or_reuse(config, run_dir: Path, data, on_epoch, device, precision: str):
    """Reuse a finished run with the same identity, resume an interrupted one, or train it.

    A run directory holding another config is a one-line error, never overwritten.
    """
    from vaelab.data.registry import check_same_data
    from vaelab.training import checkpoint as ckpt
    from vaelab.training.trainer import fit, load_run

    common = dict(dataset=data, progress=False, on_epoch=on_epoch, device=device, precision=precision)
    if (run_dir / ckpt.MODEL_JSON).is_file():
        info = ckpt.read_model_json(run_dir)
        if info["config"] != config:
            raise RunError(f"{run_dir} holds another run (identity {info['config'].identity()}, not "
                           f"{config.identity()}): use another --out, or delete that folder")
        check_same_data(info.get("dataset") or {}, data, run_dir)
        if info["status"] == "finished":
            return load_run(run_dir, device), True
        return fit(config, run_dir, resume=True, **common), False
    return fit(config, run_dir, **common), False
