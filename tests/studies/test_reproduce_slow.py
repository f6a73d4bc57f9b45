"""The README's main job, end to end: `vaelab reproduce` with its defaults (quick profile, mnist-5k), on one
seed instead of its three: the same training, measures and report on the real digits, in a third of the time (it is
the slow suite's longest test). The means, intervals and paired differences over seeds are checked on the tiny
thesis study of the default suite (tests/studies/test_reproduce.py), which runs the same code on two seeds."""

from __future__ import annotations

import json

import pytest

from tests.conftest import check_report_in_browser, run_cli

pytestmark = pytest.mark.slow


def test_reproduce_quick_profile_from_the_cli(tmp_path):
    out = tmp_path / "results"
    result = run_cli("reproduce", "--out", str(out), "--seeds", "1", "--quiet", timeout=900)
    assert result.returncode == 0, result.stderr
    assert "reference" in result.stdout and "silhouette" in result.stdout and "ae - vae" in result.stdout
    assert f"report: {out / 'report.html'}" in result.stdout
    results = json.loads((out / "results.json").read_text())
    assert results["study"]["datasets"] == ["mnist-5k"] and results["study"]["seeds"] == [0]
    part = results["datasets"]["mnist-5k"]
    for model in ("ae", "vae", "conv-vae", "convenc-vae"):
        agg = part["aggregate"][model]
        assert agg["knn5_accuracy"]["mean"] > 0.7, model  # real digits, really learned
        assert agg["silhouette"]["n"] == 1
    assert part["aggregate"]["vae"]["nll_iwae_binarized"]["mean"] < 200
    import torch

    from vaelab.hardware import resolve

    recorded = {**resolve("auto", "auto")[1].as_dict(), "threads_per_cell": torch.get_num_threads()}
    assert results["hardware"] == recorded  # what `auto` chose here, recorded
    seen = check_report_in_browser(out / "report.html", tmp_path / "report.png")
    assert all(img["complete"] and img["spread"] > 100 for img in seen["images"])
