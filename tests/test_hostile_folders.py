"""Damaged run and study folders, full disks, and random mutations (hypothesis).

Every case runs the CLI in this process (fast) and asserts what a user sees:
exit status 0 with a correct result where the input can be used or repaired,
or exit status 2 with exactly one line on stderr, no traceback, and nothing
newly written into the folder.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vaelab
import vaelab.io as vio
from tests.conftest import make_tiny_idx, run_cli

TINY = ("--hidden", "32", "--latent", "2", "--quiet")


def one_line_or_success(result: subprocess.CompletedProcess) -> str | None:
    """The one error line of a failed command (None when it succeeded); anything else fails the test."""
    assert "Traceback" not in result.stderr, result.stderr
    if result.returncode == 0:
        return None
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("note: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def listing(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (the lock file aside)."""
    if not folder.is_dir():
        return {}
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".vaelab-lock"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_idx(tmp_path_factory.mktemp("data") / "tiny")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny) -> Path:
    run = tmp_path_factory.mktemp("trained") / "run"
    result = run_cli("train", "--dataset", f"idx:{tiny}", "--epochs", "2", "--out", str(run), *TINY)
    assert result.returncode == 0, result.stderr
    return run


def _edit_json(name: str, change):
    def mutate(run: Path) -> None:
        values = json.loads((run / name).read_text())
        change(values)
        (run / name).write_text(json.dumps(values))
    return mutate


def _write(name: str, data: bytes):
    return lambda run: (run / name).write_bytes(data)


def _truncate(name: str):
    return lambda run: (run / name).write_bytes((run / name).read_bytes()[: (run / name).stat().st_size // 2])


def _rewrite_checkpoint(run: Path, change) -> None:
    from safetensors import safe_open
    from safetensors.torch import load_file

    from vaelab.io import write_safetensors

    path = run / "checkpoint.safetensors"
    with safe_open(str(path), framework="pt") as handle:
        metadata = dict(handle.metadata())
    change(metadata)
    write_safetensors(path, load_file(str(path)), metadata)


def _replace_with_file(run: Path) -> None:
    shutil.rmtree(run)
    run.write_text("not a run")


# name -> (mutation, whether the run stays usable: True, False, or the commands that can use it)
MUTATIONS = {
    "model.json is []": (_write("model.json", b"[]"), False),
    "model.json is {}": (_write("model.json", b"{}"), False),
    "model.json is not JSON": (_write("model.json", b"{not json"), False),
    "model.json is binary": (_write("model.json", b"\xff\xfe\x00\x01"), False),
    "model.json lacks dataset": (_edit_json("model.json", lambda v: v.pop("dataset")), True),
    "model.json lacks config": (_edit_json("model.json", lambda v: v.pop("config")), False),
    "model.json has another latent size": (_edit_json("model.json", lambda v: v["config"]["model"].update(latent=7)),
                                           False),
    "model.json has a bad value": (_edit_json("model.json", lambda v: v["config"]["train"].update(epochs=-1)), False),
    # valid configs, but not this run's: caught by the recorded identity (a flipped byte once renamed the data path)
    "model.json names another data folder": (_edit_json("model.json", lambda v: v["config"]["data"].update(
        name=v["config"]["data"]["name"] + "x")), False),
    "model.json has another epoch count": (_edit_json("model.json", lambda v: v["config"]["train"].update(epochs=5)),
                                           False),
    "model.json lacks its identity (an older run)": (_edit_json("model.json", lambda v: v.pop("identity")), True),
    "checkpoint truncated": (_truncate("checkpoint.safetensors"), False),
    "checkpoint empty": (_write("checkpoint.safetensors", b""), False),
    # without its checkpoint a run still loads from its weights, and a resume starts it over (the same result)
    "checkpoint missing": (lambda run: (run / "checkpoint.safetensors").unlink(), True),
    "checkpoint is junk": (_write("checkpoint.safetensors", bytes(range(256)) * 4), False),
    "checkpoint without history": (lambda run: _rewrite_checkpoint(run, lambda m: m.pop("history")), False),
    # loading reads the weights and history only; a resume needs the epoch
    "checkpoint with a non-numeric epoch": (lambda run: _rewrite_checkpoint(run, lambda m: m.update(epoch="two")),
                                            {"encode", "evaluate"}),
    "weights missing": (lambda run: (run / "weights.safetensors").unlink(), True),
    "weights truncated": (_truncate("weights.safetensors"), True),
    "metrics.jsonl has a corrupt line": (lambda run: (run / "metrics.jsonl").write_text(
        (run / "metrics.jsonl").read_text() + "{broken\n"), True),
    "metrics.jsonl missing": (lambda run: (run / "metrics.jsonl").unlink(), True),
    "measures.json is junk": (_write("measures.json", b"[1, 2"), True),
    "a stale lock file": (_write(".vaelab-lock", b"pid 999999"), True),
    "the run is a file": (_replace_with_file, False),
    "the run is missing": (lambda run: shutil.rmtree(run), False),
}
COMMANDS = {
    "encode": lambda run, tmp: ("encode", str(run), "--out", str(tmp / "codes.npz")),
    "evaluate": lambda run, tmp: ("evaluate", str(run), "--measures", "separation,health"),
    "resume": lambda run, tmp: ("train", "--resume", str(run), "--epochs", "3", "--quiet"),
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_damaged_run_folders(trained, tmp_path, mutation, command):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    mutate, usable = MUTATIONS[mutation]
    usable = command in usable if isinstance(usable, set) else usable
    mutate(run)
    before = listing(run)
    line = one_line_or_success(run_cli(*COMMANDS[command](run, tmp_path)))
    if line is None:
        assert usable, f"{mutation}: {command} succeeded on a run that should be refused"
        if command == "encode":
            with np.load(tmp_path / "codes.npz", allow_pickle=False) as codes:
                assert codes["mean"].shape == (30, 2)
    else:
        assert not usable or mutation == "measures.json is junk", f"{mutation}: {command}: {line}"
        assert listing(run) == before, "a failing command changed the run folder"
        assert not (tmp_path / "codes.npz").exists()


def test_a_stale_cache_of_the_classifier_is_rebuilt_and_a_damaged_one_named(tiny, tmp_path, monkeypatch):
    from vaelab.analysis.classifier import load_or_train_classifier
    from vaelab.data.registry import load_dataset

    data = load_dataset(f"idx:{tiny}")
    folder = tmp_path / "classifier"
    _, info = load_or_train_classifier(folder, data, 0, epochs=1)
    for damage in (b"{not json", b"[]"):
        (folder / "classifier.json").write_bytes(damage)
        _, again = load_or_train_classifier(folder, data, 0, epochs=1)
        assert again == info
    (folder / "weights.safetensors").write_bytes(b"junk")
    _, again = load_or_train_classifier(folder, data, 0, epochs=1)
    assert again == info and (folder / "weights.safetensors").stat().st_size > 1000


def test_the_classifier_refuses_images_it_cannot_read(tmp_path):
    from tests.test_hostile import idx_folder

    folder = idx_folder(tmp_path, [0, 1] * 20, [0, 1] * 5, 3, 3)  # too small to pool twice
    run = tmp_path / "run"
    assert run_cli("train", "--dataset", f"idx:{folder}", "--epochs", "1", "--out", str(run), *TINY).returncode == 0
    line = one_line_or_success(run_cli("evaluate", str(run), "--measures", "generation"))
    assert line and "needs images of at least 4x4" in line and "1x3x3" in line
    assert one_line_or_success(run_cli("evaluate", str(run), "--measures", "separation,knn")) is None


def test_a_data_dir_that_does_not_exist_is_named(tmp_path):
    line = one_line_or_success(run_cli("train", "--data-dir", str(tmp_path / "nowhere"), "--epochs", "1",
                                   "--out", str(tmp_path / "r"), *TINY))
    assert line and "nowhere is not a folder" in line and not (tmp_path / "r").exists()


def test_idx_paths_are_stored_absolute(tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tiny.parent)
    run = tmp_path / "run"
    assert run_cli("train", "--dataset", f"idx:{tiny.name}", "--epochs", "1", "--out", str(run), *TINY).returncode == 0
    stored = json.loads((run / "model.json").read_text())["config"]["data"]["name"]
    assert stored == f"idx:{tiny.resolve()}"
    monkeypatch.chdir(tmp_path)  # elsewhere, the run still finds its data
    assert one_line_or_success(run_cli("encode", str(run), "--out", str(tmp_path / "c.npz"))) is None


def test_a_corrupt_codes_file_is_called_damaged(tmp_path):
    from vaelab.analysis.encode import Codes
    from vaelab.errors import RunError

    for junk in (b"not an npz", b"PK\x03\x04 truncated zip"):
        (tmp_path / "codes.npz").write_bytes(junk)
        with pytest.raises(RunError, match="is damaged or not a vaelab codes file") as error:
            Codes.load(tmp_path / "codes.npz")
        assert "pickle" not in str(error.value)


def test_weight_files_have_the_usual_mode_and_compare_byte_for_byte(tiny, tmp_path):

    # Two processes, this one and a fresh one: the library's header order changed from one process to the next.
    args = ("train", "--dataset", f"idx:{tiny}", "--epochs", "1", "--precision", "fp32", *TINY)
    runs = [tmp_path / "a", tmp_path / "b"]
    assert run_cli(*args, "--out", str(runs[0])).returncode == 0
    command = [sys.executable, "-m", "vaelab", *args, "--out", str(runs[1])]
    assert subprocess.run(command, capture_output=True).returncode == 0
    umask = os.umask(0)
    os.umask(umask)
    # (checkpoints differ in the seconds each epoch took, which their history records)
    assert (runs[0] / "weights.safetensors").read_bytes() == (runs[1] / "weights.safetensors").read_bytes()
    for name in ("weights.safetensors", "checkpoint.safetensors"):
        assert (runs[0] / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


# --- full disks -------------------------------------------------------------------------------------------


def test_a_full_disk_during_training_loses_nothing_and_resumes_bit_identically(tiny, tmp_path, monkeypatch):
    from vaelab.io import write_safetensors
    from vaelab.training import checkpoint as ckpt

    calls = {"n": 0}

    def full_after_two_epochs(target, tensors, metadata=None):  # checkpoint + weights per epoch
        calls["n"] += 1
        if calls["n"] > 4:
            raise OSError(errno.ENOSPC, "No space left on device", str(target))
        write_safetensors(target, tensors, metadata)

    straight = tmp_path / "straight"
    assert run_cli("train", "--dataset", f"idx:{tiny}", "--epochs", "4", "--out", str(straight), *TINY).returncode == 0
    run = tmp_path / "full"
    monkeypatch.setattr(ckpt, "write_safetensors", full_after_two_epochs)
    line = one_line_or_success(run_cli("train", "--dataset", f"idx:{tiny}", "--epochs", "4", "--out", str(run), *TINY))
    assert line and "no space left" in line and "--resume" in line
    assert ckpt.load_checkpoint(run).epoch == 2  # the last good checkpoint survived whole
    assert not list(run.glob(".*.tmp"))
    monkeypatch.setattr(ckpt, "write_safetensors", write_safetensors)  # space freed
    assert one_line_or_success(run_cli("train", "--resume", str(run), "--quiet")) is None
    assert (run / "weights.safetensors").read_bytes() == (straight / "weights.safetensors").read_bytes()


def test_a_full_disk_while_writing_results_is_one_line(tiny, tmp_path, monkeypatch):

    real = vio.atomic_write

    def full(target, data):
        if Path(target).name == "results.json":
            raise OSError(errno.ENOSPC, "No space left on device", str(target))
        real(target, data)

    monkeypatch.setattr(vio, "atomic_write", full)
    study = _study_file(tmp_path, tiny)
    line = one_line_or_success(run_cli("study", "run", str(study), "--out", str(tmp_path / "out"), "--quiet"))
    assert line and "results.json" in line and "No space left on device" in line
    assert not (tmp_path / "out" / "results.json").exists() and not list((tmp_path / "out").rglob("*.tmp"))
    monkeypatch.setattr(vio, "atomic_write", real)
    assert one_line_or_success(run_cli("study", "run", str(study), "--out", str(tmp_path / "out"), "--quiet")) is None


# --- damaged study folders ----------------------------------------------------------------------------------

SMALL_STUDY = {
    "name": "small",
    "seeds": 1,
    "train": {"epochs": 1, "batch_size": 32},
    "models": {"vae": {"preset": "vae", "model": {"latent": 2, "hidden": 32}}},
    "measures": ["separation", "map", "health"],
    "evaluation": {"tsne_points": 30, "tsne_iterations": 30},
}


def _study_file(folder: Path, data: Path) -> Path:

    path = folder / "small.yaml"
    path.write_text(yaml.safe_dump({**SMALL_STUDY, "datasets": [f"idx:{data}"]}, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def small_study(tmp_path_factory, tiny) -> Path:
    folder = tmp_path_factory.mktemp("small")
    result = run_cli("study", "run", str(_study_file(folder, tiny)), "--out", str(folder / "out"), "--quiet")
    assert result.returncode == 0, result.stderr
    return folder / "out"


CELL = "runs/idx-tiny/vae-seed0"
STUDY_DAMAGE = {
    "results.json is junk": ("results.json", b"{oops", False),
    "results.json is []": ("results.json", b"[]", False),
    "results.json of an older vaelab": ("results.json", b'{"per_seed": {}}', False),
    "results.json lacks a model's table": ("results.json", None, False),
    # found by the mutation test below: one flipped bit made an encoder "mlq", which the report read unchecked
    "results.json names an encoder vaelab lacks": ("results.json", "bad model", False),
    "grids.npz is junk": (f"{CELL}/grids.npz", b"junk", False),
    "map.npz is truncated": (f"{CELL}/map.npz", "half", False),
    "codes.npz is junk": (f"{CELL}/codes.npz", b"PK\x03\x04", False),
    "measures.json is junk": (f"{CELL}/measures.json", b"{", True),
    "hardware.json is junk": ("hardware.json", b"[", True),
    "study.yaml is junk": ("study.yaml", b"\xff", True),
}


def _damage(out: Path, name: str) -> None:
    target, data, _ = STUDY_DAMAGE[name]
    path = out / target
    if data is None:
        values = json.loads(path.read_text())
        next(iter(values["datasets"].values()))["aggregate"].pop("vae")
        path.write_text(json.dumps(values))
    elif data == "bad model":
        values = json.loads(path.read_text())
        values["study"]["models"]["vae"]["model"]["encoder"] = "mlq"
        path.write_text(json.dumps(values))
    elif data == "half":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path.write_bytes(data)


@pytest.mark.parametrize("damage", list(STUDY_DAMAGE))
def test_report_and_compare_on_a_damaged_study(small_study, tmp_path, damage):
    out = tmp_path / "out"
    shutil.copytree(small_study, out)
    _damage(out, damage)
    before = listing(out)
    for command in (("report", str(out)), ("compare", str(out))):
        line = one_line_or_success(run_cli(*command))
        if line is not None:
            assert not STUDY_DAMAGE[damage][2] or command[0] == "compare", (damage, line)
            assert listing(out) == before, f"{command[0]} changed the folder before failing"


@pytest.mark.parametrize("damage", list(STUDY_DAMAGE))
def test_running_a_damaged_study_again_repairs_it(small_study, tmp_path, tiny, damage):
    out = tmp_path / "out"
    shutil.copytree(small_study, out)
    _damage(out, damage)
    result = run_cli("study", "run", str(_study_file(tmp_path, tiny)), "--out", str(out), "--quiet")
    assert one_line_or_success(result) is None, result.stderr
    assert (out / "results.json").read_bytes() == (small_study / "results.json").read_bytes()
    assert one_line_or_success(run_cli("report", str(out))) is None


# --- property-based: any mutation gives a correct load or the one-line error ---------------------------------

mutations = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0.0, 1.0)),
    st.tuples(st.just("flip"), st.floats(0.0, 1.0), st.integers(1, 255)),
    st.tuples(st.just("insert"), st.floats(0.0, 1.0), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("json"), st.sampled_from(["config", "dataset", "status", "epochs_done", "seed", "hardware"]),
              st.one_of(st.none(), st.integers(-3, 3), st.text(max_size=5), st.lists(st.integers(), max_size=2),
                        st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))),
)


def _mutate(path: Path, mutation) -> None:
    data = path.read_bytes()
    kind = mutation[0]
    if kind == "truncate":
        path.write_bytes(data[: int(len(data) * mutation[1])])
    elif kind == "flip":
        at = min(len(data) - 1, int(len(data) * mutation[1]))
        path.write_bytes(data[:at] + bytes([data[at] ^ mutation[2]]) + data[at + 1:])
    elif kind == "insert":
        at = int(len(data) * mutation[1])
        path.write_bytes(data[:at] + mutation[2] + data[at:])
    else:
        try:
            values = json.loads(data)
            values[mutation[1]] = mutation[2]
            path.write_text(json.dumps(values))
        except (ValueError, TypeError):
            path.write_bytes(data[:-1])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=st.sampled_from(["model.json", "metrics.jsonl"]), mutation=mutations)
def test_any_mutation_of_a_run_folder_loads_correctly_or_fails_in_one_line(trained, tmp_path_factory, target,
                                                                           mutation):

    from vaelab.errors import VaelabError

    run = tmp_path_factory.mktemp("mutated") / "run"
    shutil.copytree(trained, run)
    _mutate(run / target, mutation)
    try:
        loaded = vaelab.load(run, device="cpu")
    except VaelabError as error:
        assert "\n" not in str(error)
        return
    reference = vaelab.load(trained, device="cpu")
    for a, b in zip(loaded.model.state_dict().values(), reference.model.state_dict().values()):
        assert torch.equal(a, b)  # a load that succeeds gives the trained weights, whatever the damage
    assert loaded.config == reference.config


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutation=mutations)
def test_any_mutation_of_results_json_reports_or_fails_in_one_line(small_study, tmp_path_factory, mutation):
    from vaelab.errors import VaelabError
    from vaelab.report.build import build_report

    out = tmp_path_factory.mktemp("mutated-study") / "out"
    shutil.copytree(small_study, out)
    _mutate(out / "results.json", mutation)
    try:
        build_report(out)
    except VaelabError as error:
        assert "\n" not in str(error)


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MiB tmpfs mounted for this test (root only), unmounted after it."""

    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root); the injected-ENOSPC tests cover the same paths")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_really_full_disk_during_training(tiny, tmp_path, small_disk):

    from vaelab.training import checkpoint as ckpt

    args = ("--dataset", f"idx:{tiny}", "--epochs", "4", "--precision", "fp32", *TINY)
    straight = tmp_path / "straight"
    assert run_cli("train", *args, "--out", str(straight)).returncode == 0
    run_size = sum(p.stat().st_size for p in straight.rglob("*") if p.is_file())
    checkpoint_size = (straight / "checkpoint.safetensors").stat().st_size
    # Room for one epoch's files but not for the second epoch's new checkpoint beside the old one.
    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    (small_disk / "filler").write_bytes(b"\0" * (free - run_size - checkpoint_size // 2))
    run = small_disk / "run"
    line = one_line_or_success(run_cli("train", *args, "--out", str(run)))
    assert line and ("no space left" in line.lower() or "No space left" in line)
    kept = ckpt.load_checkpoint(run).epoch
    assert 1 <= kept < 4 and not list(run.glob(".*.tmp"))
    (small_disk / "filler").unlink()
    assert one_line_or_success(run_cli("train", "--resume", str(run), "--quiet")) is None
    assert (run / "weights.safetensors").read_bytes() == (straight / "weights.safetensors").read_bytes()


def test_a_run_written_before_a_setting_existed_still_loads(trained, tmp_path):
    # The identity is the hash of the config as written, so settings added by later versions (filled in with
    # their defaults when read) never make an older run look damaged.
    from vaelab.config import config_hash

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    info = json.loads((run / "model.json").read_text())
    del info["config"]["model"]["negative_slope"]
    info["identity"] = config_hash(info["config"])
    (run / "model.json").write_text(json.dumps(info))
    assert vaelab.load(run, device="cpu").config == vaelab.load(trained, device="cpu").config
