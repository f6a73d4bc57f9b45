"""Runs that travel: `vaelab export` writes a bundle (folder or .tar.gz) that loads with nothing but vaelab, its
files checked against their checksums; a changed, incomplete or hostile bundle is refused in one line."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import numpy as np
import pytest
import torch
import yaml

from tests.conftest import make_tiny_idx, run_cli
from vaelab import bundle
from vaelab.api import encode, load
from vaelab.errors import RunError


@pytest.fixture(scope="module")
def study_cell(tmp_path_factory):
    """A cell of a finished two-seed study on tiny blobs, evaluated: the richest run a bundle carries."""
    root = tmp_path_factory.mktemp("bundle")
    data = make_tiny_idx(root / "data")
    spec = {"name": "travel", "datasets": [f"idx:{data}"], "seeds": 2, "train": {"epochs": 1, "batch_size": 32},
            "models": {"vae": {"preset": "vae", "model": {"latent": 3, "hidden": 32}, "label": "VAE"}},
            "measures": ["separation", "health"]}
    (root / "study.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    result = run_cli("study", "run", str(root / "study.yaml"), "--out", str(root / "out"), "--quiet")
    assert result.returncode == 0, result.stderr
    (cell,) = (root / "out" / "runs").glob("*/vae-seed0")
    return cell


@pytest.mark.parametrize("kind", ["folder", "archive"])
def test_a_bundle_loads_the_same_model_and_codes_with_nothing_else(study_cell, tmp_path, kind):
    out = tmp_path / ("vae.tar.gz" if kind == "archive" else "vae")
    result = run_cli("export", str(study_cell), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert f"bundle: {out}" in result.stdout and "MB" in result.stdout
    original, travelled = load(study_cell), load(out)
    for name, tensor in original.model.state_dict().items():
        assert torch.equal(tensor, travelled.model.state_dict()[name]), name
    assert np.array_equal(encode(original).mean, encode(travelled).mean)  # the data found by name, fingerprint checked
    assert travelled.config.data.data_dir is None and travelled.config.model == original.config.model


def test_the_folder_holds_hub_files_and_a_model_card_with_the_study_s_intervals(study_cell, tmp_path):
    folder = bundle.export(study_cell, tmp_path / "vae")
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["README.md", "bundle.json", "measures.json", "metrics.jsonl", "model.json", "study.json",
                     "weights.safetensors"]
    manifest = json.loads((folder / "bundle.json").read_text())
    assert manifest["format"] == "vaelab-bundle/1"
    for name, entry in manifest["files"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == entry["sha256"]
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: vaelab\n") and "## How to load" in card
    study = json.loads((folder / "study.json").read_text())
    assert study["study"] == "travel" and study["seeds"] == [0, 1]
    silhouette = study["measures"]["silhouette"]
    assert f"| silhouette | {silhouette['mean']:.4g} | ± {silhouette['ci']:.2g} |" in card
    model = json.loads((folder / "model.json").read_text())
    assert "source" not in model["dataset"] and model["exported_from"]["data_dir"] is None
    assert not any(p.suffix == ".pkl" for p in folder.iterdir())


def test_the_same_run_exports_to_the_same_bytes(study_cell, tmp_path):
    first = bundle.export(study_cell, tmp_path / "a.tar.gz").read_bytes()
    assert bundle.export(study_cell, tmp_path / "b.tar.gz").read_bytes() == first


def test_a_changed_or_incomplete_bundle_is_refused_in_one_line(study_cell, tmp_path):
    folder = bundle.export(study_cell, tmp_path / "vae")
    weights = folder / "weights.safetensors"
    payload = bytearray(weights.read_bytes())
    payload[-1] ^= 1
    weights.write_bytes(bytes(payload))
    result = run_cli("import", str(folder), "--out", str(tmp_path / "imported"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "weights.safetensors does not match its checksum in bundle.json" in result.stderr
    assert not (tmp_path / "imported").exists()
    weights.unlink()
    with pytest.raises(RunError, match="weights.safetensors is missing"):
        load(folder)
    (folder / "bundle.json").write_text("{}")
    with pytest.raises(RunError, match="is not a vaelab-bundle/1 manifest"):
        load(folder)


def _archive(members: list[tuple[tarfile.TarInfo, bytes]], path) -> None:
    with tarfile.open(path, "w:gz") as archive:
        for member, payload in members:
            archive.addfile(member, io.BytesIO(payload) if member.isfile() else None)


@pytest.mark.parametrize("hostile", ["../model.json", "/etc/passwd-copy", "run.pkl", "link"])
def test_an_archive_with_anything_but_its_plain_files_is_refused(study_cell, tmp_path, isolated_cache, hostile):
    good = bundle.export(study_cell, tmp_path / "vae.tar.gz")
    with tarfile.open(good) as archive:
        members = [(m, archive.extractfile(m).read()) for m in archive.getmembers()]
    extra = tarfile.TarInfo(hostile)
    if hostile == "link":
        extra.type, extra.linkname = tarfile.SYMTYPE, "/etc/passwd"
    else:
        extra.size = 4
    _archive(members + [(extra, b"evil")], tmp_path / "hostile.tar.gz")
    with pytest.raises(RunError, match="which is not a file of a vaelab bundle: refused"):
        load(tmp_path / "hostile.tar.gz")
    assert not (tmp_path / "etc").exists() and not list((isolated_cache / "vaelab" / "bundles").glob("*/*"))


def test_a_truncated_archive_and_a_bad_destination_are_one_line_errors(study_cell, tmp_path):
    good = bundle.export(study_cell, tmp_path / "vae.tar.gz")
    (tmp_path / "cut.tar.gz").write_bytes(good.read_bytes()[:2000])
    result = run_cli("import", str(tmp_path / "cut.tar.gz"), "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and "not a readable .tar.gz" in result.stderr
    (tmp_path / "taken").write_text("a file")
    for out in (tmp_path / "taken", tmp_path / "vae.tar.gz"):
        result = run_cli("export", str(study_cell), "--out", str(out))
        assert result.returncode == 2 and f"{out} already exists" in result.stderr, result.stderr
    result = run_cli("import", str(good), "--out", str(tmp_path / "run"))
    assert result.returncode == 0 and (tmp_path / "run" / "weights.safetensors").is_file()
    assert load(tmp_path / "run").config.identity() == load(good).config.identity()


def test_an_unfinished_run_is_not_exported(study_cell, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(study_cell, run)
    info = json.loads((run / "model.json").read_text())
    info["status"] = "interrupted"
    (run / "model.json").write_text(json.dumps(info))
    with pytest.raises(RunError, match="the run is interrupted, not finished: resume it"):
        bundle.export(run, tmp_path / "out")


def test_the_explorer_opens_a_bundle(study_cell, tmp_path):
    pytest.importorskip("starlette")
    from vaelab.explorer.session import Explorer, find_runs

    archive = bundle.export(study_cell, tmp_path / "travelled.tar.gz")
    explorer = Explorer(find_runs([archive]))
    assert list(explorer.models) == ["travelled"] and explorer.summary()["models"][0]["latent"] == 3
