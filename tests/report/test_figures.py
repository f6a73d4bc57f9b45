"""vaelab.report.figures: each figure is a PNG written atomically, identical bytes for identical input, and it
shows what it was given (read back pixel by pixel)."""

from __future__ import annotations

import matplotlib.image
import numpy as np
import pytest

from vaelab.report import figures

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _pixels(path) -> np.ndarray:
    """The PNG's RGB pixels in [0, 1], (H, W, 3)."""
    return matplotlib.image.imread(path)[..., :3]


def _maps(n_models: int, n_points: int = 60) -> dict:
    rng = np.random.default_rng(0)
    labels = np.arange(n_points) % 3
    return {f"model {i}": (rng.normal(size=(n_points, 2)) + labels[:, None] * 4, labels) for i in range(n_models)}


def test_a_grey_row_is_drawn_dark_on_light_and_a_colour_row_in_its_colour(tmp_path):
    black = np.ones((4, 8, 8))  # intensity 1: ink, drawn dark as the thesis's figures
    red = np.zeros((4, 3, 8, 8))
    red[:, 0] = 1.0
    path = figures.image_rows({"ink": black, "red": red}, tmp_path / "rows.png", "rows")
    pixels = _pixels(path)
    dark = (pixels.max(axis=2) < 0.1).mean()
    pure_red = ((pixels[..., 0] > 0.9) & (pixels[..., 1:].max(axis=2) < 0.1)).mean()
    assert dark > 0.05 and pure_red > 0.05
    assert path.read_bytes().startswith(PNG_MAGIC)


def test_a_row_shorter_than_the_others_leaves_its_cells_blank(tmp_path):
    full = figures.image_rows({"a": np.ones((6, 8, 8)), "b": np.ones((6, 8, 8))}, tmp_path / "full.png", "t")
    short = figures.image_rows({"a": np.ones((6, 8, 8)), "b": np.ones((2, 8, 8))}, tmp_path / "short.png", "t")
    assert abs(_pixels(full).shape[0] - _pixels(short).shape[0]) <= 2  # the same grid (tight bbox: +-1 px)
    assert (_pixels(short).max(axis=2) < 0.1).sum() < (_pixels(full).max(axis=2) < 0.1).sum()


@pytest.mark.parametrize("draw", [
    lambda out: figures.image_rows({"a": np.linspace(0, 1, 3 * 64).reshape(3, 8, 8)}, out, "grid", ["x", "y", "z"]),
    lambda out: figures.latent_maps(_maps(2), ["0", "1", "2"], out, "maps"),
    lambda out: figures.silhouette_plots(
        {"ae": (np.linspace(-0.4, 0.4, 30), np.arange(30) % 3, 0.1)}, ["0", "1", "2"], out, "silhouettes"),
    lambda out: figures.curves({"vae": (np.arange(5.0), np.arange(5.0) ** 2, np.ones(5))}, out, "c", "x", "y",
                               logy=True),
    lambda out: figures.bars(["knn", "probe"], {"ae": (np.array([0.9, 0.8]), np.array([0.01, np.nan]))}, out, "b"),
], ids=["image_rows", "latent_maps", "silhouette_plots", "curves", "bars"])
def test_every_figure_is_the_same_png_twice_and_leaves_no_temporary(tmp_path, draw):
    first, second = draw(tmp_path / "first.png"), draw(tmp_path / "second.png")
    assert first.read_bytes().startswith(PNG_MAGIC)
    assert first.read_bytes() == second.read_bytes()  # no date or version stamp in the file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first.png", "second.png"]
    assert _pixels(first).std() > 0.01  # not a blank canvas


def test_a_map_per_model_side_by_side(tmp_path):
    one = _pixels(figures.latent_maps(_maps(1), ["0", "1", "2"], tmp_path / "one.png", "t"))
    three = _pixels(figures.latent_maps(_maps(3), ["0", "1", "2"], tmp_path / "three.png", "t"))
    assert three.shape[1] > 2.5 * one.shape[1] and abs(three.shape[0] - one.shape[0]) < 5
    # each class in its tab10 colour: the first class's blue, drawn at alpha 0.8 on white, is on the map
    tab_blue = 0.8 * np.array([0x1F, 0x77, 0xB4]) / 255 + 0.2
    assert (np.abs(one - tab_blue).max(axis=2) < 0.05).sum() > 20


def test_a_figure_into_a_folder_that_is_a_file_fails_and_writes_nothing(tmp_path):
    (tmp_path / "taken").write_text("a file")
    with pytest.raises(OSError):
        figures.bars(["a"], {"m": (np.array([1.0]), np.array([0.1]))}, tmp_path / "taken" / "bars.png", "t")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
