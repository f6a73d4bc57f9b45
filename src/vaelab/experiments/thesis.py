"""The thesis study end to end: ``vaelab reproduce``.

Trains the study's models for every seed (AE and VAE share the decoder's
initial weights, the batch order and the prior draws), evaluates every measure
on the test split, aggregates over seeds with 95% confidence intervals, and
writes ``results.json``. Figures and the report are drawn by
:mod:`vaelab.report` from what is saved, so ``vaelab report`` can redraw them
without training.

Layout of the output folder::

    results.json    every measure per model per seed, aggregates, paired differences
    timings.json    wall time of each stage (kept apart: results.json is bit-reproducible)
    runs/<model>-seed<k>/       run directories (weights, config, metrics, measures.json)
    codes/<model>-seed<k>.npz   test codes: mean, logvar (VAEs), labels
    maps/<model>-seed<k>.npz    t-SNE map and the indices of the codes it shows
    classifiers/seed<k>/        the feature extractor for generation measures
    figures/*.png, report.html, report.md
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from vaelab import __version__
from vaelab.analysis import stats
from vaelab.analysis.classifier import load_or_train_classifier
from vaelab.analysis.evaluate import GROUPS, EvalSettings, evaluate, make_reference, read_measures, write_measures
from vaelab.config import RunConfig, build_config, preset
from vaelab.data.registry import Dataset, check_same_data, load_dataset
from vaelab.errors import ConfigError, RunError
from vaelab.hardware import Resolved, keep_recorded_precision, make_deterministic, resolve
from vaelab.io import folder_lock, read_json, remove_stale_temporaries, write_json, write_npz
from vaelab.training import checkpoint as ckpt
from vaelab.training.trainer import fit, load_run

# The study's models (experiments 1-7) and the encoder-only improvement (experiment 8).
MODELS: dict[str, str] = {
    "ae": "AE (MLP)",
    "vae": "VAE (MLP)",
    "conv-vae": "Conv VAE",
    "convenc-vae": "Conv-encoder VAE (MLP decoder)",
}
THESIS_TABLE_4_2 = {"ae": 0.1475, "vae": 0.1117, "conv-vae": 0.1182}


@dataclass
class Profile:
    """How much work a reproduction does: per-model training settings and the evaluation's budget."""

    name: str
    dataset: str
    train: dict[str, dict[str, Any]]  # per model: epochs, batch_size and (optionally) lr
    evaluation: EvalSettings
    precision: str = "auto"
    description: str = ""


PROFILES: dict[str, Profile] = {
    "quick": Profile(
        name="quick",
        dataset="mnist-5k",
        # Chosen by measurement to fit 3 minutes on a 2-core AVX2 CPU (README, "The profiles"):
        # - MLPs: batch 256 with lr 3e-3 reached nearly the test BCE of batch 64 with lr 1e-3 after
        #   15 epochs (VAE 100.5 against 99.1) in half the time: 2 cores do big batches better.
        # - Conv models: one epoch at batch 16 (250 updates) reached a test BCE of 141 where three
        #   epochs at batch 64 (the previous profile) reached 135 at three times the cost; a conv
        #   step costs nearly the same per image at batch 16 as at 64, so small batches buy updates.
        train={"ae": {"epochs": 15, "batch_size": 256, "lr": 3e-3},
               "vae": {"epochs": 15, "batch_size": 256, "lr": 3e-3},
               "conv-vae": {"epochs": 1, "batch_size": 16},
               "convenc-vae": {"epochs": 1, "batch_size": 16}},
        # Evaluation: t-SNE on 600 codes costs 0.5 s against 1.2 s on 1,000 (trustworthiness 0.981
        # against 0.984); IWAE with k = 16 on 100 images; perturbation on 500 test codes.
        evaluation=EvalSettings(iwae_k=16, iwae_examples=100, generation_samples=1000, tsne_points=600,
                                tsne_iterations=300, classifier_epochs=3, sigmas=(0.0, 0.5, 1.0, 2.0),
                                perturbation_examples=500),
        description="about 2 minutes on 2 CPU cores: short training on the 5,000 embedded digits",
    ),
    "full": Profile(
        name="full",
        dataset="mnist",
        train={"ae": {"epochs": 50}, "vae": {"epochs": 50}, "conv-vae": {"epochs": 20}, "convenc-vae": {"epochs": 20}},
        evaluation=EvalSettings(iwae_k=1000, iwae_examples=1000, generation_samples=5000, tsne_points=5000,
                                classifier_epochs=8),
        description="thesis-scale training on a full 70,000-image data set (an hour or more per seed on 2 CPU cores)",
    ),
}


@dataclass
class StudyPaths:
    """Where each artefact of a study lives."""

    root: Path

    def run(self, model: str, seed: int) -> Path:
        """The run directory of a model and seed."""
        return self.root / "runs" / f"{model}-seed{seed}"

    def codes(self, model: str, seed: int) -> Path:
        """The NPZ of a run's test codes."""
        return self.root / "codes" / f"{model}-seed{seed}.npz"

    def map(self, model: str, seed: int) -> Path:
        """The NPZ of a run's t-SNE map."""
        return self.root / "maps" / f"{model}-seed{seed}.npz"

    def classifier(self, seed: int) -> Path:
        """The feature-extractor classifier of a seed."""
        return self.root / "classifiers" / f"seed{seed}"

    @property
    def results(self) -> Path:
        """``results.json``."""
        return self.root / "results.json"

    @property
    def hardware(self) -> Path:
        """``hardware.json``: the device and precision the study runs with."""
        return self.root / "hardware.json"

    @property
    def timings(self) -> Path:
        """``timings.json``."""
        return self.root / "timings.json"

    @property
    def figures(self) -> Path:
        """The folder of PNG figures."""
        return self.root / "figures"


@dataclass
class StudyPlan:
    """A resolved study: data set, seeds, models and their configs."""

    dataset: str
    seeds: list[int]
    profile: Profile
    models: dict[str, RunConfig] = field(default_factory=dict)
    data_dir: str | None = None

    def summary(self) -> dict[str, Any]:
        """The plan as stored in ``results.json`` under ``study``."""
        return {
            "dataset": self.dataset,
            "profile": self.profile.name,
            "seeds": self.seeds,
            "models": {key: {"label": MODELS[key], "config": cfg.model_dump()} for key, cfg in self.models.items()},
            "evaluation": asdict(self.profile.evaluation),
        }


def plan_study(dataset: str | None = None, seeds: int = 3, profile: str = "quick",
               data_dir: str | None = None, epochs_scale: float = 1.0) -> StudyPlan:
    """Resolve the study's settings; ``epochs_scale`` shortens or lengthens training (tests use it)."""
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}: choose quick or full")
    if not 1 <= seeds <= 100:
        raise ConfigError(f"--seeds must be between 1 and 100, not {seeds}")
    chosen = PROFILES[profile]
    plan = StudyPlan(dataset or chosen.dataset, list(range(seeds)), chosen, data_dir=data_dir)
    for key in MODELS:  # seed 0 here; each seed's run gets its own (config_for_seed)
        train = dict(chosen.train[key])
        train["epochs"] = max(1, round(train["epochs"] * epochs_scale))
        plan.models[key] = build_config({
            "data": {"name": plan.dataset, "data_dir": data_dir},
            "model": preset(key),
            "train": {**train, "seed": 0, "precision": chosen.precision},
        })
    return plan


def config_for_seed(config: RunConfig, seed: int) -> RunConfig:
    """The same config with another seed."""
    return config.model_copy(update={"train": config.train.model_copy(update={"seed": seed})})


def train_or_reuse(config: RunConfig, run_dir: Path, data: Dataset, on_epoch: Callable | None,
                   device: torch.device, precision: str):
    """Reuse a finished run with the same config, resume an interrupted one, or train it."""
    common = dict(dataset=data, progress=False, on_epoch=on_epoch, device=device, precision=precision)
    if (run_dir / ckpt.MODEL_JSON).is_file():
        info = ckpt.read_model_json(run_dir)
        if info["config"] != config:
            raise RunError(f"{run_dir} holds a run with another config: use another --out, or delete that folder")
        check_same_data(info.get("dataset") or {}, data, run_dir)
        if info["status"] == "finished":
            return load_run(run_dir, device), True
        return fit(config, run_dir, resume=True, **common), False
    return fit(config, run_dir, **common), False


def study_hardware(paths: "StudyPaths", resolved: Resolved) -> Resolved:
    """The device and precision of a study: recorded in ``hardware.json`` when it starts.

    A study resumed on a machine that resolves ``auto`` to another precision
    keeps the one it started with (its runs stay comparable) and says so.
    """
    if paths.hardware.is_file():
        resolved = keep_recorded_precision(read_json(paths.hardware), resolved, str(paths.root),
                                           f"so that its runs stay comparable (use another --out to start over "
                                           f"in {resolved.precision})")
    write_json(paths.hardware, resolved.as_dict())
    return resolved


def current_measures(run_dir: Path, paths: StudyPaths, model: str, seed: int,
                     settings: EvalSettings) -> dict[str, float] | None:
    """A run's saved measures if they were made with these settings and its codes and map exist, else None."""
    saved = read_measures(run_dir)
    current = (saved is not None and saved.get("settings") == _jsonable(asdict(settings))
               and saved.get("groups") == list(GROUPS)
               and paths.codes(model, seed).is_file() and paths.map(model, seed).is_file())
    return saved["measures"] if current else None


def _jsonable(obj):
    import json

    return json.loads(json.dumps(obj))


def reproduce(out: str | Path, *, dataset: str | None = None, seeds: int = 3, profile: str = "quick",
              data_dir: str | None = None, progress: bool = True, epochs_scale: float = 1.0,
              draw_report: bool = True, device: str | torch.device | None = "auto") -> dict[str, Any]:
    """Run the whole study into ``out`` and return the content of ``results.json``.

    ``device`` and the profile's precision (``auto``) are resolved once, here,
    and recorded in ``hardware.json`` and ``results.json``.
    """
    plan = plan_study(dataset, seeds, profile, data_dir, epochs_scale)
    paths = StudyPaths(Path(out))
    torch_device, resolved = resolve(device, plan.profile.precision)
    with folder_lock(paths.root):  # one writer per study folder
        return _run_study(plan, paths, torch_device, resolved, progress, draw_report)


def _run_study(plan: StudyPlan, paths: StudyPaths, torch_device: torch.device, resolved: Resolved,
               progress: bool, draw_report: bool) -> dict[str, Any]:
    remove_stale_temporaries(paths.root)  # debris of a killed earlier run
    resolved = study_hardware(paths, resolved)
    make_deterministic(torch_device)
    timings: dict[str, float] = {}
    per_seed: dict[str, dict[str, dict[str, float]]] = {key: {} for key in plan.models}
    classifiers: dict[str, dict] = {}
    settings = plan.profile.evaluation

    with _StudyProgress(progress, plan) as bar:
        for seed in plan.seeds:
            started = time.perf_counter()
            data = load_dataset(plan.dataset, data_dir=plan.data_dir, seed=seed)
            timings[f"data/seed{seed}"] = time.perf_counter() - started
            runs = {}
            for key, base in plan.models.items():
                started = time.perf_counter()
                bar.describe(f"train {key} seed {seed}")
                run, reused = train_or_reuse(config_for_seed(base, seed), paths.run(key, seed), data, bar.epoch_done,
                                             torch_device, resolved.precision)
                if reused:
                    bar.skip_epochs(base.train.epochs)
                runs[key] = run
                timings[f"train/{key}/seed{seed}"] = time.perf_counter() - started
            started = time.perf_counter()
            bar.describe(f"classifier seed {seed}")
            classifier, info = load_or_train_classifier(paths.classifier(seed), data, seed, settings.classifier_epochs,
                                                        torch_device)
            reference = make_reference(classifier, info, data)
            classifiers[str(seed)] = info
            timings[f"classifier/seed{seed}"] = time.perf_counter() - started
            for key, run in runs.items():
                started = time.perf_counter()
                bar.describe(f"measure {key} seed {seed}")
                run_dir = paths.run(key, seed)
                measured = current_measures(run_dir, paths, key, seed, settings)
                if measured is None:
                    evaluation = evaluate(run.model, data, seed, GROUPS, settings, reference)
                    evaluation.test_codes.save(paths.codes(key, seed))
                    write_npz(paths.map(key, seed), tsne=evaluation.tsne, index=evaluation.tsne_index)
                    record = write_measures(run_dir, evaluation, GROUPS, settings, reference)
                    for name, seconds in record["timings"].items():
                        timings[f"measure/{name}/{key}/seed{seed}"] = seconds
                    measured = _jsonable(record["measures"])  # as read back from JSON on a reuse
                per_seed[key][str(seed)] = measured
                timings[f"evaluate/{key}/seed{seed}"] = time.perf_counter() - started
                bar.advance_eval()

        started = time.perf_counter()
        results = aggregate(plan, per_seed, classifiers, resolved)
        write_json(paths.results, results)
        timings["aggregate"] = time.perf_counter() - started
        if draw_report:
            from vaelab.report.build import build_report

            bar.describe("figures and report")
            timings.update(build_report(paths.root))
    write_json(paths.timings, {k: round(v, 4) for k, v in timings.items()})
    return results


def aggregate(plan: StudyPlan, per_seed: dict[str, dict[str, dict[str, float]]],
              classifiers: dict[str, dict], hardware: Resolved) -> dict[str, Any]:
    """Means with 95% CIs over seeds, the paired AE - VAE differences, and the thesis's table beside."""
    aggregate_table: dict[str, dict[str, dict]] = {}
    for key, seeds in per_seed.items():
        names = sorted({name for values in seeds.values() for name in values})
        aggregate_table[key] = {name: stats.mean_ci([seeds[s].get(name) for s in sorted(seeds)]) for name in names}
    seed_keys = [str(s) for s in plan.seeds]
    paired = {}
    for measure in ("silhouette", "knn5_accuracy", "linear_probe_accuracy", "recon_bce", "prior_fd"):
        paired[f"{measure}:ae-vae"] = stats.paired_difference(
            [per_seed["ae"][s].get(measure) for s in seed_keys], [per_seed["vae"][s].get(measure) for s in seed_keys])
    paired["silhouette:conv-vae-vae"] = stats.paired_difference(
        [per_seed["conv-vae"][s]["silhouette"] for s in seed_keys], [per_seed["vae"][s]["silhouette"] for s in seed_keys])
    return {
        "vaelab_version": __version__,
        "study": plan.summary(),
        "hardware": hardware.as_dict(),
        "per_seed": per_seed,
        "aggregate": aggregate_table,
        "paired": paired,
        "classifier": classifiers,
        "thesis_table_4_2": THESIS_TABLE_4_2,
        "finding": finding(aggregate_table, paired["silhouette:ae-vae"]),
    }


def finding(table: dict[str, dict[str, dict]], difference: dict) -> str:
    """One sentence: does the thesis's finding (the VAE does not separate classes better than the AE) hold?"""
    ae, vae = table["ae"]["silhouette"]["mean"], table["vae"]["silhouette"]["mean"]
    mean, ci = difference["mean"], difference["ci"]
    interval = f"AE - VAE = {mean:+.4f}" + (f" ± {ci:.4f}, 95% CI over seeds" if ci is not None else "")
    if ci is not None and mean - ci > 0:
        verdict = "The thesis's finding holds: the AE's codes separate the classes better than the VAE's"
    elif ci is not None and mean + ci < 0:
        verdict = "The thesis's finding does not hold here: the VAE's codes separate the classes better than the AE's"
    elif ci is None:
        verdict = ("With one seed the comparison has no interval: the AE's silhouette is "
                   + ("higher" if ae > vae else "lower") + " than the VAE's")
    else:
        verdict = ("The thesis's finding holds in its weaker form: the VAE does not separate the classes "
                   "better than the AE (the difference is within the seeds' noise)")
    return f"{verdict} (silhouette {ae:.4f} vs {vae:.4f}; paired {interval})."


class _StudyProgress:
    """One rich progress display for the whole study (training epochs and evaluations)."""

    def __init__(self, enabled: bool, plan: StudyPlan):
        self.enabled = enabled
        self.total_epochs = sum(cfg.train.epochs for cfg in plan.models.values()) * len(plan.seeds)
        self.total_evals = len(plan.models) * len(plan.seeds)

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn())
            self.bar.__enter__()
            self.train_task = self.bar.add_task("train", total=self.total_epochs)
            self.eval_task = self.bar.add_task("measure", total=self.total_evals)
            self.status = self.bar.add_task("", total=None)
        return self

    def __exit__(self, *exc):
        if self.enabled:
            self.bar.update(self.status, description="done", total=1, completed=1)
            self.bar.__exit__(*exc)

    def describe(self, text: str) -> None:
        if self.enabled:
            self.bar.update(self.status, description=text)

    def epoch_done(self, row: dict) -> None:
        if self.enabled:
            self.bar.advance(self.train_task)

    def skip_epochs(self, n: int) -> None:
        if self.enabled:
            self.bar.advance(self.train_task, n)

    def advance_eval(self) -> None:
        if self.enabled:
            self.bar.advance(self.eval_task)


def load_results(out: str | Path) -> dict[str, Any]:
    """Read ``results.json`` of a study folder."""
    path = StudyPaths(Path(out)).results
    if not path.is_file():
        raise RunError(f"{out}: no results.json: run `vaelab reproduce --out {out}` first")
    return read_json(path)
