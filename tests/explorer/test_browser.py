"""The explorer's page in real headless chromium: what a researcher does with it, checked by its pixels."""

from __future__ import annotations

import json
import urllib.request

import pytest

from tests.conftest import HOVER_FIRST_POINT, chromium_page

PIXELS = """(selector) => {
    // an <img>'s grey levels, drawn onto a canvas
    const img = document.querySelector(selector);
    const canvas = document.createElement('canvas');
    canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
    const ctx = canvas.getContext('2d');
    ctx.drawImage(img, 0, 0);
    const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    const grey = [];
    for (let i = 0; i < data.length; i += 4) grey.push(data[i]);
    return grey;
}"""


MAX_PIXEL_DIFFERENCE = """async ([first, second]) => {
    // the largest grey-level difference between the images of two lists of data URIs, pair by pair
    const grey = async (uri) => {
        const img = new Image();
        img.src = uri;
        await img.decode();
        const canvas = document.createElement('canvas');
        canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
        const ctx = canvas.getContext('2d');
        ctx.drawImage(img, 0, 0);
        return ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    };
    let worst = 0;
    for (let k = 0; k < first.length; k++) {
        const [a, b] = [await grey(first[k]), await grey(second[k])];
        if (a.length !== b.length) return 255;
        for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
    }
    return worst;
}"""


@pytest.fixture
def page(server):
    with chromium_page({"width": 1400, "height": 1000}) as page:
        page.goto(server.url)
        page.wait_for_selector("body[data-ready='1']", timeout=60_000)
        yield page
        assert page.errors == [], page.errors  # no console errors, whatever the test did


def test_the_page_loads_every_panel_without_errors(page, tmp_path):
    assert page.title() == "vaelab explorer"
    assert page.locator("#models tr").count() == 1 + 5  # a header and one row per model
    assert page.locator("#map .main-svg").count() > 0 and page.locator("#plane .main-svg").count() > 0
    assert page.locator("#sliders input[type=range]").count() == 4  # the latent size
    assert page.locator("#centroids .row").count() == 5 and page.locator("#prior .row").count() == 5
    assert page.locator("#centroids .row").first.locator("img").count() == 3  # one per class
    page.screenshot(path=str(tmp_path / "explorer.png"), full_page=True)


def test_choosing_the_ex_post_density_redraws_the_generation_rows(page, server):
    before = [img.get_attribute("src") for img in page.locator("#prior img").all()]
    page.select_option("#source", "expost")
    page.wait_for_function("() => document.querySelector('#source-hint').textContent.includes('ex-post density')",
                           timeout=30_000)
    after = [img.get_attribute("src") for img in page.locator("#prior img").all()]
    request = urllib.request.Request(f"{server.url}api/prior", method="POST", headers={"Content-Type": "application/json"},
                                     data=json.dumps({"keys": ["vae", "ae", "conv-vae", "cvae", "mog-vae"], "seed": 0,
                                                      "n": 12, "source": "expost"}).encode())
    with urllib.request.urlopen(request, timeout=30) as response:
        expected = json.loads(response.read())
    assert after == [uri for row in expected["rows"].values() for uri in row] and after != before
    assert page.locator("#prior .row").count() == 5


def test_hovering_a_point_shows_its_image_and_reconstructions(page, server):
    page.locator("#map").scroll_into_view_if_needed()
    point = page.evaluate(HOVER_FIRST_POINT, "#map")
    page.mouse.move(point["x"] + 40, point["y"] + 40)  # away first, so that the next move is a new hover
    page.mouse.move(point["x"], point["y"])
    page.wait_for_function(f"() => document.querySelector('#hover-image').dataset.point === '{point['index']}'",
                           timeout=30_000)
    page.wait_for_function("() => document.querySelector('#hover-image').complete")
    with urllib.request.urlopen(f"{server.url}api/point?i={point['index']}", timeout=30) as response:
        expected = json.loads(response.read())
    assert page.get_attribute("#hover-image", "src") == expected["image"]
    assert page.locator("#hover-caption").text_content() == f"#{point['index']}: {expected['class']}"
    shown = [img.get_attribute("src") for img in page.locator("#hover-recons img").all()]
    wanted = list(expected["reconstructions"].values())
    assert len(shown) == len(wanted)
    # the same point's reconstructions, pixel for pixel within one grey level: on a loaded machine two
    # decodings of one code have differed in a last bit that rounds to another grey level (seen twice in CI)
    assert page.evaluate(MAX_PIXEL_DIFFERENCE, [shown, wanted]) <= 1
    assert page.evaluate("() => document.querySelector('#hover-image').naturalWidth") == 28


def test_moving_a_traversal_slider_changes_the_decoded_image(page):
    page.wait_for_function("() => document.querySelector('#traverse-image').naturalWidth === 28")
    before = page.evaluate(PIXELS, "#traverse-image")
    source = page.get_attribute("#traverse-image", "src")
    slider = page.locator("#sliders input[type=range]").first
    slider.scroll_into_view_if_needed()
    box = slider.bounding_box()
    page.mouse.click(box["x"] + box["width"] - 2, box["y"] + box["height"] / 2)  # drag it to the far end
    page.wait_for_function(f"() => document.querySelector('#traverse-image').src !== {json.dumps(source)}",
                           timeout=30_000)
    page.wait_for_function("() => document.querySelector('#traverse-image').complete")
    after = page.evaluate(PIXELS, "#traverse-image")
    assert len(after) == len(before) == 28 * 28
    assert sum(abs(a - b) for a, b in zip(after, before)) > 0, "the decoded image did not change"


def test_a_click_on_the_pca_plane_decodes_with_two_models_side_by_side(page):
    for key in ("ae", "cvae", "mog-vae"):  # keep the VAE and the conv VAE ticked
        page.locator(f"#models input[data-model='{key}']").uncheck()
    page.locator("#plane").scroll_into_view_if_needed()
    area = page.locator("#plane .nsewdrag").bounding_box()
    page.mouse.click(area["x"] + area["width"] * 0.3, area["y"] + area["height"] * 0.6)
    page.wait_for_function("() => document.querySelectorAll('#plane-images figure').length === 2", timeout=10_000)
    models = [fig.get_attribute("data-model") for fig in page.locator("#plane-images figure").all()]
    assert models == ["vae", "conv-vae"]
    page.wait_for_function("() => Array.from(document.querySelectorAll('#plane-images img')).every(i => i.complete)")
    first = page.evaluate(PIXELS, "#plane-images figure:nth-child(1) img")
    second = page.evaluate(PIXELS, "#plane-images figure:nth-child(2) img")
    assert len(first) == len(second) == 28 * 28 and first != second  # two models, two decodings
    assert "clicked point" in page.locator("#traverse-from").text_content()


def test_the_interpolation_strip_has_the_asked_number_of_images(page):
    page.fill("#interp-a", "3")
    page.fill("#interp-b", "20")
    page.fill("#interp-steps", "7")
    page.select_option("#interp-path", "spherical")
    page.click("#interp-go")
    page.wait_for_function("() => document.querySelectorAll('#interp-strips .row').length === 5", timeout=10_000)
    counts = page.evaluate("() => Array.from(document.querySelectorAll('#interp-strips .row'))"
                           ".map(row => row.querySelectorAll('img').length)")
    assert counts == [7] * 5


def test_a_bad_request_from_the_page_is_shown_not_thrown(server):
    with chromium_page() as page:
        page.goto(server.url)
        page.wait_for_selector("body[data-ready='1']", timeout=60_000)
        page.fill("#interp-steps", "500")
        page.click("#interp-go")
        page.wait_for_selector("#status", state="visible", timeout=10_000)
        assert "steps must be an integer from 2 to 64" in page.locator("#status").text_content()
        # the browser logs the 400 itself; nothing else goes wrong
        assert all("400" in error for error in page.errors), page.errors
