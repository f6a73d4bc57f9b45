"""Shared fixtures: the real MNIST test split from ../shared (skipped where absent), IDX writers, CLI runner."""

from __future__ import annotations

import contextlib
import gzip
import importlib.util
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import vaelab
from vaelab.io import LOCK_NAME
from vaelab.studies.spec import load_study

ROOT = Path(__file__).resolve().parents[1]

# Hypothesis draws new examples on every run, which finds bugs on developers' machines; CI replays a fixed
# sequence (derandomize) so that a submission's result does not depend on the draw. Random mutations found a
# real bug once (a model.json path flipped by one bit loaded as another run); the cases it finds become
# named cases in the tests.
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    _hypothesis_settings.load_profile("ci")
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"

# Under pytest-xdist (`make test` runs one worker per core) the workers share the cores: each worker, and the
# vaelab processes it starts, gets its share of torch's threads instead of one thread per core each, which
# would oversubscribe the machine. Results do not depend on it: every byte-for-byte comparison is between
# runs made under the same setting.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _WORKERS)))
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    """Serialise an array as an IDX file (big-endian header, C-order payload)."""
    dtype = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=dtype).tobytes()


def write_idx_pair(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray, gz: bool = True) -> None:
    """Write ``<prefix>-images-idx3-ubyte[.gz]`` and ``<prefix>-labels-idx1-ubyte[.gz]``."""
    folder.mkdir(parents=True, exist_ok=True)
    for kind, array, rank in (("images", images, 3), ("labels", labels, 1)):
        payload = idx_bytes(array.astype(np.uint8))
        name = f"{prefix}-{kind}-idx{rank}-ubyte"
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(payload))
        else:
            (folder / name).write_bytes(payload)


def make_tiny_idx(folder: Path) -> Path:
    """Write small train and test IDX splits of blob-like 28x28 images in 3 classes into ``folder``."""
    rng = np.random.default_rng(0)

    def make(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.arange(n) % 3
        images = rng.integers(0, 40, size=(n, 28, 28))
        for k in range(3):
            images[labels == k, 4 + 7 * k: 10 + 7 * k, 6:22] = 250
        return images, labels

    write_idx_pair(folder, "train", *make(120))
    write_idx_pair(folder, "t10k", *make(30))
    return folder


@pytest.fixture
def tiny_idx_folder(tmp_path: Path) -> Path:
    """A fresh tiny IDX folder (see :func:`make_tiny_idx`)."""
    return make_tiny_idx(tmp_path / "tiny")


@pytest.fixture
def shared_mnist() -> Path:
    """The real MNIST test split shipped beside the project; skip where it is absent."""
    if not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("../shared/data/mnist is not present (only on the developers' machines)")
    return SHARED_MNIST


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Never touch the user's cache: point XDG_CACHE_HOME at a fresh folder."""
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.delenv("VAELAB_DATA_DIR", raising=False)
    return cache


needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="the Ray extra is not installed (pip install 'vaelab[ray]')")
# umap-learn compiles its numba kernels in each new process (about 15 s on 2 cores): its tests are slow-marked.
needs_umap = pytest.mark.skipif(importlib.util.find_spec("umap") is None,
                                reason="the umap extra is not installed (pip install 'vaelab[umap]')")


@pytest.fixture
def without_umap(monkeypatch):
    """This process as if the umap extra were not installed (every check looks it up with find_spec)."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "umap" else real(name, *a))


def wait_until_locked(folder: Path, seconds: float = 120) -> None:
    """Wait (at most ``seconds``) until a vaelab process holds ``folder``'s lock: its lock file names its pid."""
    lock = folder / LOCK_NAME
    deadline = time.time() + seconds
    while not (lock.is_file() and lock.read_text().startswith("pid")) and time.time() < deadline:
        time.sleep(0.01)


def run_cli_subprocess(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``python -m vaelab ARGS`` in a fresh process, as a user would; capture output.

    Only for what a process adds: the exit status of the interpreter itself, signals (Ctrl-C, SIGKILL),
    what is imported at start-up, a second process racing the first. Everything else uses :func:`run_cli`.
    """
    env = dict(os.environ)
    env.setdefault("COLUMNS", "120")
    return subprocess.run([sys.executable, "-m", "vaelab", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``vaelab ARGS`` through the console script's entry point (``cli.main``) in this process: the same
    exit codes and one-line errors as a subprocess, captured the same way, without importing torch per call.

    The process-wide state a command sets (torch's thread count, its deterministic-algorithms flag, the
    working directory) is put back afterwards, so that one test's command cannot change the next test's
    numbers. ``timeout`` is accepted for symmetry with :func:`run_cli_subprocess`; pytest-timeout bounds it.
    """
    import io

    import torch

    from vaelab import cli

    stdout, stderr = io.StringIO(), io.StringIO()
    argv, sys.argv = sys.argv, ["vaelab", *args]
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    columns = os.environ.get("COLUMNS")
    os.environ.setdefault("COLUMNS", "120")
    here = os.getcwd()
    # click names the program after how Python was started ("python -m pytest" here): make it the console
    # script's name, as a user who types `vaelab` sees it
    main_module = sys.modules["__main__"]
    package = main_module.__dict__.get("__package__")
    main_module.__package__ = None
    code = 0
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            cli.main()
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    finally:
        os.chdir(here)
        sys.argv = argv
        main_module.__package__ = package
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
        if columns is None:
            os.environ.pop("COLUMNS", None)
    return subprocess.CompletedProcess(["vaelab", *args], code, stdout.getvalue(), stderr.getvalue())


def chromium_path() -> str | None:
    """Debian's chromium, if installed."""
    import shutil

    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextlib.contextmanager
def chromium_page(viewport: dict | None = None):
    """A page in Debian's headless chromium (a fresh profile), with the console's errors collected in
    ``page.errors``; skips when chromium or playwright is absent."""
    import tempfile

    browser_path = chromium_path()
    if browser_path is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run"]
    with tempfile.TemporaryDirectory() as profile, sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(profile, executable_path=browser_path, headless=True,
                                                       args=args, viewport=viewport or {"width": 1280, "height": 900})
        try:
            page = context.new_page()
            page.errors = []
            page.on("console", lambda message: page.errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: page.errors.append(str(error)))
            yield page
        finally:
            context.close()


HOVER_FIRST_POINT = """(selector) => {
    // the pixel position of the first point of the first non-empty trace of a plotly plot
    const gd = document.querySelector(selector);
    const trace = gd._fullData.find((t) => t.x.length > 0);
    const box = gd.querySelector('.nsewdrag').getBoundingClientRect();
    return {x: box.left + gd._fullLayout.xaxis.l2p(trace.x[0]), y: box.top + gd._fullLayout.yaxis.l2p(trace.y[0]),
            index: trace.customdata[0]};
}"""


def check_report_in_browser(report: Path, screenshot: Path) -> dict:
    """Open a report from disk in headless chromium; return what its figures look like.

    Skips when chromium or playwright is absent. Every figure's <img> is drawn
    onto a canvas to measure the spread of its pixels (a blank image has none).
    Where the report has interactive maps, the first point of the first is
    hovered and what the page then shows is returned under ``hover``.
    """
    with chromium_page() as page:
        failed_requests = []
        page.on("requestfailed", lambda request: failed_requests.append(request.url))
        page.goto(report.resolve().as_uri())
        page.wait_for_load_state("load")
        images = page.evaluate("""() => Array.from(document.querySelectorAll('figure img')).map(img => {
            const canvas = document.createElement('canvas');
            canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
            const ctx = canvas.getContext('2d');
            let spread = 0;
            if (img.naturalWidth > 0) {
                ctx.drawImage(img, 0, 0);
                const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
                let min = 255, max = 0;
                for (let i = 0; i < data.length; i += 4) { const v = data[i]; if (v < min) min = v; if (v > max) max = v; }
                spread = max - min;
            }
            return {alt: img.alt, complete: img.complete, width: img.naturalWidth, spread: spread};
        })""")
        hover = None
        if page.locator(".imap .plot .main-svg").count():
            page.locator(".imap").first.scroll_into_view_if_needed()
            before = page.locator(".imap img.thumb").first.get_attribute("src")
            point = page.evaluate(HOVER_FIRST_POINT, ".imap .plot")
            page.mouse.move(point["x"], point["y"])
            page.wait_for_function("() => document.querySelector('.imap').dataset.hovered !== undefined",
                                   timeout=10_000)
            hover = page.evaluate("""([x, y]) => {
                // which point the page says is hovered, how far it lies from the mouse, and whether the
                // thumbnail is that point's image
                const box = document.querySelector('.imap'), gd = box.querySelector('.plot');
                const spec = JSON.parse(box.querySelector('.spec').textContent);
                const hovered = Number(box.dataset.hovered);
                const area = gd.querySelector('.nsewdrag').getBoundingClientRect();
                let distance = Infinity;
                const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
                for (const t of gd._fullData) t.customdata.forEach((index, i) => {
                    if (index === hovered) distance = Math.min(distance, Math.hypot(
                        area.left + xa.l2p(t.x[i]) - x, area.top + ya.l2p(t.y[i]) - y));
                });
                const thumb = box.querySelector('img.thumb').src;
                return {hovered: hovered, distance: distance, shows_it: spec.images[hovered] === thumb,
                        caption: box.querySelector('.caption').textContent};
            }""", [point["x"], point["y"]])
            hover["changed"] = page.locator(".imap img.thumb").first.get_attribute("src") != before
        page.screenshot(path=str(screenshot), full_page=True)
        title = page.title()
        errors = list(page.errors)
    return {"images": images, "failed_requests": failed_requests, "title": title, "hover": hover, "errors": errors}


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` need CUDA: skip them, saying why, where torch sees none."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU: torch.cuda.is_available() is False on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


# The built-in thesis study on the tiny IDX data, trained a few epochs: the study the reproduce and report tests
# read (built once per test process, on first use).
THESIS_SEEDS = 2
THESIS_MODELS = ["ae", "vae", "conv-vae", "convenc-vae"]
REPORT_FIGURES = ["reconstructions.png", "centroids.png", "prior.png", "tsne.png", "silhouette.png",
                  "perturbation.png", "perturbation_curve.png", "measures.png", "training.png", "traversal.png"]


def run_tiny_thesis(root: Path, data: Path) -> dict:
    """The thesis study on ``data`` into ``root``, through the API (the engine runs the cells, the report follows)."""
    spec = load_study("thesis").with_overrides(datasets=[f"idx:{data}"], seeds=THESIS_SEEDS, epochs_scale=0.01)
    return vaelab.run_study(spec, root)


def only_part(results: dict) -> dict:
    """The one data set's part of a study's results."""
    (part,) = results["datasets"].values()
    return part


@pytest.fixture(scope="session")
def thesis_data(tmp_path_factory) -> Path:
    return make_tiny_idx(tmp_path_factory.mktemp("data") / "tiny")


@pytest.fixture(scope="session")
def thesis_study(tmp_path_factory, thesis_data) -> tuple[Path, dict]:
    """``(folder, results)`` of the tiny thesis study."""
    root = tmp_path_factory.mktemp("study")
    return root, run_tiny_thesis(root, thesis_data)
