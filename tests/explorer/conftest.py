"""Fixtures for the explorer's tests: a tiny study (five kinds of model), a bare run, a loaded explorer and a
running server, each made once per test session and stopped at its end."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from tests.conftest import make_tiny_idx, run_cli

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

# An MLP VAE and AE, the thesis's conv VAE, a CVAE (decodes with labels) and a mixture-prior VAE (no
# closed-form KL per dimension): every path the explorer takes.
STUDY = {
    "name": "explore-tiny",
    "seeds": 1,
    "train": {"epochs": 2, "batch_size": 32},
    "models": {
        "vae": {"preset": "vae", "model": {"latent": 4, "hidden": 64}, "label": "VAE"},
        "ae": {"preset": "ae", "model": {"latent": 4, "hidden": 64}, "label": "AE"},
        "conv-vae": {"preset": "conv-vae", "model": {"latent": 4}, "label": "conv VAE"},
        "cvae": {"preset": "cvae", "model": {"latent": 4, "hidden": 64}, "label": "CVAE"},
        "mog-vae": {"preset": "mog-vae", "model": {"latent": 4, "hidden": 64}, "label": "MoG VAE"},
    },
    "measures": ["separation", "map", "health", "expost"],  # expost: each run's ex-post density, to draw from
    "evaluation": {"tsne_points": 25, "tsne_iterations": 50, "classifier_epochs": 1, "generation_samples": 50,
                   "expost_components": 3},
}


def _run(*args: str, cache: Path) -> None:
    """``vaelab ARGS`` in this process, with its own cache folder (the user's is left alone)."""
    with pytest.MonkeyPatch.context() as patch:  # session fixtures cannot take monkeypatch
        patch.setenv("XDG_CACHE_HOME", str(cache))
        result = run_cli(*args)
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory) -> Path:
    """A finished study folder on tiny 3-class blobs (30 test images, 25 on its t-SNE maps)."""
    root = tmp_path_factory.mktemp("explore-study")
    data = make_tiny_idx(root / "data")
    spec = {**STUDY, "datasets": [f"idx:{data}"]}
    (root / "study.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    _run("study", "run", str(root / "study.yaml"), "--out", str(root / "out"), "--quiet", cache=root / "cache")
    return root / "out"


@pytest.fixture(scope="session")
def bare_run(tmp_path_factory, tiny_study) -> Path:
    """A run folder as `vaelab train` leaves it: no measures.json, no map.npz, no codes."""
    root = tmp_path_factory.mktemp("bare")
    data = next(tiny_study.parent.glob("data"))
    _run("train", "--model", "vae", "--dataset", f"idx:{data}", "--latent", "4", "--hidden", "64", "--epochs", "1",
         "--quiet", "--out", str(root / "vae-bare"), cache=root / "cache")
    return root / "vae-bare"


@pytest.fixture(scope="session")
def explorer(tiny_study):
    from vaelab.explorer.session import Explorer, find_runs

    return Explorer(find_runs([tiny_study]))


@pytest.fixture(scope="session")
def server(explorer):
    """The explorer served on 127.0.0.1 (a free port) from a thread; stopped at the end of the session."""
    from vaelab.explorer.server import Server

    running = Server(explorer).start()
    yield running
    running.stop()


def folder_digest(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` (names included): to show that nothing was written."""
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}
