"""The data sets made here: the dSprites-like renderer (hand-checked images, the grid, determinism) and
scikit-learn's digits; both listed by `vaelab datasets`."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import run_cli
from vaelab.data import dsprites
from vaelab.data.registry import load_dataset, transductive


@pytest.fixture(scope="module")
def renderer() -> dsprites.Renderer:
    return dsprites.Renderer()


def test_the_factor_grid_is_dsprites_own(renderer):
    grid = dsprites.grid_factors()
    assert grid.shape == (737_280, 5) and dsprites.FACTOR_SIZES == (3, 6, 40, 32, 32)
    assert np.array_equal(grid.max(0), np.array(dsprites.FACTOR_SIZES) - 1)
    assert len(np.unique(grid, axis=0)) == len(grid)
    assert np.isclose(dsprites.ORIENTATIONS[-1], 2 * np.pi) and np.allclose(dsprites.SCALES[[0, -1]], [0.5, 1.0])


def test_a_large_square_at_the_centre_by_hand(renderer):
    # side 2 R / sqrt(2) = 14.14 pixels: the pixel centres within 7 of the centre pixel (32, 32)
    image = renderer.render([[0, 5, 0, 16, 16]])[0]
    expected = np.zeros((64, 64), np.uint8)
    expected[25:40, 25:40] = 255
    assert np.array_equal(image, expected)


def test_an_ellipse_is_twice_as_long_as_wide_and_turns(renderer):
    flat = renderer.render([[1, 5, 0, 16, 16]])[0] > 0
    assert flat[32].sum() == 21 and flat[:, 32].sum() == 11  # |dx| <= 10, |dy| <= 5
    assert np.array_equal(renderer.render([[1, 5, 39, 16, 16]])[0] > 0, flat)  # 2 pi is 0, as in dSprites
    turned = renderer.render([[1, 5, 10, 16, 16]])[0] > 0  # about 92 degrees
    assert turned[:, 32].sum() > turned[32].sum()


def test_positions_are_whole_pixel_shifts(renderer):
    base = renderer.render([[2, 3, 7, 10, 12]])[0]
    right = renderer.render([[2, 3, 7, 11, 12]])[0]
    down = renderer.render([[2, 3, 7, 10, 13]])[0]
    assert np.array_equal(right[:, 1:], base[:, :-1]) and np.array_equal(down[1:], base[:-1])
    corners = renderer.render([[2, 5, 0, 0, 0], [2, 5, 0, 31, 31]])
    centred = renderer.render([[2, 5, 0, 16, 16]])[0]
    assert [int(image.sum()) for image in corners] == [int(centred.sum())] * 2  # nothing cut off at the edges


def test_every_shape_is_drawn_and_the_heart_is_not_symmetric(renderer):
    images = renderer.render([[s, 5, 0, 16, 16] for s in range(3)]) > 0
    areas = images.reshape(3, -1).sum(1)
    assert len(set(areas.tolist())) == 3 and areas.min() > 50
    heart = images[2, 16:49, 16:49]  # the window around the centre pixel (32, 32)
    assert not np.array_equal(heart, heart[::-1]) and np.array_equal(heart, heart[:, ::-1])  # upright, mirror-symmetric


def test_rendering_is_deterministic_and_matches_the_strided_view(renderer):
    factors = dsprites.subset_factors(300, seed=4)
    assert np.array_equal(renderer.render(factors), dsprites.Renderer().render(factors))
    every = renderer.all_positions(1, 2, 3)
    assert every.shape == (32, 32, 64, 64)
    assert np.array_equal(every[7, 20], renderer.render([[1, 2, 3, 20, 7]])[0])  # [y, x]
    assert set(np.unique(every)) == {0, 255}


def test_bad_factors_are_refused(renderer):
    with pytest.raises(ValueError, match="factor indices must lie within"):
        renderer.render([[3, 0, 0, 0, 0]])
    with pytest.raises(ValueError, match="factor indices must lie within"):
        renderer.render([[0, 0, 0, 0, -1]])


def test_the_dsprites_data_set_keeps_its_factors_beside_its_images():
    a, b = load_dataset("dsprites", seed=0), load_dataset("dsprites", seed=1)
    assert a.train_images.shape == (16_000, 64, 64) and a.test_images.shape == (4_000, 64, 64)
    assert a.factor_names == ["shape", "scale", "orientation", "x", "y"] and a.class_names == list(dsprites.SHAPES)
    assert np.array_equal(a.test_labels, a.test_factors[:, 0])
    assert np.array_equal(dsprites.Renderer().render(a.test_factors[:50]), a.test_images[:50])
    every = lambda d: {tuple(f) for f in np.concatenate([d.train_factors, d.test_factors])}  # noqa: E731
    assert every(a) == every(b) and not np.array_equal(a.test_factors, b.test_factors)  # one subset, split by seed
    whole = transductive(a)
    assert len(whole.test_factors) == 20_000 and np.array_equal(whole.test_labels, whole.test_factors[:, 0])
    shuffled = load_dataset("dsprites", seed=0)
    shuffled.test_factors = shuffled.test_factors[::-1].copy()
    assert shuffled.fingerprint != a.fingerprint  # the factors are part of what a run was trained on


def test_a_dsprites_subset_of_any_size_and_bad_sizes_in_one_line(tmp_path):
    from vaelab.errors import DataError

    small = load_dataset("dsprites:500", seed=0)
    assert small.name == "dsprites:500" and len(small.train_images) + len(small.test_images) == 500
    assert small.class_names == list(dsprites.SHAPES)
    with pytest.raises(DataError, match="write dsprites:N with N from 100 to 737,280 images"):
        load_dataset("dsprites:5")
    with pytest.raises(DataError, match="digits has one size: write digits, without ':9'"):
        load_dataset("digits:9")
    result = run_cli("train", "--dataset", "dsprites:abc", "--out", str(tmp_path / "r"))
    assert result.returncode == 2 and "write dsprites:N" in result.stderr and result.stderr.count("\n") == 1


def test_digits_are_scikit_learns():
    from sklearn.datasets import load_digits

    data = load_dataset("digits", seed=0)
    assert data.train_images.shape == (1437, 8, 8) and data.test_images.shape == (360, 8, 8)
    oracle = load_digits()
    scaled = np.rint(oracle.images * 255 / 16).astype(np.uint8)
    pool = {img.tobytes(): label for img, label in zip(scaled, oracle.target)}
    assert all(pool[img.tobytes()] == label for img, label in zip(data.test_images, data.test_labels))
    assert data.train_images.max() == 255


def test_the_datasets_command_lists_them():
    result = run_cli("datasets")
    assert result.returncode == 0, result.stderr
    assert "digits" in result.stdout and "dsprites" in result.stdout and "(made here)" in result.stdout
