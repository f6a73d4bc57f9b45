"""TensorBoard logging (`--log tensorboard`), read back with TensorBoard's own reader: the loss terms per epoch,
the image grids, the measures of a study's cell, the projector files; a logged run's weights are an unlogged
one's, bit for bit; a missing package or an unknown log is one line, before anything is written."""

from __future__ import annotations

import builtins

import numpy as np
import pytest
import yaml
from safetensors.numpy import load_file

from tests.conftest import make_tiny_idx, run_cli

pytest.importorskip("tensorboard")


def events(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    accumulator.Reload()
    return accumulator


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_tiny_idx(tmp_path_factory.mktemp("data") / "tiny")


def train(data, out, *extra):
    result = run_cli("train", "--model", "vae", "--dataset", f"idx:{data}", "--latent", "3", "--hidden", "32",
                     "--epochs", "6", "--quiet", "--out", str(out), *extra)
    assert result.returncode == 0, result.stderr
    return out


def test_a_logged_run_writes_every_epoch_the_grids_and_the_projector(data, tmp_path):
    run = train(data, tmp_path / "run", "--log", "tensorboard")
    log = events(run / "tensorboard")
    tags = log.Tags()
    assert {"train/loss", "train/recon", "train/kl", "test/loss", "test/recon", "test/kl"} <= set(tags["scalars"])
    assert [event.step for event in log.Scalars("test/loss")] == [1, 2, 3, 4, 5, 6]
    history = [line for line in (run / "metrics.jsonl").read_text().splitlines() if line]
    import json

    last = json.loads(history[-1])
    assert log.Scalars("test/loss")[-1].value == pytest.approx(last["test_loss"], rel=1e-6)
    assert {"test images", "reconstructions", "prior draws"} <= set(tags["images"])
    assert [event.step for event in log.Images("reconstructions")] == [5, 6]  # every 5 epochs and the last
    # the projector: config, the codes (one row per test image, latent columns), class names and the sprite
    projector = next((run / "tensorboard").glob("*/test codes"))
    assert 'tensor_path: "' in (run / "tensorboard" / "projector_config.pbtxt").read_text()
    rows = (projector / "tensors.tsv").read_text().splitlines()
    assert len(rows) == 30 and all(len(row.split("\t")) == 3 for row in rows)
    assert (projector / "metadata.tsv").read_text().splitlines()[:3] == ["0", "1", "2"]
    from PIL import Image

    assert Image.open(projector / "sprite.png").size == (6 * 28, 6 * 28)  # 30 images tiled 6 x 6


def test_logging_leaves_the_weights_bit_for_bit_as_they_were(data, tmp_path):
    logged = load_file(str(train(data, tmp_path / "logged", "--log", "tensorboard") / "weights.safetensors"))
    plain = load_file(str(train(data, tmp_path / "plain") / "weights.safetensors"))
    assert logged.keys() == plain.keys() and all(np.array_equal(logged[k], plain[k]) for k in plain)
    assert not (tmp_path / "plain" / "tensorboard").exists()


def test_without_the_package_or_with_an_unknown_log_nothing_is_written(data, tmp_path, monkeypatch):
    result = run_cli("train", "--dataset", f"idx:{data}", "--epochs", "1", "--quiet", "--out", str(tmp_path / "a"),
                     "--log", "wandb")
    assert result.returncode == 2 and "unknown log 'wandb': choose one of none, tensorboard" in result.stderr
    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith("torch.utils.tensorboard") or name == "tensorboard":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    result = run_cli("train", "--dataset", f"idx:{data}", "--epochs", "1", "--quiet", "--out", str(tmp_path / "b"),
                     "--log", "tensorboard")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "pip install 'vaelab[tensorboard]'" in result.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_study_logs_each_cell_under_one_root_with_its_measures(data, tmp_path):
    spec = {"name": "logged", "datasets": [f"idx:{data}"], "seeds": 1, "train": {"epochs": 2, "batch_size": 32},
            "models": {"vae": {"preset": "vae", "model": {"latent": 3, "hidden": 32}},
                       "ae": {"preset": "ae", "model": {"latent": 3, "hidden": 32}}},
            "measures": ["separation", "map"], "evaluation": {"tsne_points": 20, "tsne_iterations": 50}}
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    result = run_cli("study", "run", str(tmp_path / "study.yaml"), "--out", str(tmp_path / "out"), "--quiet",
                     "--log", "tensorboard")
    assert result.returncode == 0, result.stderr
    root = tmp_path / "out" / "tensorboard"
    cells = sorted(path.relative_to(root).as_posix() for path in root.glob("*/*") if path.is_dir())
    assert len(cells) == 2 and cells[0].endswith("/ae-seed0") and cells[1].endswith("/vae-seed0")
    import json

    cell = root / cells[1]
    measured = json.loads(next((tmp_path / "out" / "runs").glob("*/vae-seed0/measures.json")).read_text())["measures"]
    log = events(cell)
    assert log.Scalars("measures/silhouette")[0].value == pytest.approx(measured["silhouette"], rel=1e-6)
    assert log.Scalars("measures/silhouette")[0].step == 2
    assert not any(tag.startswith("measures/silhouette_class_") for tag in log.Tags()["scalars"])  # no details
    rows = next(cell.glob("*/test codes")).joinpath("tensors.tsv").read_text().splitlines()
    assert len(rows) == 20  # the report's t-SNE points, the same images
    # the same study without the log is the same study: its finished cells are reused
    again = run_cli("study", "run", str(tmp_path / "study.yaml"), "--out", str(tmp_path / "out"), "--quiet")
    assert again.returncode == 0, again.stderr


@pytest.mark.slow  # starts TensorBoard's own server and a browser (about 15 s)
def test_tensorboard_serves_the_logged_run_to_a_browser(data, tmp_path):
    import json
    import re
    import subprocess
    import sys
    import time
    import urllib.request

    from tests.conftest import chromium_page

    run = train(data, tmp_path / "run", "--log", "tensorboard")
    server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(run / "tensorboard"),
                               "--host", "127.0.0.1", "--port", "0", "--load_fast=false"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url, deadline = None, time.monotonic() + 90
        while url is None and time.monotonic() < deadline:
            line = server.stdout.readline()
            if not line and server.poll() is not None:
                break
            found = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
            url = found.group(1) if found else None
        assert url is not None, "TensorBoard did not start"
        with urllib.request.urlopen(url + "data/plugin/scalars/tags", timeout=30) as answer:
            tags = json.loads(answer.read())
        assert "test/loss" in tags["."] and "measures/silhouette" not in tags["."]
        with chromium_page() as page:
            page.goto(url + "#scalars")
            page.wait_for_selector("text=tag: test/loss", timeout=60_000)  # the chart's card, in its shadow DOM
    finally:
        server.terminate()
        server.wait(timeout=30)
