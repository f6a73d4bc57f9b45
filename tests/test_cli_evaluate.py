"""`vaelab evaluate` and `vaelab compare` on real runs, as a user runs them."""

from __future__ import annotations

import json

import pytest
from sklearn.metrics import silhouette_score

from tests.conftest import needs_umap, run_cli, wait_until_locked
from vaelab.analysis.encode import Codes
from vaelab.analysis.expost import ExPostDensity


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for model, seed in (("vae", 0), ("vae", 1), ("ae", 0)):
        result = run_cli("train", "--model", model, "--epochs", "1", "--seed", str(seed), "--quiet",
                         "--out", str(root / f"{model}-{seed}"))
        assert result.returncode == 0, result.stderr
    return root


def test_evaluate_writes_measures_and_prints_a_table(trained, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    run = trained / "vae-0"
    result = run_cli("evaluate", str(run), "--iwae-k", "20", "--iwae-examples", "50")
    assert result.returncode == 0, result.stderr
    saved = json.loads((run / "measures.json").read_text())
    values = saved["measures"]
    for name in ("silhouette", "knn5_accuracy", "linear_probe_accuracy", "kmeans_accuracy", "tsne_trustworthiness",
                 "active_units", "nll_iwae_binarized", "prior_fd", "prior_label_entropy", "expost_fd",
                 "expost_label_entropy", "perturb_accuracy_s1"):
        assert name in values and f"{name} " in result.stdout
    density = ExPostDensity.load(run / "expost.npz")  # what the explorer draws from
    assert values["expost_components"] == density.components == 10 and values["expost_converged"] == 1.0
    assert saved["classifier"]["extractor"] == "conv16-conv32-fc128"
    assert saved["settings"]["iwae_k"] == 20 and values["iwae_examples"] == 50
    assert values["nll_iwae_binarized"] <= values["neg_elbo_binarized"] + 1.0  # the IWAE bound is tighter
    run_cli("encode", str(run), "--out", str(tmp_path / "codes.npz"))
    codes = Codes.load(tmp_path / "codes.npz")
    assert values["silhouette"] == pytest.approx(silhouette_score(codes.mean.astype("float64"), codes.labels))
    assert list((tmp_path / "cache" / "vaelab" / "classifiers").iterdir()), "the classifier is cached"
    assert density.latent == codes.mean.shape[1]


def test_evaluate_selected_groups_on_an_ae(trained):
    result = run_cli("evaluate", str(trained / "ae-0"), "--measures", "separation,health")
    assert result.returncode == 0, result.stderr
    values = json.loads((trained / "ae-0" / "measures.json").read_text())["measures"]
    assert "silhouette" in values and "recon_bce" in values
    assert "knn5_accuracy" not in values and "kl_total" not in values  # an AE has no KL


def test_evaluate_rejects_unknown_groups(trained):
    result = run_cli("evaluate", str(trained / "ae-0"), "--measures", "silhouette")
    assert result.returncode == 2 and "unknown measure group(s) silhouette" in result.stderr


def test_evaluate_rejects_an_unknown_dci_estimator(trained):
    before = (trained / "ae-0" / "measures.json").read_bytes() if (trained / "ae-0" / "measures.json").exists() else None
    result = run_cli("evaluate", str(trained / "ae-0"), "--dci-estimator", "trees")
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "error: unknown --dci-estimator 'trees': choose boosted or forest"]
    after = (trained / "ae-0" / "measures.json").read_bytes() if (trained / "ae-0" / "measures.json").exists() else None
    assert before == after  # nothing written


def test_evaluate_fits_the_ex_post_density_with_the_components_asked_for(trained, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    run = trained / "ae-0"
    bad = run_cli("evaluate", str(run), "--measures", "expost", "--expost-components", "0")
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "error: invalid value for --expost-components: Input should be greater than 0 (got 0)"]
    result = run_cli("evaluate", str(run), "--measures", "expost", "--expost-components", "3")
    assert result.returncode == 0, result.stderr
    saved = json.loads((run / "measures.json").read_text())
    assert saved["settings"]["expost_components"] == 3 and saved["measures"]["expost_components"] == 3.0
    assert ExPostDensity.load(run / "expost.npz").components == 3 and "expost_fd " in result.stdout


def test_compare_runs_groups_seeds_of_the_same_model(trained):
    for name in ("vae-0", "vae-1", "ae-0"):
        assert run_cli("evaluate", str(trained / name), "--measures", "separation").returncode == 0
    result = run_cli("compare", *(str(trained / n) for n in ("vae-0", "vae-1", "ae-0")))
    assert result.returncode == 0, result.stderr
    header = result.stdout.splitlines()[0]
    assert header == "| measure | vae (mnist-5k, 1 ep) | ae (mnist-5k, 1 ep) |"
    row = next(line for line in result.stdout.splitlines() if line.startswith("| silhouette"))
    assert "±" in row.split("|")[2]  # two seeds of the VAE: an interval


def test_compare_needs_measures(tmp_path, trained):
    result = run_cli("compare", str(tmp_path))
    assert result.returncode == 2 and "neither a study folder" in result.stderr


def test_evaluate_beside_a_run_that_is_training_gets_one_line(tmp_path):
    import subprocess
    import sys

    run = tmp_path / "training"
    trainer = subprocess.Popen([sys.executable, "-m", "vaelab", "train", "--epochs", "1000", "--quiet", "--out",
                                str(run)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_locked(run)
        result = run_cli("evaluate", str(run), "--measures", "separation")
        assert trainer.poll() is None, "the training ended first: the test proves nothing"
    finally:
        trainer.kill()
        trainer.wait()
    assert result.returncode == 2
    assert result.stderr.strip() == (f"error: {run} is being written by another vaelab process (pid {trainer.pid}): "
                                     "wait for it to finish")
    assert not (run / "measures.json").exists()


def test_evaluate_without_the_package_a_group_needs_says_how_to_install_it(trained, without_umap):
    before = (trained / "ae-0" / "model.json").read_bytes()
    result = run_cli("evaluate", str(trained / "ae-0"), "--measures", "manifold")
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: the manifold measures need umap, which is not installed: "
                                     "pip install 'vaelab[umap]'")
    assert (trained / "ae-0" / "model.json").read_bytes() == before


@pytest.mark.slow  # umap compiles its kernels in each process
@needs_umap
def test_evaluate_measures_n2d_clusters_on_a_trained_run(trained):
    result = run_cli("evaluate", str(trained / "vae-1"), "--measures", "manifold")
    assert result.returncode == 0, result.stderr
    values = json.loads((trained / "vae-1" / "measures.json").read_text())["measures"]
    assert set(values) == {"n2d_nmi", "n2d_ari", "n2d_accuracy"}
    assert 0.3 < values["n2d_accuracy"] <= 1.0  # one epoch on real digits: far above chance (0.1)
    assert "n2d_accuracy" in result.stdout
