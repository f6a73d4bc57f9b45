"""Hostile input through the CLI, as a user would meet it: one line on stderr, exit 2, nothing half-written."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli, write_idx_pair

TINY = ("--hidden", "32", "--latent", "2", "--quiet")


def default_sigint() -> None:
    """In the child: Ctrl-C delivered as usual, even when the test runs in a background job (where the
    shell ignores SIGINT and Python then installs no KeyboardInterrupt handler)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def one_line_error(result, *words: str) -> str:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def blobs(n: int, labels: np.ndarray, size: int = 28) -> np.ndarray:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 40, size=(n, size, size))
    for k in np.unique(labels):
        images[labels == k, 2:6, 2 + (int(k) % 5) * 4: 6 + (int(k) % 5) * 4] = 250
    return images


def idx_folder(tmp_path: Path, train_labels, test_labels, train_size: int = 28, test_size: int = 28) -> Path:
    folder = tmp_path / "data"
    train_labels, test_labels = np.asarray(train_labels), np.asarray(test_labels)
    write_idx_pair(folder, "train", blobs(len(train_labels), train_labels, train_size), train_labels % 256)
    write_idx_pair(folder, "t10k", blobs(len(test_labels), test_labels, test_size), test_labels % 256)
    return folder


@pytest.mark.parametrize("case, train, test, sizes, words", [
    ("one class", [0] * 40, [0] * 10, (28, 28), ("single class",)),
    ("five images", [0, 1, 0, 1, 0], [0, 1, 0], (28, 28), ("has 5 images", "at least 10")),
    ("sizes differ", [0, 1] * 20, [0, 1] * 5, (28, 20), ("both splits need one size",)),
])
def test_degenerate_data_is_refused_before_training(tmp_path, case, train, test, sizes, words):
    folder = idx_folder(tmp_path, train, test, *sizes)
    out = tmp_path / "run"
    one_line_error(run_cli("train", "--dataset", f"idx:{folder}", "--epochs", "1", "--out", str(out), *TINY), *words)
    assert not out.exists()


def test_gapped_labels_are_remapped_and_named_by_their_values(tmp_path):
    labels = np.array([3, 7, 9] * 14)
    folder = idx_folder(tmp_path, labels, labels[:12])
    from vaelab.data.registry import load_dataset

    data = load_dataset(f"idx:{folder}")
    assert data.class_names == ["3", "7", "9"]
    assert set(np.unique(data.train_labels)) == {0, 1, 2}
    result = run_cli("train", "--dataset", f"idx:{folder}", "--epochs", "1", "--out", str(tmp_path / "run"), *TINY)
    assert result.returncode == 0, result.stderr


def test_a_class_with_one_image_gets_advice_that_can_help(tmp_path):
    folder = tmp_path / "one-split"
    labels = np.array([0, 1] * 20 + [2])
    write_idx_pair(folder, "train", blobs(len(labels), labels), labels)
    one_line_error(run_cli("train", "--dataset", f"idx:{folder}", "--epochs", "1", "--out", str(tmp_path / "r"), *TINY),
                   "class 2 has a single image")


def test_an_output_path_that_is_a_file(tmp_path):
    target = tmp_path / "a-file"
    target.write_text("keep me")
    one_line_error(run_cli("train", "--epochs", "1", "--out", str(target), *TINY), str(target))
    assert target.read_text() == "keep me"


def test_encode_into_a_folder(tmp_path):
    run_dir = tmp_path / "run"
    assert run_cli("train", "--epochs", "1", "--out", str(run_dir), *TINY).returncode == 0
    folder = tmp_path / "codes"
    folder.mkdir()
    one_line_error(run_cli("encode", str(run_dir), "--out", str(folder)), str(folder))
    assert list(folder.iterdir()) == [] and not list(tmp_path.glob(".*.tmp"))


def test_a_config_file_that_is_not_text(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_bytes(b"\xff\xfe\x00binary\x00")
    one_line_error(run_cli("train", "--config", str(config), "--out", str(tmp_path / "r")), "run.yaml")


@pytest.mark.parametrize("args, words", [
    (("--beta", "inf"), ("'model.beta'",)),
    (("--lr", "nan"), ("'train.lr'",)),
    (("--epochs", "abc"), ("--epochs", "vaelab train --help")),
    (("--device", "cuda:7"), ("cuda:7",)),
])
def test_bad_option_values_get_one_line(tmp_path, args, words):
    one_line_error(run_cli("train", *args, "--out", str(tmp_path / "r")), *words)
    assert not (tmp_path / "r").exists()


def test_evaluate_iwae_k_zero_gets_one_line(tmp_path):
    one_line_error(run_cli("evaluate", str(tmp_path), "--iwae-k", "0"), "--iwae-k")


def test_divergence_in_the_first_epoch_says_nothing_was_kept_and_how_to_go_on(tmp_path):
    out = tmp_path / "run"
    line = one_line_error(run_cli("train", "--lr", "0.9", "--beta", "50", "--epochs", "2", "--out", str(out), *TINY),
                          "NaN/Inf in epoch 1", "holds no weights", "--beta below 50", "another --out")
    assert "checkpoint of epoch 0" not in line


def test_ctrl_c_says_how_to_continue_and_the_run_resumes(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "vaelab", "train", "--epochs", "100000", "--out", str(out), *TINY]  # cannot finish first
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=default_sigint)
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if json.loads((out / "model.json").read_text())["epochs_done"] >= 1:
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()  # whatever happened, stop what the test started
    assert process.returncode == 130
    assert err.strip().splitlines()[-1].startswith("interrupted: finished work is saved")
    assert "Traceback" not in err
    from vaelab.training.checkpoint import load_checkpoint

    done = load_checkpoint(out).epoch  # the source of truth (model.json may lag it by one write)
    assert 1 <= done < 100000
    resumed = run_cli("train", "--resume", str(out), "--epochs", str(done + 1), "--quiet")
    assert resumed.returncode == 0, resumed.stderr


@pytest.mark.slow  # a whole study killed and run again: CI runs it with -m slow
def test_ctrl_c_under_the_study_progress_display_says_how_to_continue(tmp_path):
    from tests.conftest import make_tiny_idx

    data = make_tiny_idx(tmp_path / "tiny")
    out = tmp_path / "study"
    command = [sys.executable, "-m", "vaelab", "reproduce", "--dataset", f"idx:{data}", "--seeds", "1",
               "--out", str(out)]  # with the progress display
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=default_sigint)
    try:
        deadline = time.time() + 120
        while not (out / "runs" / "idx-tiny" / "ae-seed0" / "model.json").exists() and time.time() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1].startswith("interrupted: finished work is saved")
    assert "Traceback" not in stderr and "done (" not in stdout
    assert not (out / "results.json").exists()
    resumed = run_cli("reproduce", "--dataset", f"idx:{data}", "--seeds", "1", "--out", str(out), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
