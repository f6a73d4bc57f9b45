"""The study engine: any models in one YAML file, failing cells, run identity, local and Ray executors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import idx_bytes, make_tiny_idx, needs_ray, run_cli, wait_until_locked
from vaelab.studies.spec import load_study
from vaelab.studies.executors import ExecutorOptions
from vaelab.studies.study import run_study

# Two latent sizes and two βs: models the thesis study does not have. Cheap measures only.
STUDY = {
    "name": "latent-and-beta",
    "title": "Latent size and β on tiny blobs",
    "seeds": 2,
    "train": {"epochs": 2, "batch_size": 32},
    "models": {
        "vae-z4": {"preset": "vae", "model": {"latent": 4, "hidden": 64}},
        "vae-z12": {"preset": "vae", "model": {"latent": 12, "hidden": 64}},
        "bvae-4": {"preset": "vae", "model": {"latent": 4, "hidden": 64, "beta": 4.0}, "label": "β-VAE β=4"},
    },
    "measures": ["separation", "knn", "map", "health"],
    "evaluation": {"tsne_points": 60, "tsne_iterations": 50},
    "comparisons": [{"a": "vae-z4", "b": "vae-z12", "measures": ["silhouette", "knn5_accuracy"]},
                    {"a": "vae-z4", "b": "bvae-4"}],
    "finding": {"a": "vae-z4", "b": "vae-z12"},
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_idx(tmp_path_factory.mktemp("data") / "tiny")


def _study_file(folder: Path, data: Path, **changes) -> Path:
    values = json.loads(json.dumps(STUDY))
    values["datasets"] = [f"idx:{data}"]
    values.update(changes)
    path = folder / "study.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(values, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def local_study(tmp_path_factory, tiny) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("local")
    result = run_cli("study", "run", str(_study_file(folder, tiny)), "--out", str(folder / "out"), "--quiet",
                     "--cpus-per-cell", "1")
    assert result.returncode == 0, result.stderr
    return folder / "out", folder / "study.yaml"


def test_a_hand_written_study_runs_and_reports_every_model(local_study):
    out, _ = local_study
    results = json.loads((out / "results.json").read_text())
    (part,) = results["datasets"].values()
    assert list(part["per_seed"]) == ["vae-z4", "vae-z12", "bvae-4"]
    for model, seeds in part["per_seed"].items():
        assert sorted(seeds) == ["0", "1"] and "silhouette" in seeds["0"] and "prior_fd" not in seeds["0"]
    assert set(part["paired"]) == {"silhouette:vae-z4-vae-z12", "knn5_accuracy:vae-z4-vae-z12",
                                   "silhouette:vae-z4-bvae-4"}
    assert "vae-z4 - vae-z12 = " in part["finding"]
    assert results["hardware"]["threads_per_cell"] == 1 and results["failed"] == []
    html = (out / "report.html").read_text()
    for label in ("vae-z4", "vae-z12", "β-VAE β=4", "Latent size and β on tiny blobs"):
        assert label in html
    assert "Table 4.2" not in html and "thesis's experiments" not in html  # the thesis panels are the thesis's
    figures = sorted(p.name for p in (out / "figures" / "idx-tiny").glob("*.png"))
    assert "tsne.png" in figures and "perturbation_curve.png" not in figures  # no perturbation measures asked
    assert yaml.safe_load((out / "study.yaml").read_text())["name"] == "latent-and-beta"


def test_compare_reads_a_hand_written_study(local_study):
    out, _ = local_study
    result = run_cli("compare", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "| measure | vae-z4 | vae-z12 | bvae-4 |"


def test_a_failing_cell_is_reported_while_the_others_finish(tmp_path, tiny):
    models = dict(STUDY["models"])
    models["diverges"] = {"preset": "vae", "model": {"hidden": 64}, "train": {"lr": 0.99, "batch_size": 4}}  # NaN at once
    path = _study_file(tmp_path, tiny, models=models, seeds=[0])
    result = run_cli("study", "run", str(path), "--out", str(tmp_path / "out"), "--quiet")
    assert result.returncode == 2, result.stdout + result.stderr
    failed = [line for line in result.stderr.splitlines() if line.startswith("failed: ")]
    assert failed and "diverges seed 0" in failed[0] and "NaN" in failed[0]
    assert result.stderr.strip().splitlines()[-1].startswith("error: 1 job(s) failed")
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [f["job"] for f in results["failed"]] == [f"diverges seed 0 on idx:{tiny}"]
    (part,) = results["datasets"].values()
    assert all(part["per_seed"][m] for m in STUDY["models"]) and part["per_seed"]["diverges"] == {}
    assert "1 job failed" in (tmp_path / "out" / "report.html").read_text()
    # running again redoes only what is missing: finished cells are not touched
    finished = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("measures.json")}
    again = run_cli("study", "run", str(path), "--out", str(tmp_path / "out"), "--quiet")
    assert again.returncode == 2 and "diverges seed 0" in again.stderr
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("measures.json")} == finished


def test_another_config_in_the_same_place_is_a_one_line_failure(local_study, tmp_path, tiny):
    out, _ = local_study
    changed = json.loads(json.dumps(STUDY["models"]))
    changed["vae-z12"]["model"]["latent"] = 10  # the same cell name, another config
    path = _study_file(tmp_path, tiny, models=changed)
    before = (out / "runs" / "idx-tiny" / "vae-z12-seed0" / "checkpoint.safetensors").read_bytes()
    results_before = (out / "results.json").read_bytes()
    result = run_cli("study", "run", str(path), "--out", str(out), "--quiet", "--cpus-per-cell", "1")
    assert result.returncode == 2
    assert "holds another study" in result.stderr and "Traceback" not in result.stderr
    assert (out / "runs" / "idx-tiny" / "vae-z12-seed0" / "checkpoint.safetensors").read_bytes() == before
    # refused before anything was written: the finished study's results stand (vaelab 0.1 replaced them with
    # a report of failed jobs)
    assert (out / "results.json").read_bytes() == results_before
    # and the original study still reuses everything
    again = run_cli("study", "run", str(_study_file(tmp_path / "orig", tiny)), "--out", str(out), "--quiet",
                    "--cpus-per-cell", "1")
    assert again.returncode == 0, again.stderr


def test_the_api_runs_a_study_spec(tmp_path, tiny):
    spec = load_study(_study_file(tmp_path, tiny, seeds=[3], models={"vae-z4": STUDY["models"]["vae-z4"]},
                                  comparisons=[], finding=None))
    import torch

    threads = torch.get_num_threads()
    results = run_study(spec, tmp_path / "api", progress=False, executor=ExecutorOptions(cpus_per_cell=1))
    assert torch.get_num_threads() == threads  # the caller's process keeps its threads
    (part,) = results["datasets"].values()
    assert list(part["per_seed"]["vae-z4"]) == ["3"] and part["finding"] is None
    assert not (tmp_path / "api" / "report.html").exists()


# --- Ray: a real local instance on 127.0.0.1, stopped by each test ---------------------------------------


@pytest.mark.slow  # a whole study killed and run again: CI runs it with -m slow
@needs_ray
def test_a_killed_ray_driver_resumes_to_the_local_executor_s_bytes(local_study, tmp_path):
    # Every cell of this study is computed by Ray (some before the kill, the rest after it), so the comparison
    # also shows that Ray gives the local executor's bytes.
    out, study_file = local_study
    target = tmp_path / "killed"
    command = [sys.executable, "-m", "vaelab", "study", "run", str(study_file), "--out", str(target), "--quiet",
               "--executor", "ray", "--cpus-per-cell", "1"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 300
        while not list(target.glob("runs/*/*/measures.json")) and time.time() < deadline:
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the driver and every Ray process it started
        process.wait()
    assert not (target / "results.json").exists(), "the study finished before it could be killed"
    resumed = run_cli("study", "run", str(study_file), "--out", str(target), "--quiet", "--executor", "ray",
                      "--cpus-per-cell", "1", timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert (target / "results.json").read_bytes() == (out / "results.json").read_bytes()


def test_a_finished_cell_whose_measures_do_not_read_back_is_a_failure_not_a_gap(local_study, tmp_path):
    """A cell whose measures.json no longer matches its run is listed under failed (the command then exits 2),
    never silently left out of the means."""

    from vaelab.hardware import resolve
    from vaelab.studies.study import aggregate, plan

    out, study_file = local_study
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    spec = load_study(study_file)
    cells = plan(spec)
    victim = cells[0]
    (victim.run_dir(copy) / "measures.json").write_text('{"measures": {}, "groups": ["other"]}')
    failed: list = []
    results = aggregate(spec, cells, copy, resolve("cpu", "fp32")[1], 1, failed)
    names = [f["job"] for f in results["failed"]]
    assert names == [f"{victim.model} seed {victim.seed} on {victim.dataset}"]
    assert "run the study again to redo it" in results["failed"][0]["error"]
    (part,) = results["datasets"].values()
    assert str(victim.seed) not in part["per_seed"][victim.model]


@pytest.mark.parametrize("value", ['"0.5"', "[1]", "true"])
def test_a_reused_cell_whose_measures_are_not_numbers_is_redone(local_study, tmp_path, value):
    import json

    from vaelab.studies.study import plan

    out, study_file = local_study
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    victim = plan(load_study(study_file))[0].run_dir(copy) / "measures.json"
    saved = json.loads(victim.read_text())
    saved["measures"]["silhouette"] = "PLACEHOLDER"
    victim.write_text(json.dumps(saved).replace('"PLACEHOLDER"', value))
    result = run_cli("study", "run", str(study_file), "--out", str(copy), "--quiet", "--cpus-per-cell", "1")
    assert result.returncode == 0, result.stderr
    assert (copy / "results.json").read_bytes() == (out / "results.json").read_bytes()
    assert isinstance(json.loads(victim.read_text())["measures"]["silhouette"], float)


@pytest.mark.parametrize("change", [{"name": "other"}, {"train": {"epochs": 3, "batch_size": 16}}])
def test_another_study_is_refused_in_a_finished_study_s_folder_before_anything_is_written(local_study, tiny,
                                                                                         tmp_path, change):
    out, _ = local_study
    before = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    other = _study_file(tmp_path / "other", tiny, **change)
    result = run_cli("study", "run", str(other), "--out", str(out), "--quiet")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: {out} holds another study (its study.yaml differs from {load_study(other).name!r} as given): "
        "give another --out, or delete that folder to start over"]
    assert {path: path.read_bytes() for path in out.rglob("*") if path.is_file()} == before


def test_the_same_study_with_another_title_or_comparison_reuses_its_cells(local_study, tiny, tmp_path):

    out, _ = local_study
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    weights = {path: path.read_bytes() for path in copy.rglob("weights.safetensors")}
    retitled = _study_file(tmp_path / "retitled", tiny, title="Another title",
                           comparisons=[{"a": "vae-z12", "b": "vae-z4", "measures": ["silhouette"]}])
    result = run_cli("study", "run", str(retitled), "--out", str(copy), "--quiet", "--cpus-per-cell", "1")
    assert result.returncode == 0, result.stderr
    assert {path: path.read_bytes() for path in copy.rglob("weights.safetensors")} == weights
    (part,) = json.loads((copy / "results.json").read_text())["datasets"].values()
    assert set(part["paired"]) == {"silhouette:vae-z12-vae-z4"}


def test_more_seeds_in_a_finished_study_s_folder_add_cells_and_reuse_the_others(local_study, tiny, tmp_path):
    out, _ = local_study
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    finished = {path: path.read_bytes() for path in copy.rglob("weights.safetensors")}
    grown = _study_file(tmp_path / "grown", tiny, seeds=3)
    result = run_cli("study", "run", str(grown), "--out", str(copy), "--quiet", "--cpus-per-cell", "1")
    assert result.returncode == 0, result.stderr
    assert all(path.read_bytes() == weights for path, weights in finished.items())  # seeds 0 and 1: not redone
    (part,) = json.loads((copy / "results.json").read_text())["datasets"].values()
    assert all(sorted(seeds) == ["0", "1", "2"] for seeds in part["per_seed"].values())
    assert load_study(copy / "study.yaml").seeds == [0, 1, 2]
    # and back to two: the results are the first run's again, the third seed's cells stay on disk
    result = run_cli("study", "run", str(out.parent / "study.yaml"), "--out", str(copy), "--quiet",
                     "--cpus-per-cell", "1")
    assert result.returncode == 0, result.stderr
    assert (copy / "results.json").read_bytes() == (out / "results.json").read_bytes()
    assert (copy / "runs" / "idx-tiny" / "vae-z4-seed2" / "weights.safetensors").is_file()


def test_a_reused_cell_whose_codes_have_the_right_keys_but_wrong_shapes_is_redone(local_study, tmp_path):
    """Issue 22 item 2: such a codes.npz used to be reused and then crash the report (IndexError)."""

    import numpy as np

    from vaelab.studies.study import plan

    out, study_file = local_study
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    victim = plan(load_study(study_file))[0].run_dir(copy) / "codes.npz"
    with np.load(victim) as saved:
        arrays = {name: saved[name][:3] for name in saved.files}  # 3 codes where the test split has more
    np.savez(victim, **arrays)
    result = run_cli("study", "run", str(study_file), "--out", str(copy), "--quiet", "--cpus-per-cell", "1")
    assert result.returncode == 0, result.stderr
    assert (copy / "results.json").read_bytes() == (out / "results.json").read_bytes()
    with np.load(victim) as saved:
        assert len(saved["mean"]) > 3


def test_a_run_and_a_study_never_share_a_folder(local_study, tmp_path):
    out, study_file = local_study
    before = sorted(path.name for path in out.iterdir())
    trained = run_cli("train", "--epochs", "1", "--quiet", "--out", str(out))
    assert trained.returncode == 2
    assert trained.stderr.strip() == f"error: {out} holds a study (its study.yaml), not a run: choose another --out"
    assert sorted(path.name for path in out.iterdir()) == before

    run = tmp_path / "run"
    assert run_cli("train", "--epochs", "1", "--quiet", "--out", str(run)).returncode == 0
    files = sorted(path.name for path in run.iterdir())
    studied = run_cli("study", "run", str(study_file), "--out", str(run), "--quiet")
    assert studied.returncode == 2
    assert studied.stderr.strip() == (f"error: {run} holds a training run (its model.json), not a study: give "
                                      "another --out")
    assert sorted(path.name for path in run.iterdir()) == files


def _copy_with_a_damaged_test_split(tiny: Path, target: Path, payload: bytes) -> Path:
    target.mkdir()
    for path in tiny.iterdir():
        (target / path.name).write_bytes(payload if path.name.startswith("t10k-images") else path.read_bytes())
    return target


@pytest.mark.parametrize("payload, words", [
    (None, "corrupt gzip stream"),  # the file cut short
    (b"", "not an IDX file: 0 bytes"),
])
def test_a_damaged_data_file_is_one_line_before_anything_is_written(tmp_path, tiny, payload, words):
    original = next(tiny.glob("t10k-images*")).read_bytes()
    damaged = _copy_with_a_damaged_test_split(tiny, tmp_path / "damaged",
                                              original[:len(original) // 2] if payload is None else payload)
    path = _study_file(tmp_path, damaged)
    result = run_cli("study", "run", str(path), "--out", str(tmp_path / "out"), "--quiet")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {damaged}/t10k-images") and words in lines[0], lines
    assert not (tmp_path / "out").exists()  # vaelab 0.1: one 'failed:' line per job, and a report of failures


def test_a_split_of_zero_images_is_one_line_for_train_and_study(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((0, 28, 28), np.uint8)))
    (empty / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros((0,), np.uint8)))
    message = f"error: {empty}: holds 0 images, so there is nothing to split: give files that hold images"
    trained = run_cli("train", "--dataset", f"idx:{empty}", "--epochs", "1", "--quiet", "--out", str(tmp_path / "run"))
    studied = run_cli("study", "run", str(_study_file(tmp_path, empty)), "--out", str(tmp_path / "out"), "--quiet")
    for result in (trained, studied):
        assert result.returncode == 2 and result.stderr.strip() == message, result.stderr
    assert not (tmp_path / "run").exists() and not (tmp_path / "out").exists()


def test_jobs_that_fail_for_one_cause_are_one_line(tmp_path, capsys):
    from vaelab.cli import _print_study_results
    from vaelab.errors import RunError

    failed = [{"job": f"m{k} seed 0 on d", "error": "d: the cluster lost its data"} for k in range(5)]
    failed.append({"job": "x seed 1 on d", "error": "loss became NaN"})
    with pytest.raises(RunError, match="6 job.s. failed"):
        _print_study_results({"datasets": {}, "failed": failed}, tmp_path)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("failed:")]
    assert lines == ["failed: 5 jobs (m0 seed 0 on d, m1 seed 0 on d, m2 seed 0 on d and 2 more): d: the cluster "
                     "lost its data", "failed: x seed 1 on d: loss became NaN"]


@pytest.mark.slow  # a whole shrunk study beside a second writer: CI runs it with -m slow
def test_a_second_writer_on_a_running_study_gets_one_line_and_nothing_is_mixed(local_study, tmp_path):
    out, study_file = local_study
    target = tmp_path / "busy"
    command = [sys.executable, "-m", "vaelab", "study", "run", str(study_file), "--out", str(target), "--quiet",
               "--cpus-per-cell", "1"]
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_locked(target)
        second = run_cli("study", "run", str(study_file), "--out", str(target), "--quiet", "--cpus-per-cell", "1")
        report = run_cli("report", str(target))
        assert first.poll() is None, "the first study ended before the second writer came: the test proves nothing"
    finally:
        _, first_errors = first.communicate(timeout=600)
    expected = f"error: {target} is being written by another vaelab process (pid {first.pid}): wait for it to finish"
    assert second.returncode == 2 and second.stderr.strip() == expected + ", or choose another --out"
    assert report.returncode == 2 and report.stderr.strip() == expected
    assert first.returncode == 0, first_errors
    assert (target / "results.json").read_bytes() == (out / "results.json").read_bytes()
    assert (target / "report.md").read_bytes() == (out / "report.md").read_bytes()


def test_measures_saved_before_an_evaluation_setting_existed_stay_current(local_study, tmp_path):
    """A setting added later (manifold_inits) with its default measures as before: a cell whose measures.json
    lacks it is reused; one saved with another value is redone."""

    from vaelab.studies.cells import measures_current
    from vaelab.studies.study import plan

    out, study_file = local_study
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    spec = load_study(study_file)
    cell = plan(spec)[0]
    path = cell.run_dir(copy) / "measures.json"
    saved = json.loads(path.read_text())
    settings, groups = spec.evaluation.model_dump(mode="json"), tuple(spec.measures)
    assert measures_current(cell.run_dir(copy), cell.config, settings, groups) is not None
    del saved["settings"]["manifold_inits"]  # as vaelab wrote it before the setting
    path.write_text(json.dumps(saved))
    assert measures_current(cell.run_dir(copy), cell.config, settings, groups) is not None
    saved["settings"]["manifold_inits"] = 7
    path.write_text(json.dumps(saved))
    assert measures_current(cell.run_dir(copy), cell.config, settings, groups) is None
    saved["settings"] = ["not", "settings"]
    path.write_text(json.dumps(saved))
    assert measures_current(cell.run_dir(copy), cell.config, settings, groups) is None
