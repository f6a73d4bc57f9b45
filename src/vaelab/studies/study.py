"""Run a study: plan its cells, run them with an executor, aggregate what the run directories hold.

Layout of a study folder::

    study.yaml      the resolved study file this folder was last run with
    results.json    every measure per data set, model and seed; means with 95% CIs;
                    paired differences; the finding; failed cells (bit-reproducible)
    hardware.json   the device, precision and threads the study runs with
    timings.json    wall time of each job and stage (kept apart from results.json)
    runs/<data set>/<model>-seed<k>/   a cell: weights, checkpoint, config, metrics,
                    measures.json, codes.npz, map.npz (t-SNE), grids.npz (decoded images)
    classifiers/<data set>/seed<k>/    the feature extractor of the generation measures
    figures/<data set>/*.png, report.html, report.md

A cell is finished when its ``measures.json`` matches the study's evaluation
settings; running the study again reuses finished cells, resumes interrupted
ones and redoes failed ones. The aggregate reads only the run directories and
the study file, so it is the same whichever executor ran the cells.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from vaelab import records
from vaelab.analysis import stats
from vaelab.analysis.registry import CLASSIFIER_GROUPS, describe, require_extras
from vaelab.errors import ConfigError
from vaelab.hardware import Resolved, keep_recorded_precision, resolve
from vaelab.io import atomic_write, folder_lock, remove_stale_temporaries, write_json
from vaelab.studies.cells import Cell, Job, measures_current, study_data
from vaelab.studies.executors import ExecutorOptions, make_executor
from vaelab.studies.spec import FindingSpec, StudySpec, load_study
from vaelab.training.tblog import require_tensorboard
from vaelab.version import __version__


def plan(spec: StudySpec) -> list[Cell]:
    """Every cell of the study, data set by data set, seed by seed, model by model."""
    slugs = [records.dataset_slug(name) for name in spec.datasets]
    if len(set(slugs)) != len(slugs):
        raise ConfigError("two data sets of the study share a folder name: give idx: folders distinct names")
    return [Cell(dataset, model, seed, spec.run_config(model, dataset, seed))
            for dataset in spec.datasets for seed in spec.seeds for model in spec.models]


def needs_classifier(spec: StudySpec) -> bool:
    """Whether the study's measures use the feature classifier (generation, perturbation)."""
    return bool(CLASSIFIER_GROUPS & set(spec.measures))


def run_study(spec: StudySpec, out: str | Path, *, executor: ExecutorOptions = ExecutorOptions(),
              device: str = "auto", progress: bool = True,
              finish: Callable[[Path], dict[str, float]] | None = None) -> dict[str, Any]:
    """Run every cell of ``spec`` into ``out`` and return the content of ``results.json``.

    Cells already finished with the same identity and evaluation settings are
    reused; interrupted ones resume; failed ones are listed under ``failed``
    (the others still finish). ``executor``: where the cells run (local, or a
    Ray cluster). ``finish(out)`` runs last, still holding the study folder's
    lock (the API draws the report there; its stage timings join ``timings.json``).
    """
    root = Path(out)
    _refuse_another_study(root, spec)
    cells = plan(spec)
    if not executor.address:  # a cluster's workers may have other files and packages than this machine
        require_extras(spec.measures)  # an optional package a measure group needs: one line before anything trains
        if spec.log == "tensorboard":
            require_tensorboard()
        _check_data_loads(spec)
    runner = make_executor(executor)
    try:
        resolved = _resolve(executor.cell_device(device), spec.precision, defer=executor.defers_device())
        with folder_lock(root):  # one driver per study folder
            remove_stale_temporaries(root)  # debris of a killed earlier run
            resolved = study_hardware(root, resolved, runner.threads)
            atomic_write(root / records.STUDY_YAML, spec.to_yaml())
            jobs = _jobs(spec, cells, root, resolved, runner.threads)
            timings: dict[str, float] = {}
            with StudyProgress(progress, jobs, runner.name == "local") as bar:
                outcomes = []
                for stage in ("classifier", "cell"):  # classifiers first: cells of a seed share one
                    outcomes += runner.run([job for job in jobs if job.kind == stage], bar)
                for outcome in outcomes:
                    timings[outcome["job"]] = outcome["seconds"]
                    timings.update({f"{outcome['job']}/{k}": v for k, v in outcome["timings"].items()})
                started = time.perf_counter()
                failed = [{"job": o["job"], "error": o["error"]} for o in outcomes if not o["ok"]]
                results = aggregate(spec, cells, root, resolved, runner.threads, failed)
                records.write_results(root, results)
                timings["aggregate"] = time.perf_counter() - started
                if finish is not None:
                    bar.describe("figures and report")
                    timings.update(finish(root))
            write_json(root / records.TIMINGS_JSON, {k: round(v, 4) for k, v in timings.items()})
    finally:
        runner.close()
    return results


# read by the report only, or where the logs go: changing them does not make a study another
PRESENTATION = {"title", "description", "comparisons", "finding", "reference", "panels", "log"}
# Each cell is one seed's: more seeds add cells beside the finished ones (reused, not redone), fewer leave the
# others on disk and out of the results. So a study with other seeds is the same study, grown or shrunk.
SAME_STUDY_ASIDE = PRESENTATION | {"seeds"}


def _refuse_another_study(root: Path, spec: StudySpec) -> None:
    """A folder holding another study (another name, or other data, models, training or measures) is never written
    over: refused in one line before anything is written. The same study resumes there, with the same seeds or
    others (:data:`SAME_STUDY_ASIDE`)."""
    if records.is_run_folder(root):
        raise ConfigError(f"{root} holds a training run (its {records.MODEL_JSON}), not a study: give another --out")
    recorded = root / records.STUDY_YAML
    if not recorded.is_file():
        return
    try:
        before = load_study(recorded)
    except ConfigError:  # a damaged study.yaml: the folder is repaired (rewritten) as before
        return
    # compared as read, so that settings added since (with their defaults) do not make a study another; what
    # only the report reads (title, comparisons, ...) may change: the next run redraws it from the same cells
    if before.model_dump(exclude=SAME_STUDY_ASIDE) != spec.model_dump(exclude=SAME_STUDY_ASIDE):
        raise ConfigError(f"{root} holds another study (its study.yaml differs from {spec.name!r} as given): "
                          "give another --out, or delete that folder to start over")


def _check_data_loads(spec: StudySpec) -> None:
    """Load each data set (its first seed's split) before anything is written, so that a damaged or missing file is
    one line, not one identical failure per job. Cells run here reuse this load (one per process); on a cluster
    at ``--address`` it is skipped: its workers may see data files this machine does not."""
    for dataset in spec.datasets:
        study_data(dataset, spec.data_dir, spec.seeds[0], spec.protocol)


def _resolve(device: str, precision: str, defer: bool) -> Resolved:
    if defer:  # GPU cells on Ray workers: each worker resolves `auto` for its own GPU
        _, resolved = resolve("cpu", "fp32")
        return Resolved(device="cuda", precision=precision, cpu_capability=resolved.cpu_capability,
                        torch=resolved.torch)
    return resolve(device, precision)[1]


def study_hardware(root: Path, resolved: Resolved, threads: int) -> Resolved:
    """The device and precision of a study: recorded in ``hardware.json`` when it starts.

    A study resumed on a machine that resolves ``auto`` to another precision
    keeps the one it started with (its runs stay comparable) and says so.
    """
    recorded = records.read_hardware(root)
    if recorded is not None:
        resolved = keep_recorded_precision(recorded, resolved, str(root),
                                           f"so that its runs stay comparable (use another --out to start over "
                                           f"in {resolved.precision})")
    records.write_hardware(root, {**resolved.as_dict(), "threads_per_cell": threads})
    return resolved


def _jobs(spec: StudySpec, cells: list[Cell], root: Path, resolved: Resolved, threads: int) -> list[Job]:
    common: dict[str, Any] = dict(root=str(root), data_dir=spec.data_dir, protocol=spec.protocol, log=spec.log,
                  settings=spec.evaluation.model_dump(mode="json"),
                  device=resolved.device, precision=resolved.precision, threads=threads)
    jobs = []
    if needs_classifier(spec):
        for dataset in spec.datasets:
            for seed in spec.seeds:
                jobs.append(Job(dataset=dataset, seed=seed, **common))
    for cell in cells:
        jobs.append(Job(dataset=cell.dataset, seed=cell.seed, cell=cell, groups=tuple(spec.measures),
                        **common))
    return jobs


def aggregate(spec: StudySpec, cells: list[Cell], root: Path, hardware: Resolved, threads: int,
              failed: list[dict[str, Any]]) -> dict[str, Any]:
    """``results.json`` from the run directories: per seed, means with 95% CIs, paired differences, finding."""
    datasets = {}
    settings = spec.evaluation.model_dump(mode="json")
    for dataset in spec.datasets:
        per_seed: dict[str, dict[str, dict[str, float]]] = {model: {} for model in spec.models}
        runs: dict[str, dict[str, str]] = {model: {} for model in spec.models}
        classifiers: dict[str, dict] = {}
        contents: set[str] = set()  # the data the cells were trained on, whatever its split (see reference)
        for cell in (c for c in cells if c.dataset == dataset):
            run_dir = cell.run_dir(root)
            runs[cell.model][str(cell.seed)] = run_dir.relative_to(root).as_posix()
            saved = measures_current(run_dir, cell.config, settings, tuple(spec.measures))
            if saved is None:  # failed (listed under "failed"); the others are aggregated without it
                if not any(f["job"] == cell.name for f in failed):  # finished, yet its measures do not read back
                    failed.append({"job": cell.name, "error": f"{run_dir.relative_to(root)}: its measures.json, model.json "
                                                         "or saved codes do not match this cell: run the study "
                                                         "again to redo it"})
                continue
            per_seed[cell.model][str(cell.seed)] = saved["measures"]
            content = records.read_model_json(run_dir).get("dataset", {}).get("content")
            if isinstance(content, str):
                contents.add(content)
            if saved.get("classifier") is not None:
                classifiers.setdefault(str(cell.seed), saved["classifier"])
        table = {model: _mean_cis(seeds, spec.seeds) for model, seeds in per_seed.items()}
        paired = {comparison.key(measure): _paired(per_seed, comparison.a, comparison.b, measure, spec.seeds)
                  for comparison in spec.comparisons for measure in comparison.measures}
        datasets[dataset] = {
            "per_seed": per_seed,
            "aggregate": table,
            "paired": paired,
            "classifier": dict(sorted(classifiers.items(), key=lambda item: int(item[0]))),
            **findings(spec, table, per_seed),
            "runs": runs,
            "contents": sorted(contents),
        }
    return {
        "vaelab_version": __version__,
        "study": summary(spec),
        "hardware": {**hardware.as_dict(), "threads_per_cell": threads},
        "datasets": datasets,
        "failed": failed,
    }


def _paired(per_seed: dict, a: str, b: str, measure: str, seeds: list[int]) -> dict:
    """The paired difference a - b of ``measure`` over the seeds both models have."""
    values_a, values_b = ([per_seed[side].get(str(s), {}).get(measure) for s in seeds] for side in (a, b))
    return stats.paired_difference(values_a, values_b)


def _mean_cis(seeds: dict[str, dict[str, float]], order: list[int]) -> dict[str, dict]:
    names = sorted({name for values in seeds.values() for name in values})
    present = [str(s) for s in order if str(s) in seeds]
    return {name: stats.mean_ci([seeds[s].get(name) for s in present]) for name in names}


def summary(spec: StudySpec) -> dict[str, Any]:
    """The study as stored in ``results.json``: its settings and each model's resolved config (first seed)."""
    models = {}
    for key, model in spec.models.items():
        config = spec.run_config(key, spec.datasets[0], spec.seeds[0]).model_dump(mode="json")
        models[key] = {"label": spec.label(key), "preset": model.preset,
                       "model": config["model"], "train": {k: v for k, v in config["train"].items() if k != "seed"},
                       "data": {k: v for k, v in config["data"].items() if k not in ("name", "data_dir")}}
    values = spec.model_dump(mode="json")
    return {
        "name": spec.name, "title": spec.title, "description": spec.description,
        "datasets": spec.datasets, "protocol": spec.protocol, "seeds": spec.seeds, "models": models,
        "evaluation": values["evaluation"], "measures": spec.measures,
        "comparisons": values["comparisons"], "finding": values["finding"], "reference": values["reference"],
        "panels": spec.panels,
    }


def findings(spec: StudySpec, table: dict[str, dict[str, dict]], per_seed: dict) -> dict[str, Any]:
    """The study's questions answered: ``finding``, the first (the headline; None without a ``finding:`` or its
    numbers), and ``further_findings``, the sentences of the others that have their numbers."""
    sentences = [finding(spec, question, table, per_seed) for question in spec.finding]
    return {"finding": sentences[0] if sentences else None,
            "further_findings": [sentence for sentence in sentences[1:] if sentence]}


def finding(spec: StudySpec, question: FindingSpec, table: dict[str, dict[str, dict]], per_seed: dict) -> str | None:
    """One of the study's questions answered in one sentence (None without its numbers)."""
    if question.a is None:  # "which model is best by the measure?", against b
        return best_model_sentence(spec, question, table, per_seed)
    a_cell, b_cell = table[question.a].get(question.measure), table[question.b].get(question.measure)
    if not a_cell or not b_cell or a_cell["mean"] is None or b_cell["mean"] is None:
        return None
    difference = _paired(per_seed, question.a, question.b, question.measure, spec.seeds)
    return finding_sentence(question, a_cell["mean"], b_cell["mean"], difference)


def best_model_sentence(spec: StudySpec, question: FindingSpec, table: dict[str, dict[str, dict]],
                        per_seed: dict) -> str | None:
    """Which model has the best mean ``measure`` (its direction from the measure's description), and its
    paired difference against the finding's ``b``; the runner-up is named when it is within the noise."""
    measure, b = question.measure, question.b
    sign = describe(measure)[1] or 1
    means = {model: cells[measure]["mean"] for model, cells in table.items()
             if cells.get(measure) and cells[measure]["mean"] is not None}
    if b not in means or len(means) < 2:
        return None
    ranked = sorted(means, key=lambda model: sign * means[model], reverse=True)
    best = ranked[0]
    what = "highest" if sign > 0 else "lowest"
    sentence = f"{spec.label(best)} has the {what} {measure} of the {len(means)} models ({means[best]:.4f}"
    if best != b:  # the best is the reference itself: nothing to set against it
        sentence += f" against {means[b]:.4f} for {spec.label(b)}"
        difference = _paired(per_seed, best, b, measure, spec.seeds)
        if difference["mean"] is not None:
            ci = f" ± {difference['ci']:.4f}, 95% CI over seeds" if difference["ci"] is not None else ""
            sentence += f"; paired {best} - {b} = {difference['mean']:+.4f}{ci}"
    sentence += ")"
    runner_up = _paired(per_seed, best, ranked[1], measure, spec.seeds)
    if runner_up["ci"] is not None and runner_up["mean"] is not None and abs(runner_up["mean"]) <= runner_up["ci"]:
        sentence += f"; {spec.label(ranked[1])} is within the seeds' noise of it"
    return sentence + "."


def finding_sentence(question, a_mean: float, b_mean: float, difference: dict) -> str:
    """The verdict on ``a - b``: above zero, below zero, or within the seeds' noise (with one seed: no interval)."""
    a, b, measure = question.a, question.b, question.measure
    mean, ci = difference["mean"], difference["ci"]
    interval = f"{a} - {b} = {mean:+.4f}" + (f" ± {ci:.4f}, 95% CI over seeds" if ci is not None else "")
    if ci is None:
        verdict = (f"With one seed the comparison has no interval: {a}'s {measure} is "
                   + ("higher" if a_mean > b_mean else "lower") + f" than {b}'s")
    elif mean - ci > 0:
        verdict = question.higher or f"{a}'s {measure} is higher than {b}'s, beyond the seeds' noise"
    elif mean + ci < 0:
        verdict = question.lower or f"{a}'s {measure} is lower than {b}'s, beyond the seeds' noise"
    else:
        verdict = question.within_noise or f"{a} and {b} do not differ in {measure} beyond the seeds' noise"
    return f"{verdict} ({measure} {a_mean:.4f} vs {b_mean:.4f}; paired {interval})."


class StudyProgress:
    """One rich display for the whole study: cells done, running and failed; epochs of the running cell."""

    def __init__(self, enabled: bool, jobs: list[Job], epochs: bool):
        self.enabled = enabled
        self.total = len(jobs)
        self.total_epochs = sum(job.cell.config.train.epochs for job in jobs if job.cell is not None) if epochs else 0
        self.running: list[str] = []
        self.failed = 0
        self.done = 0

    def __enter__(self):
        if self.enabled:
            self.bar = Progress(TextColumn("{task.description:<34}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn())
            self.bar.__enter__()
            self.jobs_task = self.bar.add_task("jobs (classifiers and cells)", total=self.total)
            if self.total_epochs:
                self.epochs_task = self.bar.add_task("epochs", total=self.total_epochs)
            self.status = self.bar.add_task("", total=None)
        return self

    def __exit__(self, *exc):
        if self.enabled:
            if exc[0] is None:
                self.bar.update(self.status, description=f"done ({self.failed} failed)", total=1, completed=1)
            else:  # Ctrl-C or an error: the display must not claim the study is done
                self.bar.update(self.status, description="stopped: finished cells are saved")
            self.bar.__exit__(*exc)

    def describe(self, text: str) -> None:
        """Show what is happening now."""
        if self.enabled:
            self.bar.update(self.status, description=text)

    def _show(self) -> None:
        running = ", ".join(self.running[:2]) + (f" +{len(self.running) - 2}" if len(self.running) > 2 else "")
        self.describe(f"running {running}" + (f"; {self.failed} failed" if self.failed else ""))

    def started(self, job: Job) -> None:
        """A job was started (or submitted)."""
        self.running.append(job.name)
        if self.enabled:
            self._show()

    def finished(self, job: Job, outcome: dict[str, Any]) -> None:
        """A job ended; failures are counted (and printed above the bar)."""
        self.running.remove(job.name)
        self.done += 1
        if not outcome["ok"]:
            self.failed += 1
        if self.enabled:
            self.bar.advance(self.jobs_task)
            if not outcome["ok"]:
                self.bar.console.print(f"failed: {job.name}: {outcome['error']}")
            if self.total_epochs and job.cell is not None and outcome.get("reused"):
                self.bar.advance(self.epochs_task, job.cell.config.train.epochs)
            self._show()

    def epoch_done(self, row: dict) -> None:
        """One epoch of the running cell finished (local executor only)."""
        if self.enabled and self.total_epochs:
            self.bar.advance(self.epochs_task)
