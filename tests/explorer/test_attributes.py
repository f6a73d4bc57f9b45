"""The explorer's attribute directions ("add a smile") on a tiny CelebA in its official layout: the answer, bad
requests, and the control in real headless chromium; on data without attributes the control stays hidden."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import chromium_page, run_cli
from tests.data.test_celeba import write_celeba
from vaelab.analysis.generate import DIRECTION_STEPS
from vaelab.analysis.measures import attribute_directions

STUDY = {
    "name": "faces", "datasets": ["celeba"], "seeds": 1, "train": {"epochs": 1, "batch_size": 8},
    "models": {"ae": {"preset": "ae", "model": {"latent": 4, "hidden": 32}, "label": "AE"},
               "conv-vae": {"preset": "conv-vae", "model": {"latent": 4}, "label": "conv VAE"}},
    "measures": ["separation"],
}


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """An explorer on a finished two-model study of the tiny CelebA, and the cache it reads the faces from."""
    from vaelab.explorer.session import Explorer, find_runs

    root = tmp_path_factory.mktemp("faces")
    write_celeba(root / "cache" / "vaelab" / "celeba")
    (root / "study.yaml").write_text(yaml.safe_dump(STUDY, sort_keys=False))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(root / "cache"))
        result = run_cli("study", "run", str(root / "study.yaml"), "--out", str(root / "out"), "--quiet")
        assert result.returncode == 0, result.stderr
        yield Explorer(find_runs([root / "out"]))


def test_the_walk_adds_the_attribute_s_mean_difference_to_the_chosen_code(faces):
    assert "Smiling" in faces.summary()["attributes"]
    answer = faces.attribute(["ae", "conv-vae"], "Smiling", 3)
    assert answer["amounts"] == [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0] == list(DIRECTION_STEPS)  # the report's steps
    assert [len(strip) for strip in answer["strips"].values()] == [7, 7]
    # amount 0 is the image's own code: its reconstruction, as the point answer decodes it
    assert answer["strips"]["ae"][2] == faces.point(3)["reconstructions"]["ae"]
    m, k = faces.models["ae"], list(faces.data.attribute_names).index("Smiling")
    direction = attribute_directions(m.codes, faces.attributes[:, k:k + 1])[0]
    expected = faces.decode("ae", (m.codes[3] + direction).tolist())["image"]
    assert answer["strips"]["ae"][4] == expected  # amount 1: the whole mean difference added


@pytest.mark.parametrize("call, message", [
    (lambda e: e.attribute(["ae"], "Smiles", 0), "unknown attribute 'Smiles': choose one of"),
    (lambda e: e.attribute(["ae"], 7, 0), "unknown attribute '7'"),
    (lambda e: e.attribute(["ae"], "Smiling", 99), "point must be an integer from 0 to 7"),
    (lambda e: e.attribute(["ae"], "Smiling", 0, 1), "steps must be an integer from 2 to 64"),
    (lambda e: e.attribute(["nope"], "Smiling", 0), "unknown model 'nope'"),
])
def test_bad_attribute_requests_say_what_to_send(faces, call, message):
    from vaelab.explorer.session import BadRequest

    with pytest.raises(BadRequest, match=message):
        call(faces)


def test_data_without_attributes_answers_that_it_has_none(explorer):
    from vaelab.explorer.session import BadRequest

    assert explorer.summary()["attributes"] == []
    with pytest.raises(BadRequest, match="has no binary attributes to follow"):
        explorer.attribute(None, "Smiling", 0)


def test_the_page_adds_an_attribute_to_the_chosen_face(faces):
    from vaelab.explorer.server import Server

    running = Server(faces).start()
    try:
        with chromium_page({"width": 1400, "height": 1000}) as page:
            page.goto(running.url)
            page.wait_for_selector("body[data-ready='1']", timeout=60_000)
            assert page.locator("#attribute-section").is_visible()
            page.select_option("#attribute", "Eyeglasses")
            page.click("#attribute-go")
            page.wait_for_function("() => document.querySelectorAll('#attribute-strips .row').length === 2",
                                   timeout=30_000)
            counts = page.evaluate("() => Array.from(document.querySelectorAll('#attribute-strips .row'))"
                                   ".map(row => row.querySelectorAll('img').length)")
            assert counts == [7, 7] and page.errors == []
    finally:
        running.stop()


def test_the_control_is_hidden_where_the_data_has_no_attributes(server):
    with chromium_page() as page:
        page.goto(server.url)
        page.wait_for_selector("body[data-ready='1']", timeout=60_000)
        assert not page.locator("#attribute-section").is_visible() and page.errors == []
