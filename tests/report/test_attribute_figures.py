"""A study on faces with binary attributes (a small CelebA in its official layout): the attribute measures
in results.json, the probe table and the attribute directions in the report, decoded from real codes."""

from __future__ import annotations

import json

import numpy as np
import yaml

from tests.conftest import run_cli
from tests.data.test_celeba import write_celeba
from vaelab.analysis.generate import DIRECTION_STEPS, attribute_walks
from vaelab.config import ModelConfig
from vaelab.data import celeba
from vaelab.models import build_model

STUDY = {
    "name": "faces",
    "datasets": ["celeba:Smiling"],
    "seeds": 1,
    "train": {"epochs": 1, "batch_size": 8},
    "models": {"conv-vae": {"preset": "conv-vae", "model": {"latent": 4}}, "ae": {"preset": "ae",
                                                                            "model": {"latent": 4, "hidden": 32}}},
    "measures": ["separation", "attributes"],
}


def test_a_study_on_faces_probes_every_attribute_and_draws_its_directions(tmp_path, isolated_cache):
    write_celeba(isolated_cache / "vaelab" / "celeba")
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(STUDY, sort_keys=False))
    result = run_cli("study", "run", str(tmp_path / "study.yaml"), "--out", str(tmp_path / "out"), "--quiet")
    assert result.returncode == 0, result.stderr
    part = json.loads((tmp_path / "out" / "results.json").read_text())["datasets"]["celeba:Smiling"]
    measured = part["per_seed"]["conv-vae"]["0"]
    # the 8 test faces hold both values of most attributes; every one probed has an accuracy in [0, 1]
    accuracies = {k: v for k, v in measured.items() if k.startswith("attribute_accuracy_")}
    assert len(accuracies) >= 30 and all(0.0 <= v <= 1.0 for v in accuracies.values())
    assert measured["attributes_mean_auc"] == np.mean([v for k, v in measured.items() if k.startswith("attribute_auc_")])
    figures = tmp_path / "out" / "figures" / "celeba-Smiling"
    assert (figures / "attributes.png").is_file() and (figures / "attribute_walks.png").is_file()
    html = (tmp_path / "out" / "report.html").read_text()
    assert "Attribute directions" in html and "Attributes in the codes" in html
    # grids saved before the walks' steps were recorded (they were drawn at DIRECTION_STEPS) still redraw
    for path in (tmp_path / "out" / "runs").rglob("grids.npz"):
        with np.load(path) as saved:
            arrays = {name: saved[name] for name in saved.files if name != "attribute_steps"}
        np.savez(path, **arrays)
    (figures / "attribute_walks.png").unlink()
    redrawn = run_cli("report", str(tmp_path / "out"))
    assert redrawn.returncode == 0, redrawn.stderr
    assert (figures / "attribute_walks.png").is_file()


def test_attribute_walks_start_from_a_face_without_the_attribute():
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(12, 3))
    attributes = np.zeros((12, 40), np.uint8)
    smiling = celeba.ATTRIBUTES.index("Smiling")
    attributes[[0, 2, 5], smiling] = 1  # the first face smiles: the walk starts from face 1
    model = build_model(ModelConfig(hidden=8, latent=3), seed=0, image_shape=(3, 8, 8))
    walks, shown = attribute_walks(model, codes, attributes, list(celeba.ATTRIBUTES))
    assert shown.tolist() == ["Smiling"]  # the other shown attributes: no face has them, no direction
    direction = codes[[0, 2, 5]].mean(0) - np.delete(codes, [0, 2, 5], axis=0).mean(0)
    from vaelab.analysis.generate import decode

    expected = decode(model, codes[1][None] + np.asarray(DIRECTION_STEPS)[:, None] * direction[None])
    assert walks.shape == (1, len(DIRECTION_STEPS), 3, 8, 8) and np.allclose(walks[0], expected, atol=1e-6)
