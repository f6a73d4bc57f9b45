"""The ``vaelab`` command line: thin wrappers that parse, call the API and print.

User errors (:class:`~vaelab.errors.VaelabError`) end with one line on stderr
and exit status 2; no traceback.
"""

from __future__ import annotations

import inspect
import sys
import types
from pathlib import Path
from typing import Optional

import typer

from vaelab.analysis.registry import GROUPS as MEASURE_GROUPS
from vaelab.errors import ConfigError, VaelabError
from vaelab.version import __version__

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Train auto-encoders and VAEs and measure what their latent spaces learn.",
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"vaelab {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_show_version, is_eager=True,
                                        help="print the version and exit")) -> None:
    """Train auto-encoders and VAEs and measure what their latent spaces learn."""


def _console():
    from rich.console import Console

    # Wide enough that tables don't wrap when output goes to a file or pipe (rich then assumes 80).
    return Console(width=max(Console().width, 132))


def fail(message: str) -> None:
    """Print a one-line error and exit with status 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


DEVICE_OPTION = typer.Option("auto", "--device", help="auto (a CUDA GPU if there is one, else the CPU), cpu, "
                                                     "cuda, cuda:N or mps")


@app.command()
def info() -> None:
    """What this machine offers: torch, devices, CPU capability, what `auto` resolves to, threads, data sets."""
    from vaelab.data.registry import list_datasets
    from vaelab.hardware import info as hardware_info

    facts = hardware_info()
    lines = [
        ("vaelab", __version__),
        ("torch", facts["torch"]),
        ("cpu capability", f"{facts['cpu_capability']} (native bf16: {'yes' if facts['cpu_native_bf16'] else 'no'})"),
        ("cuda devices", ", ".join(facts["cuda_devices"]) or "none"),
        ("mps", "yes" if facts["mps"] else "no"),
        ("device auto", facts["auto_device"]),
        ("precision auto", facts["auto_precision"]),
        ("threads", f"{facts['threads']} (of {facts['cpu_count']} logical CPUs)"),
    ]
    for key, value in lines:
        typer.echo(f"{key:<16}{value}")
    typer.echo("data sets")
    for row in list_datasets():
        typer.echo(f"  {row['name']:<14}{row['available']}")


@app.command()
def datasets(data_dir: Optional[str] = typer.Option(None, "--data-dir", help="folder to look in first")) -> None:
    """List the data sets vaelab knows and where each would be loaded from."""
    from rich.table import Table

    from vaelab.data.registry import list_datasets

    table = Table("name", "images", "available", box=None, header_style="bold")
    for row in list_datasets(data_dir):
        table.add_row(row["name"], row["images"], row["available"])
    _console().print(table)


@app.command()
def measures(
    group: Optional[str] = typer.Argument(None, help="one measure group [every group]"),
    details: bool = typer.Option(False, "--details", help="also the per-class, per-dimension and settings entries"),
) -> None:
    """List the measures: group, name, which way is better, and what each means (the measure registry)."""
    from rich.table import Table

    from vaelab.analysis.registry import REGISTRY

    if group is not None and group not in MEASURE_GROUPS:
        fail(f"unknown measure group {group!r}: choose from {', '.join(MEASURE_GROUPS)}")
    table = Table("group", "measure", "better", "meaning", box=None, header_style="bold")
    arrows = {1: "higher", -1: "lower", 0: ""}
    for entry in REGISTRY:
        if group in (None, entry.name):
            for measure in entry.measures:
                if details or not measure.detail:
                    table.add_row(entry.name, measure.name, arrows[measure.direction],
                                  measure.meaning.replace("{}", "<k>"))
    _console().print(table)


def train(model: Optional[str], config: Optional[Path], out: Optional[Path], resume: Optional[Path], quiet: bool,
          device: str, log: str = "none", **options) -> None:
    """Train a model on a data set and write its run directory (checkpoint after every epoch)."""
    from vaelab import api

    if resume is not None:
        others = [k for k, v in options.items() if v is not None and k != "epochs"]
        if others or model or config or out:
            fail("--resume continues a run with its saved config; only --epochs may be given with it")
        run = api.train(None, out=resume, resume=True, epochs=options.get("epochs"), progress=not quiet,
                        device=device, log=log)
    else:
        if model is None and config is None:
            model = "vae"
        run = api.train(model, out=out, config_file=config, progress=not quiet, device=device, log=log, **options)
    _print_train_summary(run)


def _config_option(name: str, field) -> inspect.Parameter:
    """A ``vaelab train`` option made from a config field: its type, help and default come from config.py."""
    import typing

    annotation = field.annotation
    choices = typing.get_args(annotation) if typing.get_origin(annotation) is typing.Literal else ()
    if choices:
        annotation = str
    elif typing.get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    if typing.get_origin(annotation) is tuple:
        annotation = str  # a list on the command line is one comma-separated word; the config parses it
    flag = f"--{name.replace('_', '-')}"
    decls = [f"{flag}/--no-{name.replace('_', '-')}"] if annotation is bool else [flag]
    if name == "dataset":
        decls.append("-d")
    default = field.default
    help_text = field.description or name
    if default is not None:
        help_text += f" [{default}]"
    option = typer.Option(None, *decls, help=help_text, show_default=False)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=Optional[annotation])


def _train_signature() -> inspect.Signature:
    """``vaelab train``'s options: a few of its own, then one per config field (written once, in config.py)."""
    from vaelab.config import run_options
    from vaelab.models.registry import PRESETS

    own = [
        ("model", Optional[str], typer.Option(None, "--model", "-m", help=f"preset: {', '.join(PRESETS)} "
                                                                          "[default: vae]")),
        ("config", Optional[Path], typer.Option(None, "--config", "-c", help="YAML file with data/model/train sections")),
        ("out", Optional[Path], typer.Option(None, "--out", "-o", help="run directory [runs/<model>-<dataset>-seed<k>]")),
        ("resume", Optional[Path], typer.Option(None, "--resume", help="continue the interrupted run in this directory")),
        ("quiet", bool, typer.Option(False, "--quiet", "-q", help="no progress bar")),
        ("device", str, DEVICE_OPTION),
        ("log", str, typer.Option("none", "--log", help="none, or tensorboard: loss terms, image grids and the test "
                                                        "codes' projector in RUN/tensorboard (the tensorboard extra)")),
    ]
    parameters = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
                  for name, annotation, default in own]
    parameters += [_config_option(name, field) for name, (_, _, field) in run_options().items()]
    return inspect.Signature(parameters)


train.__signature__ = _train_signature()  # type: ignore[attr-defined]  # what typer reads a command's options from
train.__annotations__ = {}
app.command()(train)


def _print_train_summary(run) -> None:
    last = run.history[-1] if run.history else {}
    terms = ", ".join(f"{k[5:]} {v:.2f}" for k, v in last.items() if k.startswith("test_") and k != "test_loss")
    seconds = sum(row["seconds"] for row in run.history)
    cfg, hw = run.config, run.hardware
    typer.echo(
        f"trained {cfg.model.encoder}/{cfg.model.decoder} {cfg.model.describe(weight=False)} "
        f"on {cfg.data.name}: "
        f"{len(run.history)} epochs in {seconds:.1f} s ({hw.get('device', '?')}, {hw.get('precision', '?')}), "
        f"test loss {last.get('test_loss', float('nan')):.2f} ({terms}) -> {run.run_dir}"
    )


@app.command()
def encode(
    run_dir: Path = typer.Argument(..., help="a trained run directory"),
    out: Path = typer.Option(..., "--out", "-o", help="where to write the codes (.npz)"),
    split: str = typer.Option("test", help="test or train"),
    device: str = DEVICE_OPTION,
) -> None:
    """Encode a split of the run's data set; write mean, logvar (VAEs) and labels to an NPZ."""
    from vaelab import api

    if split not in ("test", "train"):
        fail(f"--split must be test or train, not {split!r}")
    codes = api.encode(run_dir, split=split, device=device)
    codes.save(out)
    kinds = "mean, logvar, labels" if codes.logvar is not None else "mean, labels"
    typer.echo(f"wrote {len(codes.labels)} {split} codes ({codes.mean.shape[1]} dims: {kinds}) -> {out}")


EXECUTOR_OPTION = typer.Option("local", "--executor", help="local (in this process) or ray (one Ray task per cell)")
ADDRESS_OPTION = typer.Option(None, "--address", help="a Ray cluster to join (ray executor) [a private local instance]")
CPUS_OPTION = typer.Option(None, "--cpus-per-cell", help="CPUs (torch threads) per cell [local: all; ray: 1]")
GPUS_OPTION = typer.Option(0.0, "--gpus-per-cell", help="GPUs per cell, may be fractional (ray executor)")


@app.command()
def reproduce(
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="data set [quick: mnist-5k, full: mnist]"),
    seeds: int = typer.Option(3, help="number of seeds (0, 1, ...); statistics are over seeds"),
    profile: str = typer.Option("quick", help="quick (the built-in study `thesis`: minutes, mnist-5k) or full "
                                              "(`thesis-full`: thesis-scale, hours)"),
    out: Path = typer.Option(Path("results"), "--out", "-o", help="output folder; reused runs are skipped"),
    data_dir: Optional[str] = typer.Option(None, "--data-dir", help="folder holding mnist/fashion-mnist IDX files"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress display"),
    device: str = DEVICE_OPTION,
    executor: str = EXECUTOR_OPTION,
    address: Optional[str] = ADDRESS_OPTION,
    cpus_per_cell: Optional[int] = CPUS_OPTION,
    gpus_per_cell: float = GPUS_OPTION,
) -> None:
    """Re-run the thesis study (AE, VAE, conv VAE, conv-encoder VAE) over seeds; write results and a report."""
    from vaelab import api

    results = api.reproduce(out, dataset=dataset, seeds=seeds, profile=profile, data_dir=data_dir,
                            progress=not quiet, device=device, executor=executor, address=address,
                            cpus_per_cell=cpus_per_cell, gpus_per_cell=gpus_per_cell)
    _print_study_results(results, out)


study_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                        help="Studies as data: models x data sets x seeds in one YAML file (run, show, list).")
app.add_typer(study_app, name="study")


@study_app.command("run")
def study_run(
    study: str = typer.Argument(..., help="a study YAML file, or a built-in study (see `vaelab study list`)"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="study folder [studies/<name>]; finished cells are reused"),
    dataset: Optional[list[str]] = typer.Option(None, "--dataset", "-d", help="run on this data set instead of the "
                                                "study's (repeat for several)"),
    seeds: Optional[int] = typer.Option(None, "--seeds", help="seeds 0..N-1 instead of the study's"),
    protocol: Optional[str] = typer.Option(None, "--protocol", help="holdout or transductive (train and measure on "
                                           "every image) instead of the study's"),
    log: Optional[str] = typer.Option(None, "--log", help="none, or tensorboard: every cell's log under "
                                      "OUT/tensorboard/DATASET/CELL (the tensorboard extra) [the study's]"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress display"),
    device: str = DEVICE_OPTION,
    executor: str = EXECUTOR_OPTION,
    address: Optional[str] = ADDRESS_OPTION,
    cpus_per_cell: Optional[int] = CPUS_OPTION,
    gpus_per_cell: float = GPUS_OPTION,
) -> None:
    """Run every cell (data set, model, seed) of a study; write results.json, figures and a report."""
    from vaelab import api
    from vaelab.studies.spec import load_study

    spec = load_study(study)
    out = out if out is not None else Path("studies") / spec.name
    results = api.run_study(spec, out, executor=executor, address=address, cpus_per_cell=cpus_per_cell,
                            gpus_per_cell=gpus_per_cell, device=device, progress=not quiet,
                            datasets=dataset or None, seeds=seeds, protocol=protocol, log=log)
    _print_study_results(results, out)


@study_app.command("show")
def study_show(
    study: str = typer.Argument(..., help="a study YAML file, or a built-in study"),
    estimate: bool = typer.Option(True, "--estimate/--no-estimate", help="time a few training steps of each "
                                  "model here to estimate the training time"),
    device: str = DEVICE_OPTION,
) -> None:
    """The resolved plan: data sets, seeds, each model's settings and identity, cells, epochs, estimated time."""
    from rich.table import Table

    from vaelab.studies.spec import load_study
    from vaelab.studies.study import plan

    spec = load_study(study)
    cells = plan(spec)
    typer.echo(f"study {spec.name}: {spec.title or spec.description}")
    typer.echo(f"data sets: {', '.join(spec.datasets)}; seeds: {', '.join(map(str, spec.seeds))}; "
               f"measures: {', '.join(spec.measures)}")
    table = Table("model", "label", "preset", "enc/dec", "objective", "latent", "epochs", "batch", "lr",
                  "identity (first cell)", box=None, header_style="bold")
    for key in spec.models:
        cell = next(c for c in cells if c.model == key)
        cfg = cell.config
        table.add_row(key, spec.label(key), spec.models[key].preset, f"{cfg.model.encoder}/{cfg.model.decoder}",
                      cfg.model.describe(), str(cfg.model.latent), str(cfg.train.epochs), str(cfg.train.batch_size),
                      f"{cfg.train.lr:g}", cell.identity)
    _console().print(table)
    epochs = sum(c.config.train.epochs for c in cells)
    typer.echo(f"{len(cells)} cells ({len(spec.datasets)} data sets x {len(spec.models)} models x "
               f"{len(spec.seeds)} seeds), {epochs} epochs in all")
    for comparison in spec.comparisons:
        typer.echo(f"compare {comparison.a} - {comparison.b}: {', '.join(comparison.measures)}")
    if estimate:
        _print_estimate(spec, cells, device)


def _print_estimate(spec, cells, device: str) -> None:
    from vaelab.hardware import resolve
    from vaelab.studies.estimate import training_estimate

    total, notes = 0.0, []
    for dataset in spec.datasets:
        n_train, shape, where = _data_size(dataset, spec.data_dir, spec.protocol)
        found = training_estimate([c.config for c in cells if c.dataset == dataset], n_train, shape, device)
        total += found["seconds"]
        notes.append(f"{dataset}: {n_train:,} training images{where}")
    _, resolved = resolve(device, spec.precision)
    typer.echo(f"estimated training time here: {_duration(total)} ({resolved.device}, {resolved.precision}, CPU "
               f"capability {resolved.cpu_capability}; measured now; evaluation comes on top); " + "; ".join(notes))


def _data_size(dataset: str, data_dir: str | None, protocol: str) -> tuple[int, tuple[int, int, int], str]:
    """Images a cell trains on (every image under the transductive protocol), their shape, and a note."""
    from vaelab.data import sources
    from vaelab.data.registry import load_dataset, locate_full

    if dataset in sources.REMOTE_DATASETS and locate_full(dataset, data_dir) is None:
        # MNIST and Fashion-MNIST: 60,000 training and 10,000 test images
        return 70000 if protocol == "transductive" else 60000, (1, 28, 28), " (not here yet: downloaded on first use)"
    data = load_dataset(dataset, data_dir=data_dir, seed=0, protocol=protocol)
    return len(data.train_labels), data.image_shape, ""


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@study_app.command("list")
def study_list() -> None:
    """The built-in studies shipped with vaelab."""
    from vaelab.studies.spec import builtin_studies, load_study

    specs = {name: load_study(name) for name in builtin_studies()}
    width = max((len(name) for name in specs), default=0) + 1  # a space after the longest name, always
    for name, spec in specs.items():
        cells = len(spec.datasets) * len(spec.models) * len(spec.seeds)
        typer.echo(f"{name:<{width}}{cells:>3} cells  {', '.join(spec.datasets)}: {spec.description}")


def _print_study_results(results: dict, out: Path) -> None:
    from vaelab import records

    for dataset, part in results["datasets"].items():
        _print_study_table(results, dataset, part)
        for sentence in [part["finding"], *part.get("further_findings", [])]:  # older results.json: none further
            if sentence:
                typer.echo(sentence)
    for error, jobs in _failures_by_cause(results["failed"]).items():
        shown = ", ".join(jobs[:3]) + (f" and {len(jobs) - 3} more" if len(jobs) > 3 else "")
        typer.echo(f"failed: {shown}: {error}" if len(jobs) == 1 else f"failed: {len(jobs)} jobs ({shown}): {error}",
                   err=True)
    typer.echo(f"report: {out / records.REPORT_HTML}  (results: {out / records.RESULTS_JSON})")
    if results["failed"]:
        from vaelab.errors import RunError

        raise RunError(f"{len(results['failed'])} job(s) failed (listed above; the others finished): fix the cause "
                       "and run the same command again to redo only those")


def _failures_by_cause(failed: list[dict]) -> dict[str, list[str]]:
    """The failed jobs under each distinct error, in the order first met: one cause is one line."""
    causes: dict[str, list[str]] = {}
    for failure in failed:
        causes.setdefault(failure["error"], []).append(failure["job"])
    return causes


def _print_study_table(results: dict, dataset: str, part: dict) -> None:
    from rich.table import Table

    from vaelab.analysis.compare import fmt, fmt_ci, references_for
    from vaelab.analysis.registry import HEADLINE

    # the first published numbers about this data set (the report shows every one of them)
    reference = next((ref for _, ref in references_for(results["study"], dataset, part)), {})
    values = reference.get("values", {})
    measured = [k for k in HEADLINE if any(k in agg for agg in part["aggregate"].values())]
    columns = (["reference"] if reference else []) + [HEADLINE[k] for k in measured]
    table = Table("model", *columns, box=None, header_style="bold",
                  title=f"{dataset}: mean ± 95% CI over seeds", title_justify="left")
    for model in results["study"]["models"]:
        agg = part["aggregate"][model]
        cells = [fmt_ci(agg[k]) if k in agg else "—" for k in measured]
        table.add_row(model, *([fmt(values.get(model))] if reference else []), *cells)
    _console().print(table)


@app.command()
def report(out: Path = typer.Argument(..., help="a study folder (`vaelab study run` or `vaelab reproduce`)")) -> None:
    """Redraw the figures and report.html/report.md of a study from what it saved (no training)."""
    from vaelab import api

    typer.echo(f"report: {api.report(out)}")


@app.command()
def evaluate(
    run_dir: Path = typer.Argument(..., help="a trained run directory"),
    measures: Optional[str] = typer.Option(None, "--measures", help="comma-separated groups, or all [all]: "
                                           + ",".join(MEASURE_GROUPS)),
    iwae_k: int = typer.Option(1000, "--iwae-k", help="importance samples per image for the IWAE bound"),
    iwae_examples: Optional[int] = typer.Option(None, "--iwae-examples", help="test images for IWAE [all]"),
    dci_estimator: str = typer.Option("boosted", "--dci-estimator", help="DCI's importances: boosted "
                                      "(gradient-boosted trees, as disentanglement_lib) or forest (about 30x "
                                      "faster, not comparable with Locatello et al.)"),
    factor_points: Optional[int] = typer.Option(None, "--factor-points", min=2, help="points of the factor grid "
                                                "the disentanglement metrics draw from [the whole grid]"),
    expost_components: int = typer.Option(10, "--expost-components", help="components of the ex-post density, "
                                          "the Gaussian mixture fitted to the training codes (Ghosh et al. 2020)"),
    device: str = DEVICE_OPTION,
) -> None:
    """Measure a run's test codes; write RUN_DIR/measures.json and print a table."""
    from vaelab import api, records
    from vaelab.analysis.disentanglement import DCI_ESTIMATORS

    if dci_estimator not in DCI_ESTIMATORS:
        raise ConfigError(f"unknown --dci-estimator {dci_estimator!r}: choose {' or '.join(DCI_ESTIMATORS)}")
    values = api.evaluate(run_dir, measures, iwae_k=iwae_k, iwae_examples=iwae_examples, device=device,
                          dci_estimator=dci_estimator, factor_points=factor_points,
                          expost_components=expost_components)
    _print_measures(values)
    typer.echo(f"wrote {run_dir / records.MEASURES_JSON}")


def _print_measures(values: dict[str, float]) -> None:
    from rich.table import Table

    from vaelab.analysis.compare import fmt, measure_order
    from vaelab.analysis.registry import describe, is_detail

    table = Table("measure", "value", "what it is", box=None, header_style="bold")
    for name in sorted(values, key=measure_order):
        if not is_detail(name):
            table.add_row(name, fmt(values[name]), describe(name)[0])
    _console().print(table)


@app.command()
def compare(
    folders: list[Path] = typer.Argument(..., help="study folders (results.json) and/or run directories (measures.json)"),
    format: str = typer.Option("md", "--format", "-f", help="md, csv or json"),
) -> None:
    """One table of every measure across models: mean ± 95% CI over seeds, best per row in bold."""
    from vaelab import api

    typer.echo(api.compare(folders, format), nl=False)


@app.command()
def export(
    run: Path = typer.Argument(..., help="a finished run folder (a study's cell too)"),
    out: Path = typer.Option(..., "--out", "-o", help="a new folder, or a FILE.tar.gz"),
) -> None:
    """Write a run as a bundle that needs only vaelab to load: weights (safetensors), config, data set name and
    fingerprint, measures, hardware, a model card (README.md) and every file's checksum."""
    from vaelab import api

    written = api.export(run, out)
    size = sum(f.stat().st_size for f in written.iterdir()) if written.is_dir() else written.stat().st_size
    typer.echo(f"bundle: {written} ({size / 1e6:.2f} MB); load it with vaelab.load({str(written)!r}) or "
               f"vaelab explore {written}")


@app.command("import")
def import_(
    source: Path = typer.Argument(..., help="a bundle: a folder or .tar.gz that `vaelab export` wrote"),
    out: Path = typer.Option(..., "--out", "-o", help="the run folder to create"),
) -> None:
    """Check a bundle's files against their checksums and unpack it into a run folder."""
    from vaelab import api

    typer.echo(f"imported: {api.import_bundle(source, out)}")


@app.command()
def explore(
    folders: list[Path] = typer.Argument(..., help="run folders, bundles, or a study folder (its models, first "
                                         "complete seed)"),
    port: int = typer.Option(0, "--port", help="port to listen on [a free one]"),
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on; anything but loopback is "
                             "reachable from other machines (a warning says so)"),
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="which of a study's data sets [its first]"),
    points: int = typer.Option(2000, "--points", help="test images on the map"),
    no_browser: bool = typer.Option(False, "--no-browser", help="do not open a browser; only print the address"),
) -> None:
    """Open trained models in an interactive page: the map of the codes, decoding anywhere, traversals,
    interpolations, centroids and prior draws, side by side. Needs `pip install 'vaelab[explore]'`."""
    from vaelab import api

    server = api.explore(folders, host=host, port=port, dataset=dataset, points=points)
    typer.echo(f"explorer: {server.url}  (Ctrl-C to stop)")
    if not no_browser:
        import webbrowser

        webbrowser.open(server.url)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    typer.echo("explorer stopped")


INTERRUPTED = ("interrupted: finished work is saved; run the same command again to continue "
               "(for `vaelab train`: `vaelab train --resume DIR`)")


def main() -> None:
    """Entry point of the ``vaelab`` console script: the one place that turns errors into one line.

    User errors (:class:`VaelabError`), usage errors and file-system errors (a path
    that is a file, a read-only folder, a full disk) end with one line on stderr and
    exit status 2; Ctrl-C ends with a hint on how to continue and status 130.
    """
    try:
        code = app(standalone_mode=False)
    except VaelabError as error:
        _exit_with(f"error: {error}", 2)
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        _exit_with(f"error: {where}{error.strerror or error}: check the path (and the free disk space)", 2)
    except KeyboardInterrupt:
        _exit_with(INTERRUPTED, 130)
    except Exception as error:  # click's usage errors and aborts (typer vendors click: no stable import)
        kind = type(error).__name__
        if kind == "NoArgsIsHelpError" and hasattr(error, "format_message"):
            typer.echo(error.format_message())
            sys.exit(2)
        if hasattr(error, "format_message") and hasattr(error, "exit_code"):
            command = getattr(getattr(error, "ctx", None), "command_path", "vaelab")
            message = " ".join(error.format_message().split())
            _exit_with(f"error: {message} (see `{command} --help`)", 2)
        if kind == "Abort":
            _exit_with(INTERRUPTED, 130)
        raise
    if code == 130:  # typer turns Ctrl-C into exit code 130 before we see it
        _exit_with(INTERRUPTED, 130)
    sys.exit(code if isinstance(code, int) else 0)


def _exit_with(message: str, status: int) -> None:
    typer.echo(message, err=True)
    sys.exit(status)


if __name__ == "__main__":
    main()
