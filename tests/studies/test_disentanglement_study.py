"""The built-in `disentanglement` study, shrunk (small networks, 2 epochs, 400 dSprites-like images), end to
end; and latent traversals by hand."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest
import torch
import yaml

from tests.conftest import run_cli
from vaelab.analysis.generate import decode, traversals
from vaelab.config import ModelConfig
from vaelab.models import build_model

METRICS = ["beta_vae_score", "factor_vae_score", "mig", "dci_disentanglement", "dci_completeness",
           "dci_informativeness", "sap"]


@pytest.fixture(scope="module")
def short_study(tmp_path_factory):
    spec = yaml.safe_load(resources.files("vaelab").joinpath("studies/builtin/disentanglement.yaml").read_text())
    spec.update(datasets=["dsprites:400"], seeds=1, train={**spec["train"], "epochs": 2},
                evaluation={"tsne_points": 60, "tsne_iterations": 50, "factor_points": 1000, "dci_estimator": "forest"})
    for model in spec["models"].values():
        model["model"]["hidden_layers"] = [32]
    root = tmp_path_factory.mktemp("disentanglement")
    (root / "study.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True, sort_keys=False), encoding="utf-8")
    result = run_cli("study", "run", str(root / "study.yaml"), "--out", str(root / "out"), "--quiet")
    assert result.returncode == 0, result.stderr
    return root / "out", result.stdout


@pytest.mark.slow  # a whole shrunk study end to end (15-25 s on 2 cores): CI runs it with -m slow
def test_every_model_gets_every_metric(short_study):
    out, stdout = short_study
    results = json.loads((out / "results.json").read_text())
    part = results["datasets"]["dsprites:400"]
    assert list(part["per_seed"]) == ["vae", "bvae4", "bvae16", "btcvae", "factorvae", "dipvae"]
    for model, seeds in part["per_seed"].items():
        values = seeds["0"]
        for name in METRICS:
            assert 0.0 <= values[name] <= 1.0, (model, name)
        assert values["factor_vae_active_dims"] <= 10
    assert "factor_vae_score" in part["finding"]
    assert "FactorVAE score" in stdout and "MIG" in stdout  # the study table's columns
    run = out / "runs" / "dsprites-400" / "factorvae-seed0"
    assert (run / "weights.safetensors").is_file()
    # the metrics drew from 1,000 points of the whole grid, not from the 80 test images
    assert part["per_seed"]["factorvae"]["0"]["disentanglement_points"] == 1000
    from vaelab.analysis.encode import Codes

    codes = Codes.load(run / "codes.npz")  # the factors are saved beside the test codes
    assert codes.factors.shape == (len(codes.mean), 5)


@pytest.mark.slow  # a whole shrunk study end to end (15-25 s on 2 cores): CI runs it with -m slow
def test_the_report_shows_the_metrics_and_the_traversals(short_study):
    out, _ = short_study
    html = (out / "report.html").read_text()
    assert "latent traversals" in html and "FactorVAE (γ=30)" in html and "(γ=30.0)" in html
    assert "mutual information gap" in html and "<code>dci_disentanglement</code>" in html
    assert "drawn from 1,000 seeded points of the factor grid" in html and "from a random forest" in html
    assert (out / "figures" / "dsprites-400" / "traversal.png").stat().st_size > 10_000


def test_traversals_sweep_one_dimension_and_keep_the_others():
    model = build_model(ModelConfig(hidden=16, latent=3), seed=0, image_shape=(1, 6, 6))
    rng = np.random.default_rng(0)
    codes = rng.normal(size=(200, 3)) * np.array([0.5, 3.0, 1.0])
    code = codes[0]
    images, dims = traversals(model, code, codes, steps=5, dims=2)
    assert images.shape == (2, 5, 6, 6) and dims.tolist() == [1, 2]  # most varying first
    values = codes[:, 1].mean() + np.linspace(-3, 3, 5) * codes[:, 1].std()
    expected = np.repeat(code[None], 5, axis=0)
    expected[:, 1] = values
    assert np.allclose(images[0], decode(model, expected), atol=1e-6)
    assert not torch.equal(torch.from_numpy(images[0][0]), torch.from_numpy(images[0][-1]))


@pytest.mark.slow  # two models on two data sets, shrunk, end to end (about 20 s on 2 cores)
def test_the_study_runs_on_deepmind_s_files_as_on_the_rendered_set(tmp_path, isolated_cache, monkeypatch):
    pytest.importorskip("h5py")
    from tests.data import test_factor_files as files
    from vaelab.data import dsprites_real, shapes3d

    monkeypatch.setattr(dsprites_real, "FACTOR_SIZES", files.SPRITE_GRID)
    monkeypatch.setattr(shapes3d, "FACTOR_SIZES", files.SHAPES_GRID)
    files.write_npz(isolated_cache / "vaelab" / "dsprites-real", files.sprite_arrays())
    files.write_h5(isolated_cache / "vaelab" / "3dshapes", *files.shape_arrays())
    spec = yaml.safe_load(resources.files("vaelab").joinpath("studies/builtin/disentanglement.yaml").read_text())
    spec.update(datasets=["dsprites-real:120", "3dshapes:120"], seeds=1, train={**spec["train"], "epochs": 1},
                evaluation={"tsne_points": 24, "tsne_iterations": 50, "dci_estimator": "forest"},
                models={key: spec["models"][key] for key in ("vae", "factorvae")},
                comparisons=[{"a": "factorvae", "b": "vae", "measures": ["factor_vae_score", "mig"]}])
    for model in spec["models"].values():
        model["model"]["hidden_layers"] = [32]
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True, sort_keys=False), encoding="utf-8")
    result = run_cli("study", "run", str(tmp_path / "study.yaml"), "--out", str(tmp_path / "out"), "--quiet")
    assert result.returncode == 0, result.stderr
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    for name, grid in (("dsprites-real:120", files.SPRITE_GRID), ("3dshapes:120", files.SHAPES_GRID)):
        values = results["datasets"][name]["per_seed"]["factorvae"]["0"]
        assert all(0.0 <= values[metric] <= 1.0 for metric in METRICS), name
        assert values["disentanglement_points"] == float(np.prod(grid))  # the file's whole grid, not the subset
