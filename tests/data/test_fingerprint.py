"""A run remembers exactly what data it was trained on: swapped data is refused, caches are rebuilt."""

from __future__ import annotations

import dataclasses

import numpy as np

from vaelab.analysis.classifier import load_or_train_classifier
from vaelab.data.registry import load_dataset
from tests.conftest import make_tiny_idx, run_cli, write_idx_pair


def test_fingerprint_is_stable_and_sees_a_single_changed_pixel():
    a, b = load_dataset("mnist-5k", seed=0), load_dataset("mnist-5k", seed=0)
    assert a.fingerprint == b.fingerprint == a.summary()["fingerprint"]
    changed = a.test_images.copy()
    changed[0, 0, 0] ^= 1
    assert dataclasses.replace(a, test_images=changed).fingerprint != a.fingerprint
    assert load_dataset("mnist-5k", seed=1).fingerprint != a.fingerprint  # another split


def test_evaluate_and_resume_refuse_a_swapped_idx_folder(tmp_path):
    folder = make_tiny_idx(tmp_path / "data")
    run_dir = tmp_path / "run"
    trained = run_cli("train", "--dataset", f"idx:{folder}", "--epochs", "1", "--hidden", "32", "--latent", "2",
                      "--quiet", "--out", str(run_dir))
    assert trained.returncode == 0, trained.stderr
    rng = np.random.default_rng(1)  # another data set under the same name
    write_idx_pair(folder, "train", rng.integers(0, 255, (120, 28, 28)), np.arange(120) % 3)
    for command in (("evaluate", str(run_dir), "--measures", "separation"), ("train", "--resume", str(run_dir))):
        result = run_cli(*command)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "is not the data" in lines[0] and "fingerprint" in lines[0]
    assert not (run_dir / "measures.json").exists()


def test_the_classifier_cache_is_rebuilt_for_other_data(tmp_path):
    data = load_dataset("mnist-5k", seed=0)
    small = dataclasses.replace(data, train_images=data.train_images[:300], train_labels=data.train_labels[:300])
    _, first = load_or_train_classifier(tmp_path / "clf", small, 0, epochs=1)
    _, again = load_or_train_classifier(tmp_path / "clf", small, 0, epochs=1)
    assert again == first
    other = dataclasses.replace(small, train_images=255 - small.train_images)
    _, rebuilt = load_or_train_classifier(tmp_path / "clf", other, 0, epochs=1)
    assert rebuilt["data_fingerprint"] == other.fingerprint != first["data_fingerprint"]
