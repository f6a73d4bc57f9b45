"""The run and study folders' one home: names, readers, writers, and the checks of what a study reuses."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from vaelab import records
from vaelab.config import build_config
from vaelab.errors import RunError
from vaelab.io import write_npz

SRC = Path(records.__file__).parent
N_TEST, LATENT, CLASSES = 12, 3, 4
DATASET = {"name": "tiny", "n_test": N_TEST, "n_classes": CLASSES, "image_shape": [1, 4, 4]}


def test_no_other_module_spells_a_run_or_study_file_name():
    names = "|".join(re.escape(getattr(records, name)) for name in (
        "CHECKPOINT", "WEIGHTS", "MODEL_JSON", "METRICS", "MEASURES_JSON", "CODES_NPZ", "MAP_NPZ", "GRIDS_NPZ",
        "STUDY_YAML", "RESULTS_JSON", "HARDWARE_JSON", "TIMINGS_JSON", "REPORT_HTML", "REPORT_MD",
        "CLASSIFIER_JSON"))
    literal = re.compile(rf"[\"']({names})[\"']")
    spelled = [f"{path.relative_to(SRC)}:{number}" for path in SRC.rglob("*.py") if path.name != "records.py"
               for number, line in enumerate(path.read_text().splitlines(), 1) if literal.search(line)]
    assert spelled == []


def test_folders_of_cells_and_classifiers():
    root = Path("/s")
    assert records.cell_dir(root, "dsprites:600", "vae", 2) == root / "runs" / "dsprites-600" / "vae-seed2"
    assert records.classifier_dir(root, "mnist", 0) == root / "classifiers" / "mnist" / "seed0"
    assert records.dataset_slug("idx:/data/tiny/") == "idx-tiny"


def test_model_json_round_trip_and_damaged_descriptions_read_as_unknown(tmp_path):
    config = build_config({"model": {"objective": "vae", "latent": LATENT}, "train": {"epochs": 1, "seed": 3}})
    records.write_model_json(tmp_path, config, {**DATASET, "n_test": -1}, 1, "finished", {"device": "cpu"})
    info = records.read_model_json(tmp_path)
    assert info["config"] == config and info["seed"] == 3 and info["status"] == "finished"
    assert "n_test" not in info["dataset"] and info["dataset"]["n_classes"] == CLASSES
    values = json.loads((tmp_path / records.MODEL_JSON).read_text())
    values["config"]["model"]["latent"] = LATENT + 1  # an edit the identity catches
    (tmp_path / records.MODEL_JSON).write_text(json.dumps(values))
    with pytest.raises(RunError, match="does not match its recorded identity"):
        records.read_model_json(tmp_path)


def test_metrics_keep_the_lines_that_parse(tmp_path):
    (tmp_path / records.METRICS).write_text(records.metrics_text([{"epoch": 1, "loss": float("nan")}])
                                            + "{damaged\n[1]\n" + records.metrics_text([{"epoch": 2}]))
    assert records.read_metrics(tmp_path) == [{"epoch": 1, "loss": None}, {"epoch": 2}]
    assert records.read_metrics(tmp_path / "nowhere") == []


def test_measures_missing_damaged_and_what_counts_as_a_measure(tmp_path):
    assert records.read_measures(tmp_path) is None
    (tmp_path / records.MEASURES_JSON).write_text("[1, 2]")
    with pytest.raises(RunError, match="is damaged"):
        records.read_measures(tmp_path)
    records.write_measures(tmp_path, {"measures": {"a": float("inf")}})
    assert records.read_measures(tmp_path)["measures"] == {"a": None}  # never a bare Infinity in JSON
    assert all(records.a_measure(v) for v in (None, 0, 0.5, -3))
    assert not any(records.a_measure(v) for v in ("0.5", True, [1], float("nan"), float("inf"), 10 ** 400))


def _cell(folder: Path, **replace) -> Path:
    rng = np.random.default_rng(0)
    arrays = {
        "codes": {"mean": rng.normal(size=(N_TEST, LATENT)), "logvar": rng.normal(size=(N_TEST, LATENT)),
                  "labels": np.arange(N_TEST) % CLASSES},
        "map": {"tsne": rng.normal(size=(5, 2)), "index": np.array([0, 2, 4, 6, 11])},
        "grids": {"originals": np.zeros((2, 4, 4)), "reconstructions": np.zeros((2, 4, 4)),
                  "centroids": np.zeros((CLASSES, 4, 4)), "prior": np.zeros((3, 4, 4)), "sigmas": np.array([0.5]),
                  "perturbed": np.zeros((1, 2, 4, 4)), "silhouettes": rng.uniform(-1, 1, N_TEST),
                  "class_names": np.array(["a", "b", "c", "d"])},
    }
    for key, value in replace.items():
        part, name = key.split("__")
        if value is None:
            del arrays[part][name]
        else:
            arrays[part][name] = value
    folder.mkdir(parents=True, exist_ok=True)
    for part, name in (("codes", records.CODES_NPZ), ("map", records.MAP_NPZ), ("grids", records.GRIDS_NPZ)):
        write_npz(folder / name, **arrays[part])
    return folder


def test_whole_cell_files_are_valid_and_an_empty_map_too(tmp_path):
    assert records.cell_files_valid(_cell(tmp_path / "a"), DATASET)
    empty = _cell(tmp_path / "b", map__tsne=np.zeros((0, 2)), map__index=np.zeros(0, dtype=np.int64))
    assert records.cell_files_valid(empty, DATASET)
    assert records.cell_files_valid(_cell(tmp_path / "c", codes__logvar=None), {})  # the AE; old model.json


@pytest.mark.parametrize("damage", [
    {"codes__mean": np.zeros((N_TEST - 1, LATENT))},  # fewer codes than labels
    {"codes__mean": np.zeros((N_TEST, LATENT, 1))},
    {"codes__mean": np.full((N_TEST, LATENT), np.nan)},
    {"codes__mean": np.zeros((N_TEST + 1, LATENT)), "codes__labels": np.zeros(N_TEST + 1, dtype=np.int64),
     "grids__silhouettes": np.zeros(N_TEST + 1)},  # consistent, but not this data set's test split
    {"codes__labels": np.full(N_TEST, CLASSES)},  # a class the data set does not have
    {"codes__labels": np.zeros(N_TEST)},  # floats
    {"codes__logvar": np.zeros((N_TEST, LATENT + 1))},
    {"codes__mean": None},
    {"map__index": np.array([0, 1, 2, 3, N_TEST])},  # points past the test set (the report's IndexError)
    {"map__tsne": np.zeros((5, 3))},
    {"map__tsne": np.full((5, 2), np.inf)},
    {"grids__prior": None},
    {"grids__silhouettes": np.zeros(N_TEST - 2)},
    {"grids__class_names": np.array([1, 2, 3, 4])},
])
def test_cell_files_with_the_right_keys_but_wrong_shapes_or_values_are_not_valid(tmp_path, damage):
    assert not records.cell_files_valid(_cell(tmp_path, **damage), DATASET)


def test_cell_files_that_are_missing_junk_or_pickles_are_not_valid(tmp_path):
    folder = _cell(tmp_path)
    (folder / records.GRIDS_NPZ).write_bytes(b"PK\x03\x04 not a zip")
    assert not records.cell_files_valid(folder, DATASET)
    np.savez(folder / records.GRIDS_NPZ, class_names=np.array([{"a": 1}], dtype=object))
    assert not records.cell_files_valid(folder, DATASET)
    (folder / records.GRIDS_NPZ).unlink()
    assert not records.cell_files_valid(folder, DATASET)
    with pytest.raises(RunError, match="is missing"):
        records.read_npz(folder / records.GRIDS_NPZ)


def test_results_missing_damaged_and_incomplete_are_one_line_errors(tmp_path):
    with pytest.raises(RunError, match="no results.json"):
        records.load_results(tmp_path)
    (tmp_path / records.RESULTS_JSON).write_text("{")
    with pytest.raises(RunError, match="not JSON"):
        records.load_results(tmp_path)
    records.write_results(tmp_path, {"study": {"models": {"m": {}}}, "datasets": {}})
    with pytest.raises(RunError, match="incomplete or damaged"):
        records.load_results(tmp_path)
    assert records.is_study_folder(tmp_path) and not records.is_run_folder(tmp_path)
