"""The documentation site: its generated pages against the code, a strict build, the how-to pages run as
written, and the built site in a real browser.

A how-to page is a worked example made of fenced blocks that the tests execute in a copy of the source tree:

- a block with ``title="PATH"`` whose language is not ``diff`` is a file, written at PATH;
- a ``diff`` block with ``title="PATH"`` is an edit of PATH: its context and ``-`` lines must be found in the
  file as they are, and are replaced by its context and ``+`` lines (so a page whose edit no longer applies
  to the current source fails);
- a ``console`` block's ``$ vaelab ...`` and ``$ python ...`` lines are run (exit status 0), and each line shown
  under a command must appear in what it printed, numbers and identities aside (they differ between machines and
  versions).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import chromium_page
from vaelab import docsite
from vaelab.analysis.registry import REGISTRY
from vaelab.data.registry import MADE_HERE
from vaelab.models.registry import MODELS, PRESETS
from vaelab.studies.spec import builtin_studies

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
HOWTOS = sorted((DOCS / "howto").glob("*.md"))
FENCE = re.compile(r'^```(\w*)(?:\s+title="([^"]+)")?\s*$')


@dataclass
class Block:
    language: str
    title: str | None
    lines: list[str]


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of a Markdown page, in order."""
    found: list[Block] = []
    current: Block | None = None
    for line in page.read_text(encoding="utf-8").splitlines():
        match = FENCE.match(line)
        if current is None and match:
            current = Block(match.group(1), match.group(2), [])
        elif current is not None and line.strip() == "```":
            found.append(current)
            current = None
        elif current is not None:
            current.lines.append(line)
    assert current is None, f"{page.name}: a code block is not closed"
    return found


def apply_edit(path: Path, block: Block) -> None:
    """Apply a ``diff`` block's edit to ``path``: its old lines (context and -) become its new ones (context and +)."""
    old = [line[1:] for line in block.lines if line[:1] in (" ", "-")]
    new = [line[1:] for line in block.lines if line[:1] in (" ", "+")]
    assert all(line[:1] in (" ", "-", "+") for line in block.lines), f"{block.title}: a diff line without its mark"
    text = path.read_text(encoding="utf-8")
    before, after = "\n".join(old) + "\n", "\n".join(new) + "\n"
    assert text.count(before) == 1, f"{block.title}: the edit's lines are not in the file once:\n{before}"
    path.write_text(text.replace(before, after), encoding="utf-8")


def apply_files(page: Path, work: Path) -> list[Block]:
    """Write a page's files and apply its edits under ``work``; the page's console blocks, to run."""
    consoles = []
    for block in blocks(page):
        if block.title and block.language == "diff":
            apply_edit(work / block.title, block)
        elif block.title:
            target = work / block.title
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("\n".join(block.lines) + "\n", encoding="utf-8")
        elif block.language == "console":
            consoles.append(block)
    return consoles


def commands(block: Block) -> list[tuple[str, list[str]]]:
    """A console block's commands, each with the lines shown under it."""
    found: list[tuple[str, list[str]]] = []
    for line in block.lines:
        if line.startswith("$ "):
            found.append((line[2:], []))
        elif line.strip():
            assert found, f"output before any command: {line}"
            found[-1][1].append(line)
    return found


def normalised(text: str) -> str:
    """Text with numbers and 16-digit identities made one token and white space collapsed (line wrapping aside)."""
    text = re.sub(r"\b[0-9a-f]{16}\b", "#", text)
    text = re.sub(r"[-+]?\d[\d,]*(\.\d+)?(e[-+]?\d+)?", "#", text)
    return " ".join(text.split())


def argv(command: str) -> list[str]:
    """The process a page's command runs: ``vaelab`` and ``python`` with this interpreter."""
    words = shlex.split(command)
    if words[0] == "vaelab":
        return [sys.executable, "-m", "vaelab", *words[1:]]
    assert words[0] == "python", f"only vaelab and python commands run here: {command}"
    return [sys.executable, *words[1:]]


def copy_source(work: Path) -> dict[str, str]:
    """A copy of the source tree under ``work``, and the environment that runs vaelab from it."""
    shutil.copytree(ROOT / "src", work / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    env = {**os.environ, "PYTHONPATH": str(work / "src"), "COLUMNS": "200", "NO_COLOR": "1"}
    return env


def test_generated_pages_cover_every_command_measure_model_dataset_and_study():
    pages = docsite.pages()
    for words in docsite.command_paths():
        assert f"## vaelab {' '.join(words)}\n" in pages["reference/cli.md"]
    assert {("train",), ("study", "run"), ("export",), ("import",)} <= set(docsite.command_paths())
    assert "--cpus-per-cell" in pages["reference/cli.md"]  # the help itself, not only the names
    for group in REGISTRY:
        assert f"## {group.name}\n" in pages["reference/measures.md"]
        for measure in group.measures:
            assert f"| `{measure.name}` |" in pages["reference/measures.md"]
    silhouette_row = next(line for line in pages["reference/measures.md"].splitlines() if "`silhouette` |" in line)
    assert "| higher |" in silhouette_row
    assert "| lower |" in next(line for line in pages["reference/measures.md"].splitlines() if "`recon_bce`" in line)
    for name, module in MODELS.items():
        assert f"## {name}\n" in pages["reference/models.md"]
        for key in module.Settings.model_fields:
            assert f"| `{key}` |" in pages["reference/models.md"]
    for preset in PRESETS:
        assert f"`{preset}`" in pages["reference/models.md"]
    assert "| `code_weight` | `float` | `0.0128` |" in pages["reference/models.md"]  # RAE's β, its default
    for name in MADE_HERE:
        assert f"## {name}\n" in pages["reference/datasets.md"]
    for name in builtin_studies():
        assert f"## {name}\n" in pages["reference/studies.md"]


def test_a_table_cell_keeps_a_pipe_in_a_setting_description():
    # the likelihood's description holds "p(x|z)": unescaped, the pipe would split the row
    row = next(line for line in docsite.models_page().splitlines() if line.startswith("| `likelihood` |"))
    assert "p(x\\|z)" in row and row.count(" | ") == 3


def test_sphinx_roles_in_rendered_docstrings_become_plain_code():
    html = "a :class:<code>~vaelab.config.RunConfig</code> and :func:<code>vaelab.api.train</code>; :x:<code>y</code>"
    assert docsite.plain_roles(html) == "a <code>RunConfig</code> and <code>vaelab.api.train</code>; :x:<code>y</code>"


def test_every_page_is_in_the_navigation_and_every_generated_page_too():
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    written = {str(path.relative_to(DOCS)) for path in DOCS.rglob("*.md")}
    for page in written | set(docsite.pages()):
        assert f": {page}\n" in config, f"{page} is not in mkdocs.yml's nav"


@pytest.mark.parametrize("page", HOWTOS, ids=[page.stem for page in HOWTOS])
def test_a_howto_page_applies_to_the_current_source(page, tmp_path):
    # the fast half of running a how-to: its files are written and its edits apply to today's source (the slow
    # test runs its commands); and it has something to run
    copy_source(tmp_path)
    consoles = apply_files(page, tmp_path)
    assert consoles and all(commands(block) for block in consoles)
    for block in blocks(page):
        if block.language == "python" and block.title:
            compile((tmp_path / block.title).read_text(encoding="utf-8"), block.title, "exec")


def test_an_edit_that_no_longer_applies_fails_by_name(tmp_path):
    (tmp_path / "registry.py").write_text("MODELS = {\n    \"ae\": ae,\n}\n", encoding="utf-8")
    with pytest.raises(AssertionError, match="registry.py: the edit's lines are not in the file once"):
        apply_edit(tmp_path / "registry.py", Block("diff", "registry.py", ['     "svae": svae,', '+    "x": x,']))
    apply_edit(tmp_path / "registry.py", Block("diff", "registry.py", ['     "ae": ae,', '+    "x": x,', " }"]))
    assert (tmp_path / "registry.py").read_text() == "MODELS = {\n    \"ae\": ae,\n    \"x\": x,\n}\n"


def test_shown_output_is_compared_without_its_numbers():
    assert normalised("vae    0.2114 ± 0.1384  21.3063") == normalised(" vae 0.3 ± 0.01 1,234.5 ")
    assert normalised("identity 25d6a1aa5dd5d1b4 -1e-05") == normalised("identity c1844a407a87fa17 3")
    assert normalised("silhouette is higher") != normalised("silhouette is lower")


@pytest.mark.slow
@pytest.mark.parametrize("page", HOWTOS, ids=[page.stem for page in HOWTOS])
def test_a_howto_page_runs_as_written(page, tmp_path):
    env = copy_source(tmp_path)
    for block in apply_files(page, tmp_path):
        for command, shown in commands(block):
            done = subprocess.run(argv(command), cwd=tmp_path, env=env,
                                  capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, f"{page.name}: `{command}` failed:\n{done.stderr[-3000:]}"
            printed = normalised(done.stdout + done.stderr)
            for line in shown:
                assert normalised(line) in printed, f"{page.name}: `{command}` did not print\n{line}\n{done.stdout}"


def build_site(target: Path) -> subprocess.CompletedProcess:
    mkdocs = Path(sys.executable).with_name("mkdocs")
    if not mkdocs.exists():
        pytest.skip("mkdocs is not installed (pip install 'vaelab[docs]')")
    return subprocess.run([str(mkdocs), "build", "--strict", "--site-dir", str(target)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    built = build_site(target)
    assert built.returncode == 0, built.stderr[-4000:]
    return target


def test_the_site_builds_in_strict_mode_with_every_page(site):
    for page in ["index.html", "getting-started.html", "reference/cli.html", "reference/measures.html",
                 "reference/models.html", "api.html", "howto/add-a-model.html", "results/n2d.html"]:
        assert (site / page).is_file(), page
    api = (site / "api.html").read_text(encoding="utf-8")
    assert "run_study" in api and "a built-in study" in api  # the docstrings themselves, rendered by mkdocstrings
    assert ":class:" not in api and ":func:" not in api
    assert not (site / "hooks.py").exists()


def test_a_broken_link_fails_the_strict_build(tmp_path):
    docs = tmp_path / "docs"
    shutil.copytree(DOCS, docs)
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    (docs / "getting-started.md").write_text((docs / "getting-started.md").read_text() + "\n[gone](no-such-page.md)\n")
    mkdocs = Path(sys.executable).with_name("mkdocs")
    if not mkdocs.exists():
        pytest.skip("mkdocs is not installed (pip install 'vaelab[docs]')")
    config = (tmp_path / "mkdocs.yml").read_text().replace("paths: [src]", f"paths: [{ROOT / 'src'}]")
    (tmp_path / "mkdocs.yml").write_text(config)
    built = subprocess.run([str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=tmp_path,
                           capture_output=True, text=True, timeout=600)
    assert built.returncode != 0
    assert "no-such-page.md" in built.stderr


@contextlib.contextmanager
def served(folder: Path):
    """``folder`` served over HTTP on 127.0.0.1 (a free port) until the block ends: the site as a host serves it
    (its search runs in a web worker, which a page opened from disk may not start)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_the_built_site_opens_in_a_browser(site):
    with chromium_page() as page, served(site) as address:
        failed: list[str] = []
        page.on("requestfailed", lambda request: failed.append(request.url))
        page.goto(address + "index.html")
        # every request settled (the search worker loads its index after the page): none is cut off by leaving
        page.wait_for_load_state("networkidle", timeout=60_000)
        assert page.title().startswith("vaelab")
        assert page.locator("h1").first.inner_text() == "vaelab"
        assert page.evaluate("Array.from(document.images).every(img => img.complete && img.naturalWidth > 0)")
        with page.expect_navigation(timeout=60_000):
            page.click("text=command-line reference")
        page.wait_for_load_state("networkidle", timeout=60_000)
        assert page.url.endswith("reference/cli.html")
        assert "vaelab study run" in page.locator("h2").all_inner_texts()
        assert "--cpus-per-cell" in page.inner_text("body")
        assert not failed and not page.errors, (failed, page.errors)
