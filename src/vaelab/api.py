"""The Python API: the one entry point, with the same powers as the CLI (which only parses and prints).

>>> import vaelab
>>> run = vaelab.train("vae", dataset="mnist-5k", epochs=5, out="runs/vae")  # doctest: +SKIP
>>> codes = vaelab.encode(run)                                               # doctest: +SKIP
>>> measures = vaelab.evaluate("runs/vae", groups="separation,knn")          # doctest: +SKIP
>>> print(vaelab.compare(["runs/vae", "runs/ae"]))                           # doctest: +SKIP
>>> results = vaelab.run_study("my-study.yaml", out="studies/mine")          # doctest: +SKIP
>>> results = vaelab.reproduce("results", seeds=3)                           # doctest: +SKIP
>>> vaelab.explore(["studies/variants"]).run()                               # doctest: +SKIP
>>> vaelab.export("runs/vae", "vae-bundle.tar.gz")                           # doctest: +SKIP
>>> run = vaelab.load("vae-bundle.tar.gz")                                   # doctest: +SKIP
"""

from __future__ import annotations

import shutil
from pathlib import Path
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

# The measures, studies, report and explorer are imported where they are used: `vaelab train` and `vaelab.load`
# must not pay for scikit-learn, openTSNE and matplotlib (0.4-0.8 s measured), nor need the explore extra.
from vaelab import bundle, records
from vaelab.analysis import compare as comparison
from vaelab.analysis.classifier import load_or_train_classifier
from vaelab.analysis.encode import Codes, encode_split
from vaelab.analysis.registry import CLASSIFIER_GROUPS
from vaelab.config import RunConfig, build_config, merge, preset, read_yaml, run_options
from vaelab.data.sources import cache_root
from vaelab.errors import ConfigError
from vaelab.io import folder_lock
from vaelab.data.registry import load_dataset
from vaelab.training.tblog import LOG_DIR, PROJECTOR_POINTS, TensorBoardLog, check_log, require_tensorboard
from vaelab.training.trainer import TrainedRun, fit, load_run, resume_config


def make_config(model: str | None = None, *, config_file: str | Path | None = None,
                base: RunConfig | None = None, **options: Any) -> RunConfig:
    """Resolve a run config from ``base``, a preset, a YAML file and keyword options (later wins).

    Keyword options are the leaf names of :class:`~vaelab.config.RunConfig`
    (:func:`~vaelab.config.run_options`: ``dataset``/``data_dir``/``holdout``/``binarize``,
    ``encoder``/``decoder``/``objective``/``beta``/``hidden``/``latent``/``negative_slope``,
    ``epochs``/``batch_size``/``lr``/``seed``/``precision``); None values are ignored.
    """
    values: dict[str, Any] = base.model_dump() if base is not None else {}
    if config_file:
        values = merge(values, read_yaml(config_file))
    if model is not None:
        values = merge(values, {"model": preset(model)})
    overrides: dict[str, dict[str, Any]] = {}
    for name, (section, key, _) in run_options().items():
        value = options.pop(name, None)
        if value is not None:
            overrides.setdefault(section, {})[key] = value
    if options:
        raise TypeError(f"unknown option(s): {', '.join(options)}")
    return build_config(merge(values, overrides))


def train(model: str | None = "vae", *, out: str | Path | None = None, config_file: str | Path | None = None,
          resume: bool = False, progress: bool = False, device: str = "auto", log: str = "none",
          **options: Any) -> TrainedRun:
    """Train a model and write its run directory.

    ``model`` is a preset (``ae``, ``vae``, ``conv-vae``, ``convenc-vae``) or
    None to take the model from ``config_file``/``options``. ``out`` defaults
    to ``runs/<model>-<dataset>-seed<seed>``. ``device``: ``auto`` (a CUDA GPU
    if there is one), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``. With
    ``resume=True`` an existing run continues from its saved config; only
    ``epochs`` may change (any other option that differs is refused).
    ``log="tensorboard"`` also writes the loss terms, image grids and the test
    codes' projector to ``RUN/tensorboard`` (:mod:`vaelab.training.tblog`).
    Returns the :class:`TrainedRun`.
    """
    if resume and out is None:
        raise TypeError("resume=True needs out=, the run directory to continue")
    saved = None
    if resume and out is not None:
        # Another process may own the folder before it has written model.json: say that, not "no model.json"
        with folder_lock(out, create=False):
            saved = resume_config(out)  # a missing or damaged run is a RunError
    config = make_config(model, config_file=config_file, base=saved, **options)
    run_dir = Path(out) if out is not None else default_run_dir(model, config)
    check_log(log)
    if log == "none":
        return fit(config, run_dir, resume=resume, progress=progress, device=device)
    require_tensorboard()  # before any training: one line if the extra is missing
    data = load_dataset(config.data.name, data_dir=config.data.data_dir, holdout=config.data.holdout,
                        seed=config.train.seed, protocol=config.data.protocol)
    board = TensorBoardLog(run_dir / LOG_DIR, data.test_images, data.test_labels, data.class_names,
                           config.train.seed, config.train.epochs)
    try:
        run = fit(config, run_dir, dataset=data, resume=resume, progress=progress, device=device, log=board)
        codes = encode_split(run.model, data.test_images[:PROJECTOR_POINTS], data.test_labels[:PROJECTOR_POINTS])
        board.projector(codes.mean, codes.labels, data.test_images, len(run.history))
    finally:
        board.close()
    return run


def default_run_dir(model: str | None, config: RunConfig) -> Path:
    """``runs/<model>-<dataset>-seed<k>``; an ``idx:PATH`` data set is named after its folder."""

    name = model or f"{config.model.encoder}-{config.model.decoder}-{config.model.objective}"
    return Path("runs") / f"{name}-{records.dataset_slug(config.data.name)}-seed{config.train.seed}"


def load(run_dir: str | Path, device: str = "auto") -> TrainedRun:
    """Load a trained run directory, or a bundle (a folder or ``.tar.gz`` that ``vaelab export`` wrote, checked
    against its checksums first): model in eval mode on ``device``, config, history."""
    if bundle.is_bundle(run_dir):
        run_dir = bundle.open_bundle(run_dir)
    return load_run(run_dir, device)


def export(run_dir: str | Path, out: str | Path) -> Path:
    """Write the bundle of a finished run to ``out`` (a new folder, or a ``.tar.gz`` file): weights, config, data
    set name and fingerprint, measures (with a study's CIs where the run is a study's cell), hardware and a model
    card, each file checksummed; :func:`load` and ``vaelab explore`` open it."""
    return bundle.export(run_dir, out)


def import_bundle(source: str | Path, out: str | Path) -> Path:
    """Check a bundle against its checksums and copy its files into the new run folder ``out``."""
    folder, out = bundle.open_bundle(source), Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out} already exists: give a new folder (or delete it)")
    shutil.copytree(folder, out, dirs_exist_ok=True)
    return out


def encode(run: TrainedRun | str | Path, split: str = "test", device: str = "auto") -> Codes:
    """Encode a split (``test`` or ``train``) of the run's data set: mean, logvar, labels.

    ``device`` applies when ``run`` is a path; a loaded run encodes where its model is.
    """
    if not isinstance(run, TrainedRun):
        run = load_run(run, device)
    data = run.load_data()
    if split == "test":
        return encode_split(run.model, data.test_images, data.test_labels, data.test_factors)
    if split == "train":
        return encode_split(run.model, data.train_images, data.train_labels, data.train_factors)
    raise ValueError(f"split must be 'test' or 'train', not {split!r}")


def evaluate(run_dir: str | Path, groups: str | tuple[str, ...] | None = None, *, iwae_k: int = 1000,
             iwae_examples: int | None = None, device: str = "auto", dci_estimator: str = "boosted",
             factor_points: int | None = None, expost_components: int = 10) -> dict[str, float]:
    """Measure a run's test codes (``groups``: comma-separated or a tuple; None = all) and write
    ``RUN_DIR/measures.json``; return the measures.

    ``dci_estimator`` and ``factor_points`` are the disentanglement metrics' settings
    (:class:`vaelab.config.EvalSettings`): Locatello et al.'s by default; ``expost_components`` the ex-post
    density's (Ghosh et al.'s 10), which the ``expost`` group fits and saves as ``RUN_DIR/expost.npz``.

    The generation and perturbation measures use vaelab's feature classifier, trained
    once per data set and seed into the user cache (rebuilt if the data changed).
    """
    from vaelab.analysis.evaluate import EvalSettings, make_reference, measures_record, parse_groups
    from vaelab.analysis.evaluate import evaluate as run_evaluation

    chosen = parse_groups(groups if groups is None or isinstance(groups, str) else ",".join(groups))
    try:  # before anything loads: a user's value gets one line naming its option, from the API and the CLI
        settings = EvalSettings(iwae_k=iwae_k, iwae_examples=iwae_examples, dci_estimator=dci_estimator,
                                factor_points=factor_points, expost_components=expost_components)
    except ValidationError as error:
        first = error.errors()[0]
        option = "--" + str(first["loc"][0]).replace("_", "-")
        raise ConfigError(f"invalid value for {option}: {first['msg']} (got {first.get('input')!r})") from None
    with folder_lock(run_dir, create=False):  # not while the run trains, nor beside another evaluate
        run = load_run(run_dir, device)
        data = run.load_data()
        seed = run.config.train.seed
        reference = None
        if CLASSIFIER_GROUPS & set(chosen):
            safe = data.name.replace("idx:", "idx-").replace("/", "_")
            folder = cache_root() / records.CLASSIFIERS / f"{safe}-seed{seed}"
            classifier, info = load_or_train_classifier(folder, data, seed, settings.classifier_epochs, run.model.device)
            reference = make_reference(classifier, info, data)
        evaluation = run_evaluation(run.model, data, seed, chosen, settings, reference)
        evaluation.save_density(Path(run_dir))
        records.write_measures(Path(run_dir), measures_record(evaluation, chosen, settings, reference))
    return evaluation.measures


def compare(folders: Sequence[str | Path], format: str = "md") -> str:
    """One table of every measure across study folders and evaluated runs: ``md``, ``csv`` or ``json`` text."""
    if format not in ("md", "csv", "json"):
        raise ConfigError(f"--format must be md, csv or json, not {format!r}")
    return comparison.render(comparison.aggregate(comparison.collect(list(folders))), format)


def run_study(study: str | Path | Any, out: str | Path | None = None, *, executor: str = "local",
              address: str | None = None, cpus_per_cell: int | None = None, gpus_per_cell: float = 0.0,
              device: str = "auto", progress: bool = False, draw_report: bool = True,
              datasets: list[str] | None = None, seeds: int | list[int] | None = None,
              protocol: str | None = None, log: str | None = None) -> dict[str, Any]:
    """Run a study (a YAML file, a built-in study's name, or a :class:`~vaelab.studies.spec.StudySpec`).

    Writes ``out`` (default ``studies/<name>``): runs, results.json, figures and the
    report; returns ``results.json``. Finished cells are reused, interrupted ones
    resume, failed ones are listed under ``failed`` while the others finish.
    ``executor``: ``local`` or ``ray`` (``address``, ``cpus_per_cell``, ``gpus_per_cell``).
    ``datasets``, ``seeds`` (a count or a list) and ``protocol`` (``holdout`` or
    ``transductive``) replace the study file's own; so does ``log`` (``tensorboard``: every cell's log under
    ``out/tensorboard``).
    """
    from vaelab.report.build import build_report
    from vaelab.studies.executors import ExecutorOptions
    from vaelab.studies.spec import StudySpec, load_study
    from vaelab.studies.study import run_study as run

    spec = study if isinstance(study, StudySpec) else load_study(study)
    if datasets or seeds is not None or protocol is not None or log is not None:
        spec = spec.with_overrides(datasets=datasets, seeds=seeds, protocol=protocol, log=log)
    out = Path(out) if out is not None else Path("studies") / spec.name
    options = ExecutorOptions(executor, address, cpus_per_cell, gpus_per_cell)
    # the engine runs the cells and writes results.json; the report is drawn here, inside its lock
    return run(spec, out, executor=options, device=device, progress=progress,
               finish=build_report if draw_report else None)


PROFILES = {"quick": "thesis", "full": "thesis-full"}


def check_whole_number(option: str, value: Any, low: int, high: int) -> None:
    """Refuse, in one line naming the CLI ``option``, a ``value`` that is not an int from ``low`` to ``high``
    (a bool or a string of digits from Python included)."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{option} must be a whole number between {low} and {high}, not {value!r}")


def reproduce(out: str | Path = "results", *, dataset: str | None = None, seeds: int = 3, profile: str = "quick",
              data_dir: str | None = None, progress: bool = False, device: str = "auto",
              **execution: Any) -> dict[str, Any]:
    """Re-run the thesis study into ``out``: the built-in study ``thesis`` (``profile="quick"``) or
    ``thesis-full`` (``"full"``) on ``dataset`` with seeds 0..``seeds``-1; return ``results.json``.

    ``execution``: ``executor``, ``address``, ``cpus_per_cell``, ``gpus_per_cell`` as in :func:`run_study`.
    """
    from vaelab.studies.spec import load_study

    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}: choose quick or full")
    check_whole_number("--seeds", seeds, 1, 100)
    spec = load_study(PROFILES[profile]).with_overrides(datasets=[dataset] if dataset else None, seeds=seeds,
                                                        data_dir=data_dir)
    return run_study(spec, out, progress=progress, device=device, **execution)


def report(out: str | Path) -> Path:
    """Redraw the figures and ``report.html``/``report.md`` of a study folder from what it saved; the HTML's path."""
    from vaelab.report.build import build_report

    with folder_lock(out, create=False):  # never beside a study run (or another report) on the same folder
        build_report(Path(out))
    return Path(out) / records.REPORT_HTML


def explore(folders: Sequence[str | Path], *, host: str = "127.0.0.1", port: int = 0, dataset: str | None = None,
            points: int = 2000) -> Any:
    """Load run folders (or a study folder's runs) into the interactive explorer and bind its server.

    Returns a :class:`~vaelab.explorer.server.Server` listening on ``host:port`` (0: a free port) at
    ``.url``: call ``.run()`` to serve until Ctrl-C, or ``.start()``/``.stop()`` to serve from a thread.
    ``dataset``: which of a study's data sets; ``points``: test images on the map. Needs the
    ``explore`` extra. Nothing is written into the run folders.
    """
    from vaelab.explorer.server import Server, require_stack
    from vaelab.explorer.session import Explorer, find_runs

    require_stack()  # before the models load: a missing extra is said at once
    check_whole_number("--points", points, 10, 20000)
    check_whole_number("--port", port, 0, 65535)
    return Server(Explorer(find_runs(list(folders), dataset), max_points=points), host=host, port=port)
