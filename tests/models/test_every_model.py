"""Every registered model takes part in every measure, the study engine, the report and the explorer.

The test reads the model list from the registry, so a new model module is covered with no edit here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import make_tiny_idx
from vaelab.analysis.registry import GROUPS, entry
from vaelab.models.registry import MODELS
from vaelab.report.build import build_report
from vaelab.studies.spec import validate_study
from vaelab.studies.study import run_study


def _first_preset(module) -> str:
    return next(iter(module.PRESETS))


@pytest.fixture(scope="module")
def every_model_study(tmp_path_factory) -> tuple[Path, dict]:
    data = make_tiny_idx(tmp_path_factory.mktemp("data") / "tiny")
    values = {
        "name": "every-model",
        "datasets": [f"idx:{data}"],
        "seeds": 1,
        "train": {"epochs": 10, "batch_size": 40},
        "models": {name: {"preset": _first_preset(module), "model": {"latent": 3, "hidden": 16}}
                   for name, module in MODELS.items()},
        "measures": list(GROUPS),
        "evaluation": {"tsne_points": 20, "tsne_iterations": 30, "iwae_k": 4, "iwae_examples": 8,
                       "generation_samples": 20, "classifier_epochs": 1, "sigmas": [0.0, 1.0]},
    }
    # a shorter schedule, with every model's own stages (VaDE's pre-training) kept
    spec = validate_study(values, "the test study").with_overrides(epochs_scale=0.2)
    root = tmp_path_factory.mktemp("study") / "out"
    results = run_study(spec, root, progress=False)
    return root, results


def test_every_model_trains_and_is_measured(every_model_study):
    _, results = every_model_study
    assert results["failed"] == []
    (part,) = results["datasets"].values()
    for name in MODELS:
        measures = part["per_seed"][name]["0"]
        for measure in ("silhouette", "knn5_accuracy", "linear_probe_accuracy", "kmeans_nmi", "tsne_trustworthiness",
                        "recon_bce", "prior_fd", "perturb_accuracy_s1"):
            assert measure in measures, (name, measure)
        unregistered = [measure for measure in measures if entry(measure) is None]
        assert unregistered == [], f"{name} wrote measures the registry does not know"


def test_every_model_is_in_the_report(every_model_study):
    root, _ = every_model_study
    build_report(root)
    html = (root / "report.html").read_text(encoding="utf-8")
    for name in MODELS:
        assert name in html


def test_every_model_is_in_the_explorer(every_model_study):
    pytest.importorskip("starlette")
    from vaelab.explorer.session import Explorer, find_runs

    root, _ = every_model_study
    explorer = Explorer(find_runs([root]))
    keys = [m["key"] for m in explorer.summary()["models"]]
    assert len(keys) == len(MODELS)
    for key in keys:
        assert len(explorer.prior([key], seed=0, n=2)["rows"][key]) == 2
        # the ex-post density the evaluation fitted (a Gaussian mixture, or a VQ-VAE's categorical) draws too
        expost = explorer.prior([key], seed=0, n=2, source="expost")
        assert expost["missing"] == [] and len(expost["rows"][key]) == 2
        assert explorer.decode(key, [0.0, 0.0, 0.0], label=0)["image"]
