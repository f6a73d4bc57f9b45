"""A strict reader for the IDX format of MNIST-like data sets.

Layout (big-endian): two zero bytes, a dtype code, the number of dimensions n,
then n uint32 sizes, then the payload in C order. Every violation raises
:class:`~vaelab.errors.DataError` naming the file and what is wrong; no other
exception escapes for any byte string (a property test checks this).
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

from vaelab.errors import DataError

# IDX dtype codes -> big-endian NumPy dtypes.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
GZIP_MAGIC = b"\x1f\x8b"


def parse_idx(raw: bytes, source: str = "<bytes>") -> np.ndarray:
    """Parse the bytes of an (uncompressed) IDX file into an array in native byte order."""
    if len(raw) < 4:
        raise DataError(f"{source}: not an IDX file: {len(raw)} bytes, shorter than the 4-byte header")
    if raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{source}: bad IDX magic number {raw[:4].hex()}: the first two bytes must be zero")
    code, ndim = raw[2], raw[3]
    if code not in IDX_DTYPES:
        raise DataError(f"{source}: unknown IDX dtype code 0x{code:02x} (expected one of 08 09 0b 0c 0d 0e)")
    if ndim == 0:
        raise DataError(f"{source}: IDX header declares 0 dimensions")
    header_end = 4 + 4 * ndim
    if len(raw) < header_end:
        raise DataError(f"{source}: truncated IDX header: {ndim} dimensions need {header_end} bytes, file has {len(raw)}")
    shape = tuple(int(size) for size in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=object)) * dtype.itemsize
    actual = len(raw) - header_end
    if actual != expected:
        kind = "truncated" if actual < expected else "has trailing bytes"
        raise DataError(
            f"{source}: IDX payload {kind}: shape {shape} needs {expected} bytes, found {actual}"
        )
    array = np.frombuffer(raw, dtype=dtype, offset=header_end).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file, gzip-compressed or plain (detected from its first bytes)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read: {error.strerror}") from None
    if raw[:2] == GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise DataError(f"{path}: corrupt gzip stream ({error}): delete the file and fetch it again") from None
    return parse_idx(raw, source=str(path))


def check_pair(images: np.ndarray, labels: np.ndarray, source: str) -> None:
    """Check that an image array (N, H, W) and a label vector (N,) belong together."""
    if images.ndim != 3:
        raise DataError(f"{source}: images must have 3 dimensions (count, height, width), found shape {images.shape}")
    if labels.ndim != 1:
        raise DataError(f"{source}: labels must have 1 dimension, found shape {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{source}: {images.shape[0]} images but {labels.shape[0]} labels: the two files do not belong together"
        )
    if images.dtype != np.uint8:
        raise DataError(f"{source}: images must be uint8 pixels, found {images.dtype}")
