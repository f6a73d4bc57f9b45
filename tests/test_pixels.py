"""PNG encoding without an imaging library, checked against an independent decoder (matplotlib/Pillow)."""

from __future__ import annotations

import base64
import io

import matplotlib.image
import numpy as np
import pytest

from vaelab.pixels import data_uri, png_bytes, to_uint8


def decoded(payload: bytes) -> np.ndarray:
    return np.rint(matplotlib.image.imread(io.BytesIO(payload), format="png") * 255).astype(np.uint8)


def test_grey_uint8_round_trips_exactly():
    image = np.random.default_rng(0).integers(0, 256, (28, 17), dtype=np.uint8)
    assert np.array_equal(decoded(png_bytes(image)), image)
    assert np.array_equal(decoded(png_bytes(image, invert=True)), 255 - image)


def test_rgb_in_either_channel_order_round_trips():
    image = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert np.array_equal(decoded(png_bytes(image))[..., :3], image)
    assert np.array_equal(decoded(png_bytes(np.moveaxis(image, -1, 0)))[..., :3], image)
    assert np.array_equal(decoded(png_bytes(image, invert=True))[..., :3], image)  # colour is never inverted


def test_floats_are_read_as_unit_interval_and_clipped():
    image = np.array([[0.0, 0.5, 1.0, 1.7], [-0.2, np.nan, 0.25, 0.75]])
    assert to_uint8(image).tolist() == [[0, 128, 255, 255], [0, 0, 64, 191]]
    assert np.array_equal(to_uint8(image[None]), to_uint8(image))  # (1, H, W)


def test_data_uri_is_a_base64_png():
    uri = data_uri(np.zeros((4, 4)))
    assert uri.startswith("data:image/png;base64,")
    assert np.array_equal(decoded(base64.b64decode(uri.split(",", 1)[1])), np.full((4, 4), 255))  # inverted


@pytest.mark.parametrize("shape", [(5,), (2, 3, 4, 5), (4, 4, 2)])
def test_other_shapes_are_refused(shape):
    with pytest.raises(ValueError, match="an image must be"):
        png_bytes(np.zeros(shape))
