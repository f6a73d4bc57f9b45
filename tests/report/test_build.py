"""vaelab.report.build: the study report (HTML and Markdown) from a study folder, its numbers, its
self-containment, `vaelab report`, and the page in a real browser."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser

from tests.conftest import (
    REPORT_FIGURES,
    THESIS_MODELS,
    THESIS_SEEDS,
    check_report_in_browser,
    only_part,
    run_cli,
)
from vaelab.analysis.compare import fmt
from vaelab.report.build import _generation_rows

SEEDS, MODELS = THESIS_SEEDS, THESIS_MODELS


class _NumberSpans(HTMLParser):
    def __init__(self):
        super().__init__()
        self.found: list[tuple[str, str]] = []
        self._key = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "span" and "data-key" in attrs:
            self._key = attrs["data-key"]

    def handle_data(self, data):
        if self._key is not None:
            self.found.append((self._key, data))
            self._key = None


def _lookup(results: dict, key: str):
    head, _, rest = key.partition(".")
    value = results[head]
    # model names contain dashes and measure names dots (sigma 0.5): match the longest known key first
    while rest:
        if isinstance(value, list):  # a list's items by index (the study's references)
            value = {str(index): item for index, item in enumerate(value)}
        match = max((k for k in value if rest == k or rest.startswith(k + ".")), key=len)
        value, rest = value[match], rest[len(match) + 1:]
    return value



def test_every_number_in_the_report_equals_results_json(thesis_study):
    root, results = thesis_study
    parser = _NumberSpans()
    parser.feed((root / "report.html").read_text())
    assert len(parser.found) > 200
    keys = {key for key, _ in parser.found}
    (dataset,) = results["datasets"]
    base = f"datasets.{dataset}"
    for model in MODELS:
        assert f"{base}.aggregate.{model}.silhouette.mean" in keys
        for seed in range(SEEDS):
            assert f"{base}.per_seed.{model}.{seed}.silhouette" in keys
    assert "study.reference.0.values.ae" in keys and f"{base}.paired.silhouette:ae-vae.mean" in keys
    for key, text in parser.found:
        assert text == fmt(_lookup(results, key)), key
    markdown = (root / "report.md").read_text()
    assert only_part(results)["finding"] in markdown
    for sentence in only_part(results)["further_findings"]:  # experiment 3b: a finding of its own
        assert sentence in markdown and sentence.replace("'", "&#39;") in (root / "report.html").read_text()
    assert "Rows marked ex-post" in (root / "report.html").read_text()
    assert fmt(only_part(results)["aggregate"]["vae"]["silhouette"]["mean"]) in markdown


def test_report_is_self_contained(thesis_study):
    root, _ = thesis_study
    html = (root / "report.html").read_text()
    sources = re.findall(r'<img src="([^"]{0,30})', html)
    assert len(sources) == len(REPORT_FIGURES) and all(s.startswith("data:image/png;base64,") for s in sources)
    # nothing is fetched from elsewhere (plotly.js is inlined; its code mentions URLs it never loads here)
    markup = re.sub(r"<script[^>]*>.*?</script>", "", html, flags=re.S)
    assert not re.findall(r'(?:src|href)\s*=\s*["\']?(?:https?:)?//', markup)
    assert html.count("<script>") == 2 and "plotly.js v" in html  # plotly.js inlined, then the maps' code
    assert len(html) < 10_000_000


def test_report_command_redraws_without_training(thesis_study):
    root, _ = thesis_study
    checkpoints = {p: p.stat().st_mtime_ns for p in root.rglob("*.safetensors")}
    html_before = (root / "report.html").read_text()
    for figure in (root / "figures").rglob("*.png"):
        figure.unlink()
    (root / "report.html").unlink()
    result = run_cli("report", str(root))
    assert result.returncode == 0, result.stderr
    assert "report.html" in result.stdout
    assert (root / "report.html").read_text() == html_before
    assert len(list((root / "figures").rglob("*.png"))) == len(REPORT_FIGURES)
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.safetensors")} == checkpoints


def _report_with_references(root, out, references) -> tuple[str, str]:
    """The study at ``root`` copied to ``out`` with its results' references replaced, and its report redrawn."""
    shutil.copytree(root, out)
    results = json.loads((out / "results.json").read_text())
    results["study"]["reference"] = references
    (out / "results.json").write_text(json.dumps(results))
    result = run_cli("report", str(out))
    assert result.returncode == 0, result.stderr
    return (out / "report.html").read_text(), (out / "report.md").read_text()


def test_published_numbers_are_shown_beside_the_data_they_are_about(thesis_study, tmp_path):
    root, results = thesis_study
    (content,) = only_part(results)["contents"]  # the tiny IDX folder's content fingerprint
    about_it = {"title": "Numbers about this folder's data", "measure": "silhouette", "values": {"ae": 0.25},
                "protocol": "transductive, every image, one run", "fingerprints": [content]}
    about_other = {"title": "Numbers about other data", "measure": "silhouette", "values": {"ae": 0.5},
                   "fingerprints": ["c" * 64]}
    html, markdown = _report_with_references(root, tmp_path / "two", [about_other, about_it])
    html = html.replace("&#39;", "'")  # the HTML escapes the study's text
    for page in (html, markdown):
        assert "Numbers about this folder's data" in page and "transductive, every image, one run" in page
        assert "Numbers about other data" not in page
    assert 'data-key="study.reference.1.values.ae">0.2500<' in html
    # a results.json of before, with one reference as a mapping, is still drawn
    html, markdown = _report_with_references(root, tmp_path / "one", dict(about_it, fingerprints=None))
    assert 'data-key="study.reference.values.ae">0.2500<' in html and "Numbers about this folder's data" in markdown


def test_text_from_the_study_file_is_escaped_in_the_html_report(thesis_study, tmp_path):
    root, _ = thesis_study
    out = tmp_path / "hostile"
    shutil.copytree(root, out)
    results = json.loads((out / "results.json").read_text())
    results["study"]["models"]["ae"]["label"] = "<script>alert(1)</script>"
    results["study"]["title"] = "A & B <i>"
    (out / "results.json").write_text(json.dumps(results))
    assert run_cli("report", str(out)).returncode == 0
    html = (out / "report.html").read_text()
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<h1>A &amp; B &lt;i&gt;</h1>" in html
    assert "# A & B <i>" in (out / "report.md").read_text()  # Markdown is text: not HTML-escaped


def test_report_command_on_a_folder_without_results(tmp_path):
    result = run_cli("report", str(tmp_path))
    assert result.returncode == 2 and "no results.json" in result.stderr and "Traceback" not in result.stderr


def test_report_renders_every_figure_in_a_real_browser(thesis_study, tmp_path):
    root, _ = thesis_study
    seen = check_report_in_browser(root / "report.html", tmp_path / "report.png")
    assert len(seen["images"]) == len(REPORT_FIGURES)
    for image in seen["images"]:
        assert image["complete"] and image["width"] > 100, image
        assert image["spread"] > 100, f"{image['alt']} looks blank"
    assert seen["failed_requests"] == [] and seen["errors"] == []
    assert "latent space" in seen["title"]
    # the interactive t-SNE map: hovering a point shows that test image
    hover = seen["hover"]
    assert hover["distance"] < 10 and hover["shows_it"], hover  # the point under the mouse, and its image
    assert hover["caption"].startswith(f"test image #{hover['hovered']}: ")
    assert (tmp_path / "report.png").stat().st_size > 50_000


def test_the_generation_figure_puts_each_model_s_ex_post_draws_under_its_prior_draws():
    ae, vae, conv = ({"prior": f"{k} prior", "expost": f"{k} ex-post"} for k in ("ae", "vae", "conv"))
    del conv["expost"]  # a cell evaluated without the expost measures
    labels = {"ae": "AE", "vae": "VAE", "conv": "Conv"}
    rows = _generation_rows({"ae": ae, "vae": vae, "conv": conv}, labels)
    assert rows == {"AE: prior": "ae prior", "AE: ex-post": "ae ex-post", "VAE: prior": "vae prior",
                    "VAE: ex-post": "vae ex-post", "Conv: prior": "conv prior"}
    assert _generation_rows({"conv": conv}, labels) == {"Conv": "conv prior"}  # no ex-post anywhere: as before
