"""`vaelab reproduce` on a tiny data set: results, reuse, determinism, compare, resume (report: tests/report)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import silhouette_score

import vaelab
from tests.conftest import REPORT_FIGURES, THESIS_MODELS, THESIS_SEEDS, only_part, run_cli, run_tiny_thesis
from vaelab.studies.spec import load_study
from vaelab.studies.study import finding_sentence

SEEDS, MODELS = THESIS_SEEDS, THESIS_MODELS


def test_results_hold_every_model_seed_and_aggregate(thesis_study):
    root, results = thesis_study
    saved = json.loads((root / "results.json").read_text())
    assert saved == json.loads(json.dumps(results))
    assert saved["failed"] == [] and saved["study"]["name"] == "thesis"
    part = only_part(saved)
    assert list(part["per_seed"]) == MODELS
    for model in MODELS:
        assert sorted(part["per_seed"][model]) == [str(s) for s in range(SEEDS)]
        cell = part["aggregate"][model]["silhouette"]
        values = [part["per_seed"][model][str(s)]["silhouette"] for s in range(SEEDS)]
        assert cell["n"] == SEEDS and cell["mean"] == pytest.approx(np.mean(values)) and cell["ci"] > 0
    assert saved["study"]["reference"][0]["values"] == {"ae": 0.1475, "vae": 0.1117, "conv-vae": 0.1182}
    assert "silhouette" in part["finding"] and "ae - vae" in part["finding"]
    (further,) = part["further_findings"]  # experiment 3b
    assert further.startswith("Experiment 3b: the AE ") and "expost_fd" in further and "ae - vae" in further
    pair = part["paired"]["silhouette:ae-vae"]
    diffs = [part["per_seed"]["ae"][str(s)]["silhouette"] - part["per_seed"]["vae"][str(s)]["silhouette"]
             for s in range(SEEDS)]
    assert pair["mean"] == pytest.approx(np.mean(diffs))


def test_silhouette_in_results_equals_sklearn_on_the_saved_codes(thesis_study):
    root, results = thesis_study
    part = only_part(results)
    for model in MODELS:
        for seed in range(SEEDS):
            with np.load(root / part["runs"][model][str(seed)] / "codes.npz") as codes:
                assert ("logvar" in codes.files) == (model != "ae")
                oracle = silhouette_score(codes["mean"].astype(np.float64), codes["labels"])
            assert part["per_seed"][model][str(seed)]["silhouette"] == pytest.approx(oracle, abs=1e-12)


def test_study_folder_layout(thesis_study):
    root, _ = thesis_study
    for name in ("results.json", "timings.json", "hardware.json", "study.yaml", "report.html", "report.md"):
        assert (root / name).is_file(), name
    figures = sorted(p.name for p in (root / "figures" / "idx-tiny").glob("*.png"))
    assert figures == sorted(REPORT_FIGURES)
    for model in MODELS:
        for seed in range(SEEDS):
            run = root / "runs" / "idx-tiny" / f"{model}-seed{seed}"
            assert json.loads((run / "model.json").read_text())["status"] == "finished"
            for name in ("measures.json", "codes.npz", "map.npz", "grids.npz", "expost.npz"):
                assert (run / name).is_file(), name
            with np.load(run / "grids.npz", allow_pickle=False) as grids:  # what the report draws, decoded once
                assert grids["reconstructions"].shape == (10, 28, 28) and grids["centroids"].shape == (3, 28, 28)
                assert grids["expost"].shape == grids["prior"].shape == (12, 28, 28)
                assert grids["perturbed"].shape == (4, 10, 28, 28) and list(grids["class_names"]) == ["0", "1", "2"]
    assert not list(root.rglob("*.tmp")), "temporary files left behind"


def test_second_run_reuses_everything_and_gives_identical_results(thesis_study, thesis_data):
    root, _ = thesis_study
    checkpoints = {p: p.stat().st_mtime_ns for p in root.rglob("checkpoint.safetensors")}
    measures = {p: p.stat().st_mtime_ns for p in root.rglob("measures.json")}
    before = (root / "results.json").read_bytes()
    run_tiny_thesis(root, thesis_data)
    assert {p: p.stat().st_mtime_ns for p in root.rglob("checkpoint.safetensors")} == checkpoints
    assert {p: p.stat().st_mtime_ns for p in root.rglob("measures.json")} == measures
    assert (root / "results.json").read_bytes() == before


def test_missing_pieces_are_redone_alone(thesis_study, thesis_data):
    root, _ = thesis_study
    before = (root / "results.json").read_bytes()
    (root / "runs" / "idx-tiny" / "vae-seed1" / "codes.npz").unlink()
    kept = root / "runs" / "idx-tiny" / "ae-seed0" / "measures.json"
    kept_mtime = kept.stat().st_mtime_ns
    run_tiny_thesis(root, thesis_data)
    assert (root / "runs" / "idx-tiny" / "vae-seed1" / "codes.npz").is_file()
    assert kept.stat().st_mtime_ns == kept_mtime
    assert (root / "results.json").read_bytes() == before


def test_a_fresh_study_of_the_same_seed_gives_identical_files(thesis_study, thesis_data, tmp_path):
    # Seed 1 alone, in a new folder: each of its cells trains and measures to the same bytes as in the first
    # study (half the cost of the whole study again; that the same cells aggregate to the same results.json
    # is test_second_run_reuses_everything_and_gives_identical_results).
    root, _ = thesis_study
    spec = load_study("thesis").with_overrides(datasets=[f"idx:{thesis_data}"], seeds=[1], epochs_scale=0.01)
    vaelab.run_study(spec, tmp_path / "again")
    for model in MODELS:
        cell = Path("runs") / "idx-tiny" / f"{model}-seed1"
        for name in ("weights.safetensors", "codes.npz", "map.npz", "grids.npz"):
            assert (tmp_path / "again" / cell / name).read_bytes() == (root / cell / name).read_bytes(), (cell, name)
        again, first = (json.loads((folder / cell / "measures.json").read_text()) for folder in (tmp_path / "again", root))
        assert again.pop("timings").keys() == first.pop("timings").keys()  # how long each took: the one difference
        assert again == first, cell


def test_compare_marks_the_best_model_per_row(thesis_study):
    root, results = thesis_study
    result = run_cli("compare", str(root))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "| measure | ae | vae | conv-vae | convenc-vae |"
    row = next(line for line in lines if line.startswith("| silhouette ↑"))
    means = {m: only_part(results)["aggregate"][m]["silhouette"]["mean"] for m in MODELS}
    best = max(means, key=means.get)
    cells = [c.strip() for c in row.strip("|").split("|")][1:]
    assert cells[list(MODELS).index(best)].startswith("**")
    csv_out = run_cli("compare", str(root), "--format", "csv").stdout
    assert csv_out.splitlines()[0].startswith("measure,ae mean,ae ci,ae n,")
    as_json = json.loads(run_cli("compare", str(root), "--format", "json").stdout)
    assert as_json["models"] == list(MODELS)


@pytest.mark.parametrize("mean,ci,verdict", [
    (0.03, 0.01, "The thesis's finding holds: the AE's codes separate the classes better"),
    (-0.03, 0.01, "does not hold here: the VAE's codes separate the classes better"),
    (0.005, 0.01, "holds in its weaker form"),
    (0.005, None, "With one seed the comparison has no interval"),
])
def test_finding_sentence_follows_the_paired_interval(mean, ci, verdict):
    question = load_study("thesis").finding[0]
    sentence = finding_sentence(question, 0.12, 0.12 - mean, {"mean": mean, "ci": ci, "n": 3 if ci else 1})
    assert verdict in sentence and f"ae - vae = {mean:+.4f}" in sentence
    assert ("95% CI" in sentence) == (ci is not None)


@pytest.mark.parametrize("mean,verdict", [
    (40.0, "Experiment 3b: the AE does not generate as well as the VAE from its ex-post density"),
    (-40.0, "Experiment 3b: the AE generates as well as the VAE from its ex-post density, and better"),
    (5.0, "Experiment 3b: the AE generates as well as the VAE from its ex-post density; their Fréchet"),
])
def test_experiment_3b_is_the_thesis_study_s_second_finding(mean, verdict):
    question = load_study("thesis").finding[1]
    assert (question.a, question.b, question.measure) == ("ae", "vae", "expost_fd")  # lower is better
    sentence = finding_sentence(question, 100.0 + mean, 100.0, {"mean": mean, "ci": 10.0, "n": 3})
    assert sentence.startswith(verdict) and f"ae - vae = {mean:+.4f} ± 10.0000" in sentence


KILL_SEED = 20261203  # the kill moments are seeded: the same moments on every run of the suite
# Each window: a file written inside the phase (the study's own progress) and the range of the seeded delay after
# it. The windows are sized for the fastest CPU seen (AVX-512, the test alone on 2 cores: a conv cell's one epoch
# ~0.2 s after its model.json, its measures ~0.5 s, the aggregate ~0.02 s before results.json, ~1 s from the
# report's first figure to report.md); a slower machine only makes each phase longer. The report's window opens
# at its first figure: since the report draws a grid as one mosaic, a fixed delay after results.json could land
# after the report (it did, 2.49 s after it, on AVX-512).
KILL_WINDOWS = {
    "cell training": ("runs/idx-tiny/conv-vae-seed0/model.json", (0.0, 0.08)),
    "cell measuring": ("runs/idx-tiny/conv-vae-seed1/weights.safetensors", (0.03, 0.25)),
    "aggregation": ("runs/idx-tiny/convenc-vae-seed1/measures.json", (0.0, 0.008)),
    "report drawing": ("figures/idx-tiny/reconstructions.png", (0.0, 0.3)),
}


def _phase_at_kill(out: Path) -> str:
    """Which phase the killed study was in, read from the files it left (it wrote nothing after the kill)."""
    if (out / "results.json").exists():
        return "finished" if (out / "report.md").exists() else "report drawing"
    cells = [folder for folder in (out / "runs" / "idx-tiny").glob("*-seed*") if folder.is_dir()]
    if len(cells) == len(MODELS) * SEEDS and all((folder / "measures.json").exists() for folder in cells):
        return "aggregation"
    for folder in cells:
        if (folder / "model.json").exists() and not (folder / "measures.json").exists():
            finished = json.loads((folder / "model.json").read_text())["status"] == "finished"
            return "cell measuring" if finished else "cell training"
    return "cell training"  # between two cells: the next one is starting


@pytest.mark.slow  # the study killed once in each phase, resumed each time: CI runs it with -m slow
def test_a_study_killed_in_every_phase_resumes_to_the_same_results_and_report(thesis_study, thesis_data, tmp_path):
    """One folder, four SIGKILLs in turn (each run resumes the last one's work and is killed further on), then a
    run to the end: its results.json and report.md are byte-identical to an uninterrupted run's."""
    root, _ = thesis_study
    out = tmp_path / "killed"
    script = ("import sys; from pathlib import Path; from tests.conftest import run_tiny_thesis; "
              "run_tiny_thesis(Path(sys.argv[1]), Path(sys.argv[2]))")
    command = [sys.executable, "-c", script, str(out), str(thesis_data)]
    delays = np.random.default_rng(KILL_SEED).uniform(0.0, 1.0, len(KILL_WINDOWS))
    hits = {}
    for (phase, (trigger, (low, high))), fraction in zip(KILL_WINDOWS.items(), delays):
        delay = low + fraction * (high - low)
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        while not (out / trigger).exists() and time.time() < deadline and process.poll() is None:
            time.sleep(0.001)
        time.sleep(delay)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        hits[phase] = _phase_at_kill(out)
        print(f"SIGKILL {delay:.3f} s after {trigger}: landed in {hits[phase]}")  # with -s: the record of each kill
    assert hits == {phase: phase for phase in KILL_WINDOWS}, hits
    finished = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr
    assert (out / "results.json").read_bytes() == (root / "results.json").read_bytes()
    assert (out / "report.md").read_bytes() == (root / "report.md").read_bytes()
    assert not list(out.rglob("*.tmp"))
