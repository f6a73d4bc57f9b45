"""`compare` never merges runs or studies that differ: grouping by the whole config, distinct labels."""

from __future__ import annotations

from pathlib import Path

import pytest

from vaelab.analysis.compare import collect
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
