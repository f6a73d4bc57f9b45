"""Runs that travel: a trained run as a bundle that needs nothing but vaelab to load, and a model card.

A bundle is a folder, or the same files in a ``.tar.gz``, in the layout model hubs use (a ``README.md``
model card with a metadata header beside the weights and their config, so that uploading it is one call of
a hub's client, e.g. ``huggingface_hub.upload_folder``):

- ``model.json``: the run's config, with the data set's name and fingerprint (not the data; its local
  folder is dropped, so the receiver's own copy is found), the hardware it was trained on;
- ``weights.safetensors``: the weights (safetensors: tensors only, never a pickle, never code);
- ``metrics.jsonl``: the training history; ``measures.json`` and ``expost.npz`` where the run has them;
- ``study.json``: where the run is a study's cell, the study's mean and 95% CI over seeds of each measure
  for this model;
- ``README.md``: the model card (model, data, training, measures, how to load);
- ``bundle.json``: the format and each file's SHA-256 and size.

Opening a bundle (:func:`open_bundle`) checks every file against ``bundle.json`` and refuses, in one line, a
bundle whose files do not match; an archive is read member by member, regular files with plain names
only, never extracted by ``tarfile``'s own rules.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from vaelab import records
from vaelab.analysis.registry import HEADLINE, describe, is_detail
from vaelab.config import config_hash
from vaelab.data.sources import cache_root
from vaelab.errors import RunError
from vaelab.io import atomic_path, json_text, parse_json, read_json, remove_stale_temporaries
from vaelab.version import __version__

FORMAT = "vaelab-bundle/1"
MANIFEST = "bundle.json"
STUDY_JSON = "study.json"
CARD = "README.md"
REQUIRED = (records.MODEL_JSON, records.WEIGHTS, records.METRICS)
OPTIONAL = (records.MEASURES_JSON, records.EXPOST_NPZ)
ALLOWED = frozenset(REQUIRED + OPTIONAL + (STUDY_JSON, CARD, MANIFEST))
MAX_MEMBER = 2 ** 31  # bytes: no vaelab file is near it; a larger member is not one of ours


def is_bundle(path: str | Path) -> bool:
    """Whether ``path`` is a bundle: a folder with ``bundle.json``, or a ``.tar.gz`` file."""
    path = Path(path)
    return (path / MANIFEST).is_file() or (path.is_file() and path.name.endswith(".tar.gz"))


def export(run_dir: str | Path, out: str | Path) -> Path:
    """Write the bundle of the finished run ``run_dir`` to ``out``: a folder, or a ``.tar.gz`` file. Nothing is
    left half-written: the files are gathered in a temporary folder and moved (or archived) at the end."""
    run_dir, out = Path(run_dir), Path(out)
    info = records.read_model_json(run_dir)  # checked: the config matches its identity
    if info.get("status") != "finished":
        raise RunError(f"{run_dir}: the run is {info.get('status')}, not finished: resume it (vaelab train --resume "
                       f"{run_dir}) before exporting it")
    for name in (records.WEIGHTS, records.METRICS):
        if not (run_dir / name).is_file():
            raise RunError(f"{run_dir}: no {name}: the run is damaged; train it again")
    archive = out.name.endswith(".tar.gz")
    if out.exists() and (archive or not out.is_dir() or any(out.iterdir())):
        raise RunError(f"{out} already exists: give a new folder or .tar.gz file name (or delete it)")
    files = _bundle_files(run_dir, read_json(run_dir / records.MODEL_JSON))
    if archive:
        with atomic_path(out) as tmp:
            _write_archive(tmp, files)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
        try:
            for name, payload in files.items():
                (staging / name).write_bytes(payload)
            if out.is_dir():
                out.rmdir()  # empty: checked above
            staging.rename(out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return out


def _bundle_files(run_dir: Path, raw: dict[str, Any]) -> dict[str, bytes]:
    """Every file of the bundle, by name, with ``bundle.json`` last."""
    config = raw["config"]
    exported_from = {"identity": raw.get("identity"), "data_dir": config["data"].get("data_dir")}
    config["data"]["data_dir"] = None  # the sender's folder: the receiver's copy is found by name and fingerprint
    raw["identity"] = config_hash(config)
    raw["exported_from"] = exported_from
    raw.get("dataset", {}).pop("source", None)  # a path on the sender's machine
    files = {records.MODEL_JSON: json_text(raw).encode()}
    for name in (records.WEIGHTS, records.METRICS, *OPTIONAL):
        if (run_dir / name).is_file():
            files[name] = (run_dir / name).read_bytes()
    study = study_measures(run_dir, config["data"]["name"])
    if study is not None:
        files[STUDY_JSON] = json_text(study).encode()
    files[CARD] = model_card(raw, _measures(files), study).encode()
    files[MANIFEST] = json_text({"format": FORMAT, "vaelab_version": __version__, "files": {
        name: {"sha256": hashlib.sha256(payload).hexdigest(), "bytes": len(payload)}
        for name, payload in files.items()}}).encode()
    return files


def _measures(files: dict[str, bytes]) -> dict[str, float]:
    if records.MEASURES_JSON not in files:
        return {}
    saved = parse_json(files[records.MEASURES_JSON])
    return {k: v for k, v in (saved.get("measures") or {}).items() if records.a_measure(v)}


def study_measures(run_dir: Path, dataset: str) -> dict[str, Any] | None:
    """Where ``run_dir`` is a cell of a study (``ROOT/runs/DATASET/MODEL-seedK``): the study's name, seeds and,
    for this model on this data set, each measure's mean and 95% CI over seeds; else None."""
    root, model = run_dir.parent.parent.parent, run_dir.name.rsplit("-seed", 1)[0]
    if run_dir.parent.parent.name != records.RUNS or not records.is_study_folder(root):
        return None
    try:
        results = records.load_results(root)
    except RunError:
        return None
    aggregate = results.get("datasets", {}).get(dataset, {}).get("aggregate", {}).get(model)
    if not aggregate:
        return None
    study = results["study"]
    return {"study": study.get("name"), "seeds": study.get("seeds"), "model": model,
            "label": study.get("models", {}).get(model, {}).get("label", model), "dataset": dataset,
            "protocol": study.get("protocol", "holdout"), "measures": aggregate}


def model_card(info: dict[str, Any], measures: dict[str, float], study: dict[str, Any] | None) -> str:
    """The bundle's ``README.md``: a metadata header as model hubs read it, then the model, its data and training,
    its measures (with the study's CIs where there was a study) and how to load it."""
    config, data, hardware = info["config"], info.get("dataset", {}), info.get("hardware", {})
    model, train = config["model"], config["train"]
    title = f"{model['encoder']}-{model['decoder']} {model['objective']} on {data.get('name', config['data']['name'])}"
    lines = ["---", "library_name: vaelab", f"tags: [vaelab, auto-encoder, {model['objective']}]",
             f"datasets: [{data.get('name', config['data']['name'])}]", "---", "", f"# {title}", "",
             f"Encoder `{model['encoder']}`, decoder `{model['decoder']}`, objective `{model['objective']}`, "
             f"{model['latent']} latent dimensions, prior `{model.get('prior', 'normal')}`; trained by vaelab "
             f"{info.get('vaelab_version', '?')} for {info.get('epochs_done', '?')} epochs (batch "
             f"{train['batch_size']}, learning rate {train['lr']}, seed {train['seed']}). Every setting is in "
             "`model.json`.", "",
             "## Data", "",
             f"`{data.get('name', config['data']['name'])}`, {data.get('n_train', '?')} training and "
             f"{data.get('n_test', '?')} test images of shape {data.get('image_shape', '?')}, protocol "
             f"{data.get('protocol', 'holdout')}. The data is not in the bundle: vaelab finds it by name and "
             f"checks its fingerprint (`{str(data.get('fingerprint', '?'))[:16]}…`) before anything reads it.", "",
             "## Training hardware", "",
             f"{hardware.get('device', '?')}, {hardware.get('cpu_capability', '?')}, precision "
             f"{hardware.get('precision', '?')}, torch {hardware.get('torch', '?')}.", "", "## Measures", ""]
    if study is not None:
        lines += [f"From the study `{study['study']}` ({len(study['seeds'] or [])} seeds, {study['protocol']} "
                  "protocol): mean and 95% confidence interval over seeds, and this run's own value.", "",
                  "| measure | mean over seeds | 95% CI | this run | meaning |", "|---|---|---|---|---|"]
        for name in _shown(study["measures"]):
            cell, own = study["measures"][name], measures.get(name)
            ci = f"± {cell['ci']:.2g}" if isinstance(cell.get("ci"), (int, float)) else "—"
            lines.append(f"| {name} | {cell['mean']:.4g} | {ci} | {'—' if own is None else format(own, '.4g')} | "
                         f"{markdown_cell(describe(name)[0])} |")
    elif measures:
        lines += ["| measure | value | meaning |", "|---|---|---|"]
        lines += [f"| {name} | {measures[name]:.4g} | {markdown_cell(describe(name)[0])} |" for name in _shown(measures)]
    else:
        lines.append("This run was not evaluated (`vaelab evaluate RUN` measures it).")
    lines += ["", "## How to load", "", "```python", "import vaelab", "",
              "run = vaelab.load(\"THIS_FOLDER_OR.tar.gz\")  # checks every file against bundle.json",
              "codes = vaelab.encode(run)  # the test split's codes (finds the data set by name)", "```", "",
              "or `vaelab explore THIS_FOLDER_OR.tar.gz`. The weights are safetensors; nothing in the bundle is a "
              "pickle or runs code.", ""]
    return "\n".join(lines)


def markdown_cell(text: str) -> str:
    """Text for a Markdown table cell (a ``|`` in it would end the cell, a line break the row)."""
    return text.replace("|", "\\|").replace("\n", " ")


def _shown(values: dict[str, Any]) -> list[str]:
    """The measures a card lists: the headline ones first, then the rest, without per-class or per-dimension
    details (those with a mean, where ``values`` holds a study's aggregate)."""
    names = [name for name in dict.fromkeys([*HEADLINE, *sorted(values)]) if name in values and not is_detail(name)]
    return [name for name in names if not isinstance(values[name], dict) or records.a_measure(values[name].get("mean"))]


def _write_archive(target: Path, files: dict[str, bytes]) -> None:
    # no dates (the gzip header's and each member's): the same run exports to the same bytes
    with open(target, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as zipped, \
            tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, payload in files.items():
            member = tarfile.TarInfo(name)
            member.size, member.mode, member.mtime = len(payload), 0o644, 0
            archive.addfile(member, io.BytesIO(payload))


def open_bundle(path: str | Path) -> Path:
    """The folder of a checked bundle: ``path`` itself for a folder; for a ``.tar.gz``, its files unpacked once
    into the cache (keyed by the archive's SHA-256). Refuses, in one line, files that do not match
    ``bundle.json``, missing files, and archive members that are not plain files with plain names."""
    path = Path(path)
    if path.is_dir():
        verify(path)
        return path
    if not path.is_file():
        raise RunError(f"{path}: no such bundle: give a bundle folder or .tar.gz file (vaelab export writes them)")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    folder = cache_root() / "bundles" / digest
    if (folder / MANIFEST).is_file():  # unpacked before: checked again, it may have been changed since
        verify(folder)
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder.parent, recursive=False)
    staging = Path(tempfile.mkdtemp(prefix=f".{digest}.", suffix=".tmp", dir=folder.parent))
    try:
        _unpack(path, staging)
        verify(staging)
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _unpack(archive_path: Path, folder: Path) -> None:
    """Copy an archive's members into ``folder`` by hand: only regular files with the bundle's names."""
    try:
        with tarfile.open(archive_path, "r:gz") as archive:
            for member in archive:
                if not member.isfile() or member.name not in ALLOWED or member.size > MAX_MEMBER:
                    raise RunError(f"{archive_path}: holds {member.name!r}, which is not a file of a vaelab bundle: "
                                   "refused (a bundle holds only its own plain files)")
                handle = archive.extractfile(member)
                if handle is None:
                    raise RunError(f"{archive_path}: {member.name} cannot be read: the archive is damaged")
                (folder / member.name).write_bytes(handle.read())
    except (tarfile.TarError, OSError, EOFError) as error:
        raise RunError(f"{archive_path}: not a readable .tar.gz ({error}): ask for the bundle again") from None


def verify(folder: Path) -> None:
    """Check every file of a bundle folder against ``bundle.json`` (one line naming the first that differs)."""
    try:
        manifest = read_json(folder / MANIFEST)
    except (OSError, ValueError, UnicodeDecodeError):
        raise RunError(f"{folder}: no readable {MANIFEST}: not a vaelab bundle (vaelab export writes them)") from None
    listed = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(listed, dict) or manifest.get("format") != FORMAT:
        raise RunError(f"{folder}: {MANIFEST} is not a {FORMAT} manifest: not a bundle this vaelab reads")
    missing = [name for name in REQUIRED if name not in listed]
    if missing or any(name not in ALLOWED for name in listed):
        raise RunError(f"{folder}: {MANIFEST} lists {sorted(listed)}, not a bundle's files: the bundle is damaged")
    for name, expected in listed.items():
        if name == MANIFEST:
            continue
        file = folder / name
        if not file.is_file():
            raise RunError(f"{folder}: {name} is missing: the bundle is incomplete; ask for it again")
        if not isinstance(expected, dict) or hashlib.sha256(file.read_bytes()).hexdigest() != expected.get("sha256"):
            raise RunError(f"{folder}: {name} does not match its checksum in {MANIFEST}: the bundle was changed or "
                           "damaged; ask for it again")
