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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from pydantic import ValidationError

from vaelab import records
from vaelab.analysis.classifier import load_or_train_classifier
from vaelab.analysis.evaluate import evaluate, make_reference, measures_record
from vaelab.analysis.generate import figure_grids
from vaelab.analysis.registry import CLASSIFIER_GROUPS, is_detail
from vaelab.config import EvalSettings, RunConfig
from vaelab.data.registry import check_same_data, load_dataset
from vaelab.errors import RunError, VaelabError
from vaelab.hardware import make_deterministic, resolve
from vaelab.io import folder_lock, write_npz
from vaelab.training.tblog import LOG_DIR, TensorBoardLog, open_log
from vaelab.training.trainer import fit, load_run

@dataclass(frozen=True)
class Cell:
    """One (data set, model, seed) of a study, with its resolved run config: the one type of a study's cell,
    planned by the study, run by an executor in any process (it pickles), and aggregated."""

    dataset: str
    model: str
    seed: int
    config: RunConfig

    @property
    def identity(self) -> str:
        """The stable hash of the resolved config: equal identities are the same run."""
        return self.config.identity()

    @property
    def name(self) -> str:
        """How the cell is named in progress lines and failure reports."""
        return f"{self.model} seed {self.seed} on {self.dataset}"

    def run_dir(self, root: Path) -> Path:
        """The cell's run directory under the study folder ``root``."""
        return records.cell_dir(root, self.dataset, self.model, self.seed)


@dataclass(frozen=True)
class Job:
    """One unit of work (a cell, or the classifier its data set and seed share) with what every job of the
    study shares, as values that travel to another process."""

    root: str  # the study folder
    dataset: str
    data_dir: str | None
    seed: int
    settings: dict[str, Any]  # EvalSettings
    protocol: str = "holdout"  # the study's evaluation protocol (holdout or transductive)
    device: str = "cpu"
    precision: str = "fp32"
    threads: int | None = None  # torch threads for this job (results of conv models depend on it)
    log: str = "none"  # or "tensorboard": the cell's log under STUDY/tensorboard/DATASET/CELL
    cell: Cell | None = None  # cell jobs: the cell, and the measure groups
    groups: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        """``cell`` (it trains and measures a cell) or ``classifier`` (the one its data set and seed share)."""
        return "classifier" if self.cell is None else "cell"

    @property
    def name(self) -> str:
        """How the job is named in progress lines and failure reports."""
        if self.cell is None:
            return f"classifier {self.dataset} seed {self.seed}"
        return self.cell.name

    @property
    def run_dir(self) -> Path:
        """The cell's run directory (cell jobs) or the classifier's folder."""
        if self.cell is None:
            return records.classifier_dir(Path(self.root), self.dataset, self.seed)
        return self.cell.run_dir(Path(self.root))


def run_job(job: Job, on_epoch: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Run one job; never raises for a failing job: the outcome says ``ok`` and, if not, why.

    Returns ``{"job", "ok", "error", "seconds", "timings", "reused"}``. A user
    error (divergence, bad data) is reported by its one-line message; anything
    else by its type and message, so that one broken cell never stops the others.
    """
    started = time.perf_counter()
    outcome: dict[str, Any] = {"job": job.name, "ok": True, "error": None, "timings": {}, "reused": False}
    try:
        if job.cell is None:
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
    if job.threads:
        torch.set_num_threads(job.threads)
    device, resolved = resolve(job.device, job.precision)
    make_deterministic(device)
    return device, resolved


@functools.lru_cache(maxsize=2)
def study_data(dataset: str, data_dir: str | None, seed: int, protocol: str = "holdout"):
    """The data set of a seed, loaded once per process for the cells that share it."""
    return load_dataset(dataset, data_dir=data_dir, seed=seed, protocol=protocol)


def _classifier(job: Job, device):
    data = study_data(job.dataset, job.data_dir, job.seed, job.protocol)
    folder = records.classifier_dir(Path(job.root), job.dataset, job.seed)
    return load_or_train_classifier(folder, data, job.seed, job.settings["classifier_epochs"], device)


def _classifier_job(job: Job, outcome: dict[str, Any]) -> None:
    device, _ = _setup(job)
    with folder_lock(job.run_dir):
        _classifier(job, device)


def measures_current(run_dir: Path, config: RunConfig, settings: dict[str, Any],
                     groups: tuple[str, ...]) -> dict | None:
    """A cell's saved ``measures.json`` if it measures the run of this ``config`` with these settings and
    groups, and its files are whole and agree with the run's data set; else None (the cell is redone).

    The config is checked too: a folder holding another run (a changed study) never lends its measures.
    """
    try:
        saved = records.read_measures(run_dir)
        if saved is None:
            return None
        info = records.read_model_json(run_dir)
    except RunError:  # damaged: redone
        return None
    if info["config"] != config or _settings_of(saved) != settings or saved.get("groups") != list(groups):
        return None
    if not all(records.a_measure(value) for value in saved["measures"].values()):
        return None  # a string, a list, a boolean or a huge integer where a number belongs: not vaelab's; redone
    if not records.cell_files_valid(run_dir, info["dataset"]):
        return None  # missing, damaged, or shaped for other data: the cell's evaluation is redone
    return saved


def _settings_of(saved: dict[str, Any]) -> dict[str, Any] | None:
    """The evaluation settings of saved measures, with the defaults of settings added since (which measure as
    before: measures.json files of earlier versions stay current); None where they do not read as settings."""
    try:
        return EvalSettings.model_validate(saved.get("settings")).model_dump(mode="json")
    except ValidationError:
        return None


def _cell_job(job: Job, outcome: dict[str, Any], on_epoch) -> None:
    device, resolved = _setup(job)
    cell = job.cell
    if cell is None:
        raise ValueError(f"{job.name} is a classifier job, not a cell's")
    data = study_data(job.dataset, job.data_dir, job.seed, job.protocol)
    run_dir = job.run_dir
    log_dir = Path(job.root) / LOG_DIR / run_dir.relative_to(Path(job.root) / records.RUNS)
    board = open_log(job.log, log_dir, data, job.seed, cell.config.train.epochs)
    try:
        _train_and_measure(job, cell, data, run_dir, outcome, on_epoch, device, resolved, board)
    finally:
        if board is not None:
            board.close()


def _train_and_measure(job: Job, cell: Cell, data, run_dir: Path, outcome: dict[str, Any], on_epoch, device,
                       resolved, board: TensorBoardLog | None) -> None:
    started = time.perf_counter()
    run, reused = train_or_reuse(cell.config, run_dir, data, on_epoch, device, resolved.precision, board)
    outcome["timings"]["train"] = round(time.perf_counter() - started, 4)
    outcome["reused"] = reused
    if measures_current(run_dir, cell.config, job.settings, job.groups) is not None:
        return
    started = time.perf_counter()
    settings = EvalSettings.model_validate(job.settings)
    reference = None
    if CLASSIFIER_GROUPS & set(job.groups):
        classifier, info = _classifier(job, device)
        reference = make_reference(classifier, info, data)
    evaluation = evaluate(run.model, data, job.seed, job.groups, settings, reference)
    evaluation.test_codes.save(run_dir / records.CODES_NPZ)
    if evaluation.tsne is not None:
        write_npz(run_dir / records.MAP_NPZ, tsne=evaluation.tsne, index=evaluation.tsne_index)
    else:  # the map group was not asked for: an empty map (never an object array, which would need pickle)
        write_npz(run_dir / records.MAP_NPZ, tsne=np.zeros((0, 2)), index=np.zeros(0, dtype=np.int64))
    codes = evaluation.test_codes
    evaluation.save_density(run_dir)
    attributes = (data.test_attributes, data.attribute_names) \
        if data.test_attributes is not None and data.attribute_names is not None else None
    write_npz(run_dir / records.GRIDS_NPZ, **figure_grids(run.model, data.test_images, codes.mean, codes.labels,
                                                           job.seed, settings.sigmas, data.class_names,
                                                           evaluation.expost, attributes))
    record = measures_record(evaluation, job.groups, settings, reference)
    if board is not None:  # before the cell is marked done: a logged cell's log is whole
        step = len(run.history)
        board.measures({k: v for k, v in evaluation.measures.items() if not is_detail(k)}, step)
        shown = evaluation.tsne_index if evaluation.tsne is not None else np.arange(len(codes.labels))
        board.projector(codes.mean[shown], codes.labels[shown], data.test_images[shown], step)
    records.write_measures(run_dir, record)  # last: the cell is done
    outcome["timings"].update({f"measure/{name}": seconds for name, seconds in record["timings"].items()})
    outcome["timings"]["evaluate"] = round(time.perf_counter() - started, 4)


def train_or_reuse(config: RunConfig, run_dir: Path, data, on_epoch, device, precision: str,
                   log: TensorBoardLog | None = None):
    """Reuse a finished run with the same identity, resume an interrupted one, or train it (writing each epoch
    to ``log`` too, where there is one).

    A run directory holding another config is a one-line error, never overwritten.
    """
    common = dict(dataset=data, progress=False, on_epoch=on_epoch, device=device, precision=precision, log=log)
    if records.is_run_folder(run_dir):
        info = records.read_model_json(run_dir)
        if info["config"] != config:
            raise RunError(f"{run_dir} holds another run (identity {info['config'].identity()}, not "
                           f"{config.identity()}): use another --out, or delete that folder")
        check_same_data(info.get("dataset") or {}, data, run_dir)
        if info["status"] == "finished":
            return load_run(run_dir, device), True
        return fit(config, run_dir, resume=True, **common), False
    return fit(config, run_dir, **common), False
