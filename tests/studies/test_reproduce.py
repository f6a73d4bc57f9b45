"""`vaelab reproduce` on a tiny data set: results, reuse, determinism, report, browser."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import silhouette_score

import vaelab
from tests.conftest import check_report_in_browser, make_tiny_idx, run_cli
from vaelab.analysis.compare import fmt
from vaelab.studies.spec import load_study

SEEDS = 2
MODELS = ["ae", "vae", "conv-vae", "convenc-vae"]


def _spec(data: Path):
    """The built-in thesis study on the tiny IDX data, with training cut to a few epochs."""
    return load_study("thesis").with_overrides(datasets=[f"idx:{data}"], seeds=SEEDS, epochs_scale=0.01)


def _study(root: Path, data: Path) -> dict:
    return vaelab.run_study(_spec(data), root)  # the API: the engine runs the cells, the report follows


def _part(results: dict) -> dict:
    (part,) = results["datasets"].values()
    return part


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    return make_tiny_idx(tmp_path_factory.mktemp("data") / "tiny")


@pytest.fixture(scope="module")
def study(tmp_path_factory, tiny_data) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("study")
    return root, _study(root, tiny_data)


def test_results_hold_every_model_seed_and_aggregate(study):
    root, results = study
    saved = json.loads((root / "results.json").read_text())
    assert saved == json.loads(json.dumps(results))
    assert saved["failed"] == [] and saved["study"]["name"] == "thesis"
    part = _part(saved)
    assert list(part["per_seed"]) == MODELS
    for model in MODELS:
        assert sorted(part["per_seed"][model]) == [str(s) for s in range(SEEDS)]
        cell = part["aggregate"][model]["silhouette"]
        values = [part["per_seed"][model][str(s)]["silhouette"] for s in range(SEEDS)]
        assert cell["n"] == SEEDS and cell["mean"] == pytest.approx(np.mean(values)) and cell["ci"] > 0
    assert saved["study"]["reference"]["values"] == {"ae": 0.1475, "vae": 0.1117, "conv-vae": 0.1182}
    assert "silhouette" in part["finding"] and "ae - vae" in part["finding"]
    pair = part["paired"]["silhouette:ae-vae"]
    diffs = [part["per_seed"]["ae"][str(s)]["silhouette"] - part["per_seed"]["vae"][str(s)]["silhouette"]
             for s in range(SEEDS)]
    assert pair["mean"] == pytest.approx(np.mean(diffs))


def test_silhouette_in_results_equals_sklearn_on_the_saved_codes(study):
    root, results = study
    part = _part(results)
    for model in MODELS:
        for seed in range(SEEDS):
            with np.load(root / part["runs"][model][str(seed)] / "codes.npz") as codes:
                assert ("logvar" in codes.files) == (model != "ae")
                oracle = silhouette_score(codes["mean"].astype(np.float64), codes["labels"])
            assert part["per_seed"][model][str(seed)]["silhouette"] == pytest.approx(oracle, abs=1e-12)


def test_study_folder_layout(study):
    root, _ = study
    for name in ("results.json", "timings.json", "hardware.json", "study.yaml", "report.html", "report.md"):
        assert (root / name).is_file(), name
    figures = sorted(p.name for p in (root / "figures" / "idx-tiny").glob("*.png"))
    assert figures == sorted(FIGURES)
    for model in MODELS:
        for seed in range(SEEDS):
            run = root / "runs" / "idx-tiny" / f"{model}-seed{seed}"
            assert json.loads((run / "model.json").read_text())["status"] == "finished"
            for name in ("measures.json", "codes.npz", "map.npz", "grids.npz"):
                assert (run / name).is_file(), name
            with np.load(run / "grids.npz", allow_pickle=False) as grids:  # what the report draws, decoded once
                assert grids["reconstructions"].shape == (10, 28, 28) and grids["centroids"].shape == (3, 28, 28)
                assert grids["perturbed"].shape == (4, 10, 28, 28) and list(grids["class_names"]) == ["0", "1", "2"]
    assert not list(root.rglob("*.tmp")), "temporary files left behind"


FIGURES = ["reconstructions.png", "centroids.png", "prior.png", "tsne.png", "silhouette.png", "perturbation.png",
           "perturbation_curve.png", "measures.png", "training.png", "traversal.png"]


class _NumberSpans(HTMLParser):
    def __init__(self):
        super().__init__()
        self.found: list[tuple[str, str]] = []
        self._key = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "span" and "data-key" in attrs:
            self._key = attrs["data-key"]

    def handle_data(self, data):
        if self._key is not None:
            self.found.append((self._key, data))
            self._key = None


def _lookup(results: dict, key: str):
    head, _, rest = key.partition(".")
    value = results[head]
    # model names contain dashes and measure names dots (sigma 0.5): match the longest known key first
    while rest:
        match = max((k for k in value if rest == k or rest.startswith(k + ".")), key=len)
        value, rest = value[match], rest[len(match) + 1:]
    return value


def test_every_number_in_the_report_equals_results_json(study):
    root, results = study
    parser = _NumberSpans()
    parser.feed((root / "report.html").read_text())
    assert len(parser.found) > 200
    keys = {key for key, _ in parser.found}
    (dataset,) = results["datasets"]
    base = f"datasets.{dataset}"
    for model in MODELS:
        assert f"{base}.aggregate.{model}.silhouette.mean" in keys
        for seed in range(SEEDS):
            assert f"{base}.per_seed.{model}.{seed}.silhouette" in keys
    assert "study.reference.values.ae" in keys and f"{base}.paired.silhouette:ae-vae.mean" in keys
    for key, text in parser.found:
        assert text == fmt(_lookup(results, key)), key
    markdown = (root / "report.md").read_text()
    assert _part(results)["finding"] in markdown
    assert fmt(_part(results)["aggregate"]["vae"]["silhouette"]["mean"]) in markdown


def test_report_is_self_contained(study):
    root, _ = study
    html = (root / "report.html").read_text()
    sources = re.findall(r'<img src="([^"]{0,30})', html)
    assert len(sources) == len(FIGURES) and all(s.startswith("data:image/png;base64,") for s in sources)
    # nothing is fetched from elsewhere (plotly.js is inlined; its code mentions URLs it never loads here)
    markup = re.sub(r"<script[^>]*>.*?</script>", "", html, flags=re.S)
    assert not re.findall(r'(?:src|href)\s*=\s*["\']?(?:https?:)?//', markup)
    assert html.count("<script>") == 2 and "plotly.js v" in html  # plotly.js inlined, then the maps' code
    assert len(html) < 10_000_000


def test_second_run_reuses_everything_and_gives_identical_results(study, tiny_data):
    root, _ = study
    checkpoints = {p: p.stat().st_mtime_ns for p in root.rglob("checkpoint.safetensors")}
    measures = {p: p.stat().st_mtime_ns for p in root.rglob("measures.json")}
    before = (root / "results.json").read_bytes()
    _study(root, tiny_data)
    assert {p: p.stat().st_mtime_ns for p in root.rglob("checkpoint.safetensors")} == checkpoints
    assert {p: p.stat().st_mtime_ns for p in root.rglob("measures.json")} == measures
    assert (root / "results.json").read_bytes() == before


def test_missing_pieces_are_redone_alone(study, tiny_data):
    root, _ = study
    before = (root / "results.json").read_bytes()
    (root / "runs" / "idx-tiny" / "vae-seed1" / "codes.npz").unlink()
    kept = root / "runs" / "idx-tiny" / "ae-seed0" / "measures.json"
    kept_mtime = kept.stat().st_mtime_ns
    _study(root, tiny_data)
    assert (root / "runs" / "idx-tiny" / "vae-seed1" / "codes.npz").is_file()
    assert kept.stat().st_mtime_ns == kept_mtime
    assert (root / "results.json").read_bytes() == before


def test_two_studies_with_the_same_seeds_give_identical_results(study, tiny_data, tmp_path):
    root, _ = study
    _study(tmp_path / "again", tiny_data)
    assert (tmp_path / "again" / "results.json").read_bytes() == (root / "results.json").read_bytes()


def test_report_command_redraws_without_training(study):
    root, _ = study
    checkpoints = {p: p.stat().st_mtime_ns for p in root.rglob("*.safetensors")}
    html_before = (root / "report.html").read_text()
    for figure in (root / "figures").rglob("*.png"):
        figure.unlink()
    (root / "report.html").unlink()
    result = run_cli("report", str(root))
    assert result.returncode == 0, result.stderr
    assert "report.html" in result.stdout
    assert (root / "report.html").read_text() == html_before
    assert len(list((root / "figures").rglob("*.png"))) == len(FIGURES)
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.safetensors")} == checkpoints


def test_report_command_on_a_folder_without_results(tmp_path):
    result = run_cli("report", str(tmp_path))
    assert result.returncode == 2 and "no results.json" in result.stderr and "Traceback" not in result.stderr


def test_compare_marks_the_best_model_per_row(study):
    root, results = study
    result = run_cli("compare", str(root))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "| measure | ae | vae | conv-vae | convenc-vae |"
    row = next(line for line in lines if line.startswith("| silhouette ↑"))
    means = {m: _part(results)["aggregate"][m]["silhouette"]["mean"] for m in MODELS}
    best = max(means, key=means.get)
    cells = [c.strip() for c in row.strip("|").split("|")][1:]
    assert cells[list(MODELS).index(best)].startswith("**")
    csv_out = run_cli("compare", str(root), "--format", "csv").stdout
    assert csv_out.splitlines()[0].startswith("measure,ae mean,ae ci,ae n,")
    as_json = json.loads(run_cli("compare", str(root), "--format", "json").stdout)
    assert as_json["models"] == list(MODELS)


def test_report_renders_every_figure_in_a_real_browser(study, tmp_path):
    root, _ = study
    seen = check_report_in_browser(root / "report.html", tmp_path / "report.png")
    assert len(seen["images"]) == len(FIGURES)
    for image in seen["images"]:
        assert image["complete"] and image["width"] > 100, image
        assert image["spread"] > 100, f"{image['alt']} looks blank"
    assert seen["failed_requests"] == [] and seen["errors"] == []
    assert "latent space" in seen["title"]
    # the interactive t-SNE map: hovering a point shows that test image
    hover = seen["hover"]
    assert hover["distance"] < 10 and hover["shows_it"], hover  # the point under the mouse, and its image
    assert hover["caption"].startswith(f"test image #{hover['hovered']}: ")
    assert (tmp_path / "report.png").stat().st_size > 50_000


@pytest.mark.parametrize("mean,ci,verdict", [
    (0.03, 0.01, "The thesis's finding holds: the AE's codes separate the classes better"),
    (-0.03, 0.01, "does not hold here: the VAE's codes separate the classes better"),
    (0.005, 0.01, "holds in its weaker form"),
    (0.005, None, "With one seed the comparison has no interval"),
])
def test_finding_sentence_follows_the_paired_interval(mean, ci, verdict):
    from vaelab.studies.study import finding_sentence

    question = load_study("thesis").finding
    sentence = finding_sentence(question, 0.12, 0.12 - mean, {"mean": mean, "ci": ci, "n": 3 if ci else 1})
    assert verdict in sentence and f"ae - vae = {mean:+.4f}" in sentence
    assert ("95% CI" in sentence) == (ci is not None)


KILL_SEED = 20261203  # the kill moments are seeded: the same moments on every run of the suite
# Each window: the file whose appearance opens it (the study's own progress), and the range of the seeded delay
# after it, chosen from the tiny study's measured phase lengths (a conv cell trains ~1 s and measures ~2.5 s,
# the aggregate takes ~0.1 s, the figures ~12 s; on a slower machine every window is longer).
KILL_WINDOWS = {
    "cell training": ("runs/idx-tiny/conv-vae-seed0/model.json", (0.0, 0.5)),
    "cell measuring": ("runs/idx-tiny/conv-vae-seed1/weights.safetensors", (0.2, 1.5)),
    "aggregation": ("runs/idx-tiny/convenc-vae-seed1/measures.json", (0.0, 0.02)),
    "report drawing": ("results.json", (0.5, 6.0)),
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
def test_a_study_killed_in_every_phase_resumes_to_the_same_results_and_report(study, tiny_data, tmp_path):
    """One folder, four SIGKILLs in turn (each run resumes the last one's work and is killed further on), then a
    run to the end: its results.json and report.md are byte-identical to an uninterrupted run's."""
    import os
    import signal
    import subprocess
    import sys
    import time

    root, _ = study
    out = tmp_path / "killed"
    script = ("import sys; from pathlib import Path; from tests.studies.test_reproduce import _study; "
              "_study(Path(sys.argv[1]), Path(sys.argv[2]))")
    command = [sys.executable, "-c", script, str(out), str(tiny_data)]
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
