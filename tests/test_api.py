"""The Python API as a user calls it: the CLI's powers, and vaelab's own one-line errors for user mistakes."""

from __future__ import annotations

import importlib

import pytest

import vaelab
from tests.conftest import run_cli
from vaelab.errors import ConfigError, RunError
from vaelab.io import folder_lock


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A one-epoch VAE on the tiny IDX folder, trained through the API."""
    from tests.conftest import make_tiny_idx

    root = tmp_path_factory.mktemp("api")
    data = make_tiny_idx(root / "data")
    vaelab.train("vae", out=root / "vae", dataset=f"idx:{data}", latent=2, hidden=32, epochs=1, device="cpu")
    return root / "vae"


def test_explore_works_again_after_its_subpackage_is_imported(tiny_run):
    pytest.importorskip("starlette")
    first = vaelab.explore([tiny_run], points=20)
    first.socket.close()
    importlib.import_module("vaelab.explorer.server")  # importing the subpackage once shadowed the function

    second = vaelab.explore([tiny_run], points=20)
    second.socket.close()
    assert callable(vaelab.explore) and second.url.startswith("http://127.0.0.1:")


@pytest.mark.parametrize("call,cli,words", [
    (lambda run: vaelab.evaluate(run, iwae_k=0), ["evaluate", "{run}", "--iwae-k", "0"], "--iwae-k"),
    (lambda run: vaelab.evaluate(run, iwae_examples=-3), ["evaluate", "{run}", "--iwae-examples", "-3"],
     "--iwae-examples"),
    (lambda run: vaelab.explore([run], port=-1), ["explore", "{run}", "--port", "-1", "--no-browser"], "--port"),
    (lambda run: vaelab.explore([run], port=70000), ["explore", "{run}", "--port", "70000", "--no-browser"],
     "--port"),
    (lambda run: vaelab.reproduce(run.parent / "out", seeds=0), ["reproduce", "--out", "{out}", "--seeds", "0"],
     "--seeds"),
])
def test_a_user_mistake_is_vaelab_s_one_line_the_cli_prints(tiny_run, call, cli, words):
    if "explore" in cli:
        pytest.importorskip("starlette")
    with pytest.raises(ConfigError) as raised:
        call(tiny_run)
    message = str(raised.value)
    assert "\n" not in message and words in message
    printed = run_cli(*(arg.format(run=tiny_run, out=tiny_run.parent / "out") for arg in cli))
    assert printed.returncode == 2 and printed.stderr == f"error: {message}\n"
    assert not (tiny_run.parent / "out").exists()  # refused before anything was written


@pytest.mark.parametrize("call,words", [
    (lambda run: vaelab.reproduce(run.parent / "out", seeds="3"), "--seeds must be a whole number"),
    (lambda run: vaelab.reproduce(run.parent / "out", seeds=True), "--seeds must be a whole number"),
    (lambda run: vaelab.explore([run], port="8000"), "--port must be a whole number"),
    (lambda run: vaelab.explore([run], points=2.5), "--points must be a whole number"),
    (lambda run: vaelab.evaluate(run, dci_estimator="tree"), "--dci-estimator"),
    (lambda run: vaelab.compare([run], format="xml"), "--format must be md, csv or json"),
])
def test_a_wrong_type_from_python_is_a_one_line_error_too(tiny_run, call, words):
    if "explore" in repr(call.__code__.co_names):
        pytest.importorskip("starlette")
    with pytest.raises(ConfigError, match=words.replace("-", r"\-")):
        call(tiny_run)


def test_resuming_a_folder_another_writer_holds_before_its_model_json_says_so(tmp_path):
    """The first writer takes the lock, then loads its data and writes model.json: a resume in between is told
    that the folder is being written (it was told "no model.json: not a vaelab run directory")."""
    run_dir = tmp_path / "run"
    with folder_lock(run_dir):  # another open file: flock refuses it as it would another process
        with pytest.raises(RunError, match="is being written by another vaelab process"):
            vaelab.train(resume=True, out=run_dir)
