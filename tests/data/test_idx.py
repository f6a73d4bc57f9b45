"""The strict IDX reader against hand-made good and broken files, and a fuzz test."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import idx_bytes
from vaelab.data.idx import check_pair, parse_idx, read_idx
from vaelab.errors import DataError


@pytest.mark.parametrize("code,dtype", [(0x08, np.uint8), (0x09, np.int8), (0x0B, np.int16),
                                        (0x0C, np.int32), (0x0D, np.float32), (0x0E, np.float64)])
def test_round_trip_every_dtype(code, dtype):
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    if dtype == np.uint8:
        array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    parsed = parse_idx(idx_bytes(array, code))
    assert parsed.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(parsed, array)


def test_hand_made_header_is_read_big_endian():
    raw = bytes([0, 0, 0x08, 2, 0, 0, 0, 2, 0, 0, 0, 3]) + bytes(range(6))
    np.testing.assert_array_equal(parse_idx(raw), [[0, 1, 2], [3, 4, 5]])


def test_gzip_and_plain_files_give_the_same_array(tmp_path):
    array = np.arange(60, dtype=np.uint8).reshape(3, 4, 5)
    (tmp_path / "plain").write_bytes(idx_bytes(array))
    (tmp_path / "packed.gz").write_bytes(gzip.compress(idx_bytes(array)))
    np.testing.assert_array_equal(read_idx(tmp_path / "plain"), read_idx(tmp_path / "packed.gz"))


@pytest.mark.parametrize("raw,message", [
    (b"\x00\x00", "shorter than the 4-byte header"),
    (b"\x01\x00\x08\x01\x00\x00\x00\x01\x05", "bad IDX magic"),
    (b"\x00\x00\x07\x01\x00\x00\x00\x01\x05", "unknown IDX dtype code 0x07"),
    (b"\x00\x00\x08\x00", "0 dimensions"),
    (b"\x00\x00\x08\x03\x00\x00\x00\x01", "truncated IDX header"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x04\x01\x02", "payload truncated"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x01\x01\x02", "trailing bytes"),
])
def test_broken_files_raise_the_readers_error(raw, message):
    with pytest.raises(DataError, match=message):
        parse_idx(raw, source="broken.idx")


def test_errors_name_the_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(b"\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00\x02\x01")
    with pytest.raises(DataError, match=str(path)):
        read_idx(path)


def test_corrupt_gzip_is_a_data_error(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((2, 2, 2), np.uint8)))[:-12])
    with pytest.raises(DataError, match="corrupt gzip"):
        read_idx(path)


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_idx(tmp_path / "absent")


def test_count_mismatch_and_wrong_dims_are_caught():
    images = np.zeros((5, 28, 28), np.uint8)
    with pytest.raises(DataError, match="5 images but 4 labels"):
        check_pair(images, np.zeros(4, np.uint8), "folder")
    with pytest.raises(DataError, match="3 dimensions"):
        check_pair(np.zeros((5, 784), np.uint8), np.zeros(5, np.uint8), "folder")
    with pytest.raises(DataError, match="labels must have 1 dimension"):
        check_pair(images, np.zeros((5, 1), np.uint8), "folder")


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=96))
def test_any_bytes_give_an_array_or_the_readers_error(raw):
    try:
        array = parse_idx(raw)
    except DataError:
        return
    assert isinstance(array, np.ndarray) and array.ndim == raw[3]


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 0x0E), st.lists(st.integers(0, 4), min_size=1, max_size=3), st.binary(max_size=64))
def test_well_formed_headers_with_any_payload(code, shape, payload):
    header = bytes([0, 0, code, len(shape)]) + b"".join(n.to_bytes(4, "big") for n in shape)
    try:
        array = parse_idx(header + payload)
    except DataError:
        return
    assert array.shape == tuple(shape)
