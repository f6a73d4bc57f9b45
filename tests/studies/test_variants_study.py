"""The variants: a study of class-structured models run from the CLI under the transductive protocol,
the best-model finding, the built-in `variants` study, and the protocol itself."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import make_tiny_idx, run_cli

TINY_MODEL = {"latent": 3, "hidden": 32, "components": 3}
STUDY = {
    "name": "tiny-variants",
    "seeds": 2,
    "train": {"epochs": 3, "batch_size": 32},
    "models": {
        "vae": {"preset": "vae", "model": {"latent": 3, "hidden": 32}},
        "gmvae": {"preset": "gmvae", "model": TINY_MODEL},
        "vade": {"preset": "vade", "model": {**TINY_MODEL, "pretrain_epochs": 1}},
        "cvae": {"preset": "cvae", "model": {"latent": 3, "hidden": 32}},
    },
    "measures": ["separation", "clustering", "health", "likelihood"],
    "evaluation": {"iwae_k": 8, "iwae_examples": 20},
    "comparisons": [{"a": "gmvae", "b": "vae", "measures": ["silhouette", "own_accuracy"]}],
    "finding": {"b": "vae", "measure": "silhouette"},
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_idx(tmp_path_factory.mktemp("data") / "tiny")


@pytest.fixture(scope="module")
def transductive_study(tmp_path_factory, tiny) -> Path:
    folder = tmp_path_factory.mktemp("variants")
    values = {**STUDY, "datasets": [f"idx:{tiny}"]}
    (folder / "study.yaml").write_text(yaml.safe_dump(values, sort_keys=False), encoding="utf-8")
    result = run_cli("study", "run", str(folder / "study.yaml"), "--out", str(folder / "out"), "--quiet",
                     "--protocol", "transductive")
    assert result.returncode == 0, result.stderr
    return folder / "out"


@pytest.mark.slow  # a whole shrunk study end to end (15-25 s on 2 cores): CI runs it with -m slow
def test_a_variants_study_runs_transductively_and_names_the_best_model(transductive_study, tiny):
    results = json.loads((transductive_study / "results.json").read_text())
    assert results["study"]["protocol"] == "transductive" and not results["failed"]
    part = results["datasets"][f"idx:{tiny}"]
    means = {model: part["aggregate"][model]["silhouette"]["mean"] for model in STUDY["models"]}
    best = max(means, key=means.get)
    assert part["finding"].startswith(f"{best} has the highest silhouette of the 4 models")
    for model in ("gmvae", "vade"):  # the mixture models cluster by themselves
        assert 0 <= part["aggregate"][model]["own_accuracy"]["mean"] <= 1
    assert "own_accuracy" not in part["aggregate"]["vae"]
    assert "own_accuracy:gmvae-vae" in part["paired"]
    # every cell trained and measured on all 150 images (train and test splits together)
    model_json = json.loads((transductive_study / part["runs"]["cvae"]["0"] / "model.json").read_text())
    assert model_json["dataset"]["n_train"] == model_json["dataset"]["n_test"] == 150
    assert model_json["dataset"]["protocol"] == "transductive"
    report = (transductive_study / "report.html").read_text(encoding="utf-8")
    assert "transductive protocol" in report and "conditional" in report


@pytest.mark.slow  # a whole shrunk study end to end (15-25 s on 2 cores): CI runs it with -m slow
def test_the_best_model_finding_is_against_the_reference_model(transductive_study, tiny):
    from vaelab.studies.spec import validate_study
    from vaelab.studies.study import best_model_sentence

    spec = validate_study({**STUDY, "datasets": [f"idx:{tiny}"]}, "test")
    table = {"vae": {"silhouette": {"mean": 0.10}}, "gmvae": {"silhouette": {"mean": 0.30}},
             "vade": {"silhouette": {"mean": 0.29}}, "cvae": {"silhouette": {"mean": 0.05}}}
    per_seed = {"vae": {"0": {"silhouette": 0.1}, "1": {"silhouette": 0.1}},
                "gmvae": {"0": {"silhouette": 0.32}, "1": {"silhouette": 0.28}},
                "vade": {"0": {"silhouette": 0.27}, "1": {"silhouette": 0.31}},
                "cvae": {"0": {"silhouette": 0.05}, "1": {"silhouette": 0.05}}}
    sentence = best_model_sentence(spec, spec.finding[0], table, per_seed)
    # gmvae - vae = 0.22, 0.18 -> mean 0.20 with a 95% CI of t(0.975, 1) * 0.02 / sqrt(2) * sqrt(2) = 12.706 * 0.02
    assert sentence.startswith("gmvae has the highest silhouette of the 4 models (0.3000 against 0.1000 for vae")
    assert f"+0.2000 ± {12.7062 * 0.02:.4f}" in sentence
    assert sentence.endswith("vade is within the seeds' noise of it.")


def test_the_built_in_variants_study_resolves_every_model():
    from vaelab.studies.spec import load_study
    from vaelab.studies.study import plan

    spec = load_study("variants")
    assert set(spec.models) == {"ae", "vae", "bvae4", "iwae", "vamp", "btcvae", "gmvae", "vade", "cvae"}
    assert spec.seeds == [0, 1, 2, 3, 4] and spec.datasets == ["mnist", "fashion-mnist"]
    cells = plan(spec)
    assert len(cells) == 2 * 9 * 5 and all(cell.config.data.binarize for cell in cells)
    assert {cell.config.model.latent for cell in cells} == {10}
    scaled = spec.with_overrides(datasets=["mnist-5k"], seeds=1, epochs_scale=0.01, protocol="transductive")
    vade = scaled.run_config("vade", "mnist-5k", 0)
    assert vade.model.pretrain_epochs == 1 and vade.train.epochs == 2 and vade.data.protocol == "transductive"


def test_the_transductive_protocol_trains_and_measures_on_every_image(tiny):
    from vaelab.data.registry import load_dataset

    held_out = load_dataset(f"idx:{tiny}")
    every = load_dataset(f"idx:{tiny}", protocol="transductive")
    assert every.protocol == "transductive" and every.summary()["protocol"] == "transductive"
    np.testing.assert_array_equal(every.train_images, np.concatenate([held_out.train_images, held_out.test_images]))
    np.testing.assert_array_equal(every.test_images, every.train_images)
    np.testing.assert_array_equal(every.test_labels, every.train_labels)
    assert every.fingerprint != held_out.fingerprint  # a run knows which protocol it was trained under


def test_a_bad_protocol_is_one_line(tmp_path):
    result = run_cli("study", "run", "thesis", "--protocol", "sideways", "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "protocol" in result.stderr
    assert not (tmp_path / "out").exists()
    assert math.isfinite(1.0)


def test_the_best_model_finding_when_the_reference_is_the_best(tiny):
    from vaelab.studies.spec import validate_study
    from vaelab.studies.study import best_model_sentence

    spec = validate_study({**STUDY, "datasets": [f"idx:{tiny}"]}, "test")
    table = {"vae": {"silhouette": {"mean": 0.30}}, "gmvae": {"silhouette": {"mean": 0.29}}}
    per_seed = {"vae": {"0": {"silhouette": 0.3}, "1": {"silhouette": 0.3}},
                "gmvae": {"0": {"silhouette": 0.27}, "1": {"silhouette": 0.31}}}
    sentence = best_model_sentence(spec, spec.finding[0], table, per_seed)
    # not "0.3000 against 0.3000 for vae": the reference is not set against itself
    assert sentence == "vae has the highest silhouette of the 2 models (0.3000); gmvae is within the seeds' noise of it."
