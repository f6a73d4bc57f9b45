"""`compare` never merges runs or studies that differ: grouping by the whole config, distinct labels."""

from __future__ import annotations

from pathlib import Path

import pytest

from vaelab.analysis.compare import collect, reference_applies, references_for
from vaelab.api import make_config
from vaelab.errors import RunError
from vaelab.io import write_json
from vaelab.records import write_model_json


def fake_run(folder: Path, silhouette: float, **options) -> Path:
    """A run directory with model.json and measures.json only: what `compare` reads."""
    config = make_config("vae", **options)
    write_model_json(folder, config, {"name": "mnist-5k"}, config.train.epochs, "finished")
    write_json(folder / "measures.json", {"measures": {"silhouette": silhouette}})
    return folder


def test_runs_that_differ_only_in_latent_size_stay_apart(tmp_path):
    a = fake_run(tmp_path / "z8", 0.1, latent=8, seed=0)
    b = fake_run(tmp_path / "z32", 0.2, latent=32, seed=0)
    table = collect([a, b])
    assert len(table) == 2
    assert {values["0"]["silhouette"] for values in table.values()} == {0.1, 0.2}
    assert any("latent=8" in label for label in table) and any("latent=32" in label for label in table)


def test_runs_that_differ_only_in_learning_rate_stay_apart(tmp_path):
    table = collect([fake_run(tmp_path / "a", 0.1, lr=1e-3), fake_run(tmp_path / "b", 0.2, lr=3e-3)])
    assert sorted(label.split()[-1] for label in table) == ["lr=0.001", "lr=0.003"]


def test_seeds_of_one_config_are_grouped(tmp_path):
    table = collect([fake_run(tmp_path / "s0", 0.1, seed=0), fake_run(tmp_path / "s1", 0.3, seed=1)])
    assert list(table) == ["vae (mnist-5k, 10 ep)"]
    assert set(table["vae (mnist-5k, 10 ep)"]) == {"0", "1"}


def test_the_same_run_twice_is_refused(tmp_path):
    a, b = fake_run(tmp_path / "a", 0.1), fake_run(tmp_path / "b", 0.2)
    with pytest.raises(RunError, match="same run"):
        collect([a, b])


def test_two_studies_with_the_same_folder_name_stay_apart(tmp_path):
    folders = []
    for parent, value in (("one", 0.1), ("two", 0.2)):
        folder = tmp_path / parent / "results"
        write_json(folder / "results.json", {
            "study": {"models": {"vae": {"label": "VAE", "model": {}, "train": {}}}, "seeds": [0], "evaluation": {}},
            "datasets": {"mnist-5k": {"per_seed": {"vae": {"0": {"silhouette": value}}}, "aggregate": {"vae": {}},
                                      "runs": {"vae": {}}}}})
        folders.append(folder)
    table = collect(folders)
    assert len(table) == 2
    assert {values["0"]["silhouette"] for values in table.values()} == {0.1, 0.2}


MNIST_TEST, FASHION = "a" * 64, "b" * 64  # two content fingerprints


@pytest.mark.parametrize("reference, dataset, contents, shown", [
    ({}, "cifar10", [FASHION], True),  # names no data: about every data set
    ({"datasets": ["mnist"]}, "mnist", None, True),
    ({"datasets": ["mnist"]}, "fashion-mnist", [FASHION], False),
    ({"datasets": ["mnist"]}, "idx:/data/x", [FASHION], True),  # names no content: an idx: folder may hold it
    ({"fingerprints": [MNIST_TEST]}, "idx:/data/x", [MNIST_TEST], True),  # holds exactly that data
    ({"fingerprints": [MNIST_TEST]}, "idx:/data/x", [FASHION], False),  # holds other data
    ({"fingerprints": [MNIST_TEST]}, "idx:/data/x", None, True),  # content not recorded (older results.json)
    ({"datasets": ["fashion-mnist"], "fingerprints": [FASHION]}, "idx:/data/x", [MNIST_TEST], False),
    ({"datasets": ["fashion-mnist"], "fingerprints": [FASHION]}, "fashion-mnist", [FASHION], True),
])
def test_published_numbers_are_shown_beside_the_data_they_are_about(reference, dataset, contents, shown):
    assert reference_applies(reference, dataset, contents) is shown


def test_a_study_s_references_are_read_as_a_list_or_as_the_one_mapping_of_earlier_results():
    n2d_mnist = {"title": "MNIST-test", "measure": "n2d_accuracy", "values": {"ae": 0.948}, "fingerprints": [MNIST_TEST]}
    n2d_fashion = {"title": "Fashion", "measure": "n2d_accuracy", "values": {"ae": 0.672}, "datasets": ["fashion-mnist"],
                   "fingerprints": [FASHION]}
    study = {"reference": [n2d_fashion, n2d_mnist]}
    mnist_test, fashion = {"contents": [MNIST_TEST]}, {"contents": [FASHION]}
    assert references_for(study, "idx:/data/mnist-test", mnist_test) == [("study.reference.1", n2d_mnist)]
    assert references_for(study, "fashion-mnist", fashion) == [("study.reference.0", n2d_fashion)]
    assert references_for({"reference": n2d_mnist}, "idx:/x", mnist_test) == [("study.reference", n2d_mnist)]
    assert references_for({"reference": None}, "mnist", {}) == []
