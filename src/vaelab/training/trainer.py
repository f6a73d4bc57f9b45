"""The training loop: Adam over in-memory tensors, one checkpoint per epoch.

Randomness comes from streams derived from the run's seed (see
:mod:`vaelab.seeding`): the batch order of epoch ``e`` is
``(seed, "batches", e)`` and the sampling noise ``(seed, "noise", e)``. A run
resumed from the checkpoint of epoch ``e`` therefore draws exactly what an
uninterrupted run would, and ends with bit-identical weights.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from vaelab import records
from vaelab.config import RunConfig, build_config, flatten, merge
from vaelab.data.dataset import Dataset, to_tensor
from vaelab.data.registry import check_same_data, load_dataset
from vaelab.errors import RunError, TrainingDiverged
from vaelab.hardware import autocast, keep_recorded_precision, make_deterministic, resolve
from vaelab.io import folder_lock, remove_stale_temporaries
from vaelab.models.base import INFERENCE_BATCH, Phase
from vaelab.models.latent import LatentModel, build_model
from vaelab.seeding import torch_generator
from vaelab.training import checkpoint as ckpt
from vaelab.training.tblog import TensorBoardLog


@dataclass
class TrainedRun:
    """A run directory with its trained model, config, data summary and metric history."""

    run_dir: Path
    config: RunConfig
    model: LatentModel
    dataset: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    hardware: dict[str, str] = field(default_factory=dict)  # the device and precision it was trained with

    def load_data(self) -> Dataset:
        """Load the data set this run was trained on, with its split; refuse data that has changed since."""
        data = self.config.data
        loaded = load_dataset(data.name, data_dir=data.data_dir, holdout=data.holdout, seed=self.config.train.seed,
                              protocol=data.protocol)
        check_same_data(self.dataset, loaded, self.run_dir)
        return loaded


def binarize(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Dynamic binarisation: each pixel ~ Bernoulli(its intensity)."""
    return torch.bernoulli(images, generator=generator)


def prepare_targets(images: torch.Tensor, config: RunConfig, generator: torch.Generator) -> torch.Tensor:
    """The images the model reads and reconstructs (binarised if the config asks for it)."""
    return binarize(images, generator) if config.data.binarize else images


@torch.no_grad()
def evaluate_loss(model: LatentModel, images: torch.Tensor, config: RunConfig, precision: str = "fp32",
                  labels: torch.Tensor | None = None) -> dict[str, float]:
    """Mean loss terms over ``images`` (on the model's device), with fixed noise so that epochs are comparable."""
    model.eval()
    device = model.device
    noise = torch_generator(config.train.seed, "test-noise", device=device)
    targets = prepare_targets(images, config, torch_generator(config.train.seed, "test-binarize", device=device))
    sums: dict[str, float] = {}
    for start in range(0, len(images), INFERENCE_BATCH):
        batch = targets[start:start + INFERENCE_BATCH]
        batch_labels = labels[start:start + INFERENCE_BATCH] if labels is not None else None
        with autocast(device, precision):
            terms = model.objective(model, batch, batch, noise, labels=batch_labels)
        for key, value in terms.items():
            sums[key] = sums.get(key, 0.0) + float(value) * len(batch)
    model.train()
    return {key: value / len(images) for key, value in sums.items()}


def train_epoch(model: LatentModel, optimizer: Optimizer, images: torch.Tensor,
                config: RunConfig, epoch: int, on_batch: Callable[[], None] | None = None,
                precision: str = "fp32", labels: torch.Tensor | None = None) -> dict[str, float]:
    """One pass over ``images`` (on the model's device) in the epoch's seeded order; the mean loss terms.

    The batch order is drawn on the CPU, so it is the same on every device; the
    sampling noise and the binarisation draw from their own streams on the
    model's device, so that an AE (which draws no noise) and a VAE with the
    same seed see the same binarised images.
    """
    seed, batch_size, device = config.train.seed, config.train.batch_size, model.device
    order = torch.randperm(len(images), generator=torch_generator(seed, "batches", epoch)).to(device)
    noise = torch_generator(seed, "noise", epoch, device=device)
    binarizing = torch_generator(seed, "binarize", epoch, device=device)
    totals = torch.zeros(len(model.objective.terms), device=device)
    model.train()
    for start in range(0, len(images), batch_size):
        rows = order[start:start + batch_size]
        batch = prepare_targets(images[rows], config, binarizing)
        terms = train_step(model, optimizer, batch, noise, labels[rows] if labels is not None else None, precision)
        # Sums stay tensors: reading them per batch would force a sync for nothing.
        totals += torch.stack([terms[key].detach().float() for key in model.objective.terms]) * len(batch)
        if on_batch is not None:
            on_batch()
    return {key: float(value) / len(images) for key, value in zip(model.objective.terms, totals.cpu())}


class PhasedOptimizer:
    """One Adam per phase of an objective that alternates (:meth:`Objective.phases`): each phase's loss term
    steps its own parameters with its own moments, as separate optimisers do (Makhzani et al.'s AAE)."""

    def __init__(self, phases: list[Phase], lr: float):
        self.terms = [phase.term for phase in phases]
        self.optimizers = [torch.optim.Adam(phase.params, lr=phase.lr if phase.lr is not None else lr,
                                            betas=phase.betas, foreach=False) for phase in phases]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return {"phases": [optimizer.state_dict() for optimizer in self.optimizers]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state.get("phases", [])) != len(self.optimizers):
            raise ValueError("the checkpoint's optimiser has other phases")
        for optimizer, phase_state in zip(self.optimizers, state["phases"]):
            optimizer.load_state_dict(phase_state)


Optimizer = torch.optim.Optimizer | PhasedOptimizer


def make_optimizer(model: LatentModel, config: RunConfig) -> Optimizer:
    """Adam with the configured learning rate (single-tensor path: deterministic and fast on CPU), over the
    objective's parameter groups (one group of everything, unless a part trains at its own rate); or one Adam
    per phase for an objective that alternates."""
    phases = model.objective.phases(model)
    if phases:
        return PhasedOptimizer(phases, config.train.lr)
    return torch.optim.Adam(model.objective.param_groups(model), lr=config.train.lr, foreach=False)


def train_step(model: LatentModel, optimizer: Optimizer, batch: torch.Tensor, noise: torch.Generator,
               labels: torch.Tensor | None, precision: str) -> dict[str, torch.Tensor]:
    """One batch's update: ``loss`` backward and one step; or, for an objective that alternates, each phase in
    turn (a fresh forward pass, its term backward, its own step). Returns the terms of the first forward pass."""
    if not isinstance(optimizer, PhasedOptimizer):
        with autocast(model.device, precision):
            terms = model.objective(model, batch, batch, noise, labels=labels)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimizer.step()
        return terms
    first: dict[str, torch.Tensor] | None = None
    for term, phase_optimizer in zip(optimizer.terms, optimizer.optimizers):
        with autocast(model.device, precision):
            terms = model.objective(model, batch, batch, noise, labels=labels)
        first = first if first is not None else {key: value.detach() for key, value in terms.items()}
        optimizer.zero_grad(set_to_none=True)
        terms[term].backward()
        phase_optimizer.step()
    assert first is not None  # an objective's phases are never empty here
    return first


def fit(config: RunConfig, run_dir: str | Path, *, dataset: Dataset | None = None, resume: bool = False,
        progress: bool = True, on_epoch: Callable[[dict[str, Any]], None] | None = None,
        device: str | torch.device | None = "auto", precision: str | None = None,
        log: TensorBoardLog | None = None) -> TrainedRun:
    """Train a model as ``config`` says, writing the run directory ``run_dir``.

    With ``resume=True`` an interrupted run continues from its last checkpoint;
    without it, ``run_dir`` must not already hold a run. ``device`` is resolved
    once (``auto``: a CUDA GPU if there is one); the data moves there once.
    ``precision`` overrides the resolution of ``config.train.precision`` (a
    study passes the precision it was planned with). A resumed run keeps the
    precision it was started with, and says so if this machine would choose
    another. ``log``: a TensorBoard log that each epoch is also written to
    (:mod:`vaelab.training.tblog`).
    """
    run_dir = Path(run_dir)
    _check_can_write(run_dir, config, resume)
    torch_device, resolved = resolve(device, precision or config.train.precision)
    make_deterministic(torch_device)
    data = dataset or load_dataset(config.data.name, data_dir=config.data.data_dir, holdout=config.data.holdout,
                                   seed=config.train.seed, protocol=config.data.protocol)
    # The data moves to the device once; batches are sliced there.
    train_x, test_x = to_tensor(data.train_images).to(torch_device), to_tensor(data.test_images).to(torch_device)
    # the labels reach the objective, which only a conditional model (the CVAE) reads
    train_y, test_y = (torch.from_numpy(y).to(torch_device) for y in (data.train_labels, data.test_labels))
    model = build_model(config.model, config.train.seed, data.image_shape, len(data.class_names)).to(torch_device)
    model.objective.dataset_size = len(train_x)  # e.g. the N of β-TCVAE's minibatch-weighted sampling
    optimizer = make_optimizer(model, config)
    with folder_lock(run_dir):  # one writer per run folder; checked again now that we own it
        _check_can_write(run_dir, config, resume)
        if resume and (run_dir / records.MODEL_JSON).exists():
            check_same_data(records.read_model_json(run_dir).get("dataset") or {}, data, run_dir)
            resolved = keep_recorded_precision(records.read_model_json(run_dir).get("hardware") or {}, resolved,
                                               str(run_dir), "so the run stays consistent")
        history, start_epoch = _restore(run_dir, model, optimizer, config) if resume else ([], 0)
        hardware = resolved.as_dict()
        records.write_model_json(run_dir, config, data.summary(), start_epoch, "running", hardware)
        n_batches = math.ceil(len(train_x) / config.train.batch_size)
        with _progress_bar(progress, config.train.epochs * n_batches, start_epoch * n_batches, run_dir.name) as advance:
            for epoch in range(start_epoch, config.train.epochs):
                started = time.perf_counter()
                if model.objective.begin_epoch(model, epoch, train_x, config.train.seed):
                    optimizer = make_optimizer(model, config)  # a new stage (e.g. VaDE after pre-training)
                train_terms = train_epoch(model, optimizer, train_x, config, epoch, advance, resolved.precision, train_y)
                test_terms = evaluate_loss(model, test_x, config, resolved.precision, test_y)
                if not all(math.isfinite(v) for v in (*train_terms.values(), *test_terms.values())):
                    raise TrainingDiverged(_divergence_message(run_dir, epoch, config))
                row = {"epoch": epoch + 1, **{f"train_{k}": v for k, v in train_terms.items()},
                       **{f"test_{k}": v for k, v in test_terms.items()},
                       "seconds": round(time.perf_counter() - started, 3)}
                history.append(row)
                ckpt.save_checkpoint(run_dir, model, optimizer, epoch + 1, history)
                records.write_model_json(run_dir, config, data.summary(), epoch + 1,
                                      "finished" if epoch + 1 == config.train.epochs else "running", hardware)
                if on_epoch is not None:
                    on_epoch(row)
                if log is not None:
                    log.epoch(model, row)
        if start_epoch >= config.train.epochs:  # resumed a finished run: mark it, change nothing
            records.write_model_json(run_dir, config, data.summary(), start_epoch, "finished", hardware)
    model.eval()
    return TrainedRun(run_dir, config, model, data.summary(), history, hardware)


def _divergence_message(run_dir: Path, epoch: int, config: RunConfig) -> str:
    """What diverged, what is kept, and advice that can be followed."""
    kept = (f"the checkpoint of epoch {epoch} is kept in {run_dir}" if epoch > 0
            else f"no epoch finished, so {run_dir} holds no weights")
    lower = f"--lr below {config.train.lr:g}"
    lower += config.model.divergence_advice()
    return (f"loss became NaN/Inf in epoch {epoch + 1}; {kept}: train again with {lower} (or --precision fp32) "
            f"into another --out, or delete {run_dir} first")


def _check_can_write(run_dir: Path, config: RunConfig, resume: bool) -> None:
    """A new run needs an empty place; a resumed one must be the same run (only epochs may change)."""
    if (run_dir / records.STUDY_YAML).exists():  # a study's runs live in its runs/ folder, never at its root
        raise RunError(f"{run_dir} holds a study (its {records.STUDY_YAML}), not a run: choose another --out")
    has_run = (run_dir / records.MODEL_JSON).exists()
    if has_run and not resume:
        raise RunError(f"{run_dir} already holds a run: pass --resume to continue it, or choose another --out")
    if has_run:
        _check_same_run(run_dir, config)


def _restore(run_dir: Path, model: LatentModel, optimizer: Optimizer,
             config: RunConfig) -> tuple[list[dict[str, Any]], int]:
    """Load the last checkpoint of an interrupted run (if it finished an epoch); its history and epoch."""
    remove_stale_temporaries(run_dir, recursive=False)  # debris of the killed run
    if not (run_dir / records.CHECKPOINT).exists():
        return [], 0
    state = ckpt.load_checkpoint(run_dir)
    try:
        if state.optimizer_state is None:  # without Adam's moments the run would not continue bit for bit
            raise KeyError("optimizer")
        model.load_state_dict(state.model_state)
        optimizer.load_state_dict(state.optimizer_state)
    except (RuntimeError, ValueError, KeyError, TypeError):
        raise RunError(f"{run_dir}: the checkpoint does not match the config in model.json: the run is damaged; "
                       "train again into another --out") from None
    if state.epoch > config.train.epochs:
        raise RunError(f"{run_dir} has trained {state.epoch} epochs already: give --epochs {state.epoch} "
                       "or more to continue it")
    # A kill after the checkpoint's rename may have left these one epoch behind: rederive them.
    ckpt.write_derived(run_dir, model.state_dict(), state.epoch, state.history)
    return state.history, state.epoch


def resume_config(run_dir: str | Path, epochs: int | None = None) -> RunConfig:
    """The saved config of a run, with ``epochs`` changed if given (validated like any config)."""
    saved = records.read_model_json(Path(run_dir))["config"]
    if epochs is None:
        return saved
    return build_config(merge(saved.model_dump(), {"train": {"epochs": epochs}}))


def _check_same_run(run_dir: Path, config: RunConfig) -> None:
    """Resuming continues the saved run: only the number of epochs may differ."""
    saved = flatten(records.read_model_json(run_dir)["config"].model_dump())
    given = flatten(config.model_dump())
    for key, value in saved.items():
        if key != "train.epochs" and given.get(key) != value:
            raise RunError(f"{run_dir} holds a run with {key}={value!r}, not {given.get(key)!r}: resume it with its "
                           "saved config (`vaelab train --resume DIR`, optionally with --epochs), or choose another --out")


@contextlib.contextmanager
def _progress_bar(enabled: bool, total: int, completed: int, label: str):
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("batches"), TimeRemainingColumn())
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task(f"train {label}", total=total, completed=completed)
        yield lambda: bar.advance(task)


def load_run(run_dir: str | Path, device: str | torch.device | None = "auto") -> TrainedRun:
    """Load a trained run directory: config, weights (in eval mode, on ``device``), history.

    Weights are stored as CPU tensors, so a run trained on a GPU loads anywhere.
    """
    run_dir = Path(run_dir)
    info = records.read_model_json(run_dir)
    config = info["config"]
    image_shape = tuple(info["dataset"].get("image_shape", (1, 28, 28)))
    torch_device, _ = resolve(device, "fp32")
    make_deterministic(torch_device)
    model = build_model(config.model, config.train.seed, image_shape, int(info["dataset"].get("n_classes") or 10))
    state, history = ckpt.load_trained_state(run_dir)
    try:
        model.load_state_dict(state)
    except RuntimeError:
        raise RunError(f"{run_dir}: weights do not match the config in model.json: the run is damaged") from None
    model.to(torch_device).eval()
    return TrainedRun(run_dir, config, model, info["dataset"], history, info.get("hardware") or {})
