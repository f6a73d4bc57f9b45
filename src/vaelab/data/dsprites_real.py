"""``dsprites-real``: DeepMind's dSprites file (Matthey et al. 2017), the one the disentanglement literature
measures on, beside vaelab's own rendering of its grid (``dsprites``).

Read from ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz``: ``imgs`` (737,280 binary 64x64 images, uint8)
and ``latents_classes`` (their factor indices: colour, shape, scale, orientation, x, y). The file also
holds a pickled ``metadata`` entry: it is never read, and every array is loaded with
``allow_pickle=False``, so a file whose arrays are pickles is refused instead of executed.

The images are decompressed from the archive chunk by chunk and kept bit-packed (377 MB for the whole
grid rather than 3 GB), so that the disentanglement metrics can draw any point of the grid, as from
the rendered set. Like ``dsprites``, the data set is a fixed subset of 20,000 grid points (the same
points as ``dsprites``, so that the two compare; ``dsprites-real:N`` for N of them), split
train/test by the run's seed and labelled by shape.

Looked for in ``--data-dir`` (or ``$VAELAB_DATA_DIR``) and the cache; otherwise downloaded once from
DeepMind's repository, checked against the MD5 its users publish, into the cache atomically.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from vaelab.data import dsprites, sources
from vaelab.data.dataset import Dataset, FactorGrid, check_grid_order, grid_subset, stratified_split
from vaelab.errors import DataError

NAME = "dsprites-real"
FACTOR_SIZES = dsprites.FACTOR_SIZES  # shape, scale, orientation, x, y (the file's colour has one value)
SIZE = 64
SUBSET = dsprites.SUBSET
SIZES = (100, 737_280)  # ``dsprites-real:N``: a subset of N images (the whole grid at most)
DESCRIPTION = f"{SUBSET:,} images of DeepMind's dSprites file, 64x64, factors known"
READS_FILES = True
FILE = sources.RemoteFile("dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz", sha256="",
                          md5="7da33b31b13a06f4b04a70402ce90c2e")
MIRRORS = ("https://github.com/google-deepmind/dsprites-dataset/raw/master/",)
CHUNK = 16_384  # images decompressed at a time (64 MB)
DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError)


def _header(handle, where: str) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype of the ``.npy`` stream ``handle``, refusing pickles and Fortran order."""
    version = np.lib.format.read_magic(handle)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = read(handle)
    if dtype.hasobject:
        raise DataError(f"{where}: imgs holds pickled Python objects, which vaelab never loads: this is not "
                        "DeepMind's dSprites file; delete it and download it again")
    if fortran:
        raise DataError(f"{where}: imgs is stored in Fortran order, DeepMind's file is not: download it again")
    return shape, dtype


def read_packed(path: Path) -> np.ndarray:
    """Every image of the file, bit-packed: uint8 (737280, 64, 8), one bit a pixel (``np.unpackbits`` reads it)."""
    total = int(np.prod(FACTOR_SIZES))
    where = f"{path}: imgs.npy"
    try:
        with zipfile.ZipFile(path) as archive, archive.open("imgs.npy") as handle:
            shape, dtype = _header(handle, where)
            if shape != (total, SIZE, SIZE) or dtype != np.uint8:
                raise DataError(f"{where} is {dtype} {shape}, expected uint8 {(total, SIZE, SIZE)}: this is not "
                                "DeepMind's dSprites file")
            packed = np.empty((total, SIZE, SIZE // 8), np.uint8)
            for start in range(0, total, CHUNK):
                rows = min(CHUNK, total - start)
                payload = handle.read(rows * SIZE * SIZE)
                if len(payload) != rows * SIZE * SIZE:
                    raise EOFError(f"imgs ends after {start + len(payload) // (SIZE * SIZE):,} images")
                packed[start:start + rows] = np.packbits(np.frombuffer(payload, np.uint8).reshape(rows, SIZE, SIZE),
                                                         axis=-1)
            return packed
    except DAMAGED as error:
        raise DataError(f"{path}: not a readable dSprites .npz ({_reason(error)}): delete it and download it "
                        "again") from None


def check_factors(path: Path) -> None:
    """Check that the file's factor indices (``latents_classes``, its one colour aside) are the whole grid in C
    order, so that a grid point's row in ``imgs`` is its raveled index."""
    try:
        with np.load(path, allow_pickle=False) as content:  # never the pickled metadata
            if "latents_classes" not in content.files:
                raise DataError(f"{path}: holds no latents_classes array: this is not DeepMind's dSprites file "
                                f"(it holds {', '.join(content.files) or 'nothing'})")
            classes = np.asarray(content["latents_classes"])
    except DAMAGED as error:
        raise DataError(f"{path}: not a readable dSprites .npz ({_reason(error)}): delete it and download it "
                        "again") from None
    if classes.ndim != 2 or classes.shape[1] != 1 + len(FACTOR_SIZES) or (len(classes) and classes[:, 0].any()):
        raise DataError(f"{path}: latents_classes is {classes.shape}, expected (N, 6) with one colour: this is not "
                        "DeepMind's dSprites file")
    check_grid_order(classes[:, 1:].astype(np.int64), FACTOR_SIZES, str(path))


def _reason(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text.strip("'\"")


def where(data_dir: str | None = None) -> str:
    """Where ``dsprites-real`` would be read from (for ``vaelab datasets``)."""
    return sources.availability(NAME, sources.find_file(NAME, FILE.name, data_dir))


class PackedGrid:
    """The grid's images, bit-packed in memory: renders any points of it as the data set's uint8 images."""

    def __init__(self, packed: np.ndarray) -> None:
        self.packed = packed

    def __call__(self, factors: np.ndarray) -> np.ndarray:
        index = np.asarray(np.ravel_multi_index(np.asarray(factors, dtype=np.int64).T, FACTOR_SIZES))
        return np.unpackbits(self.packed[index], axis=-1) * np.uint8(255)


def load(seed: int, holdout: float = 0.2, *, size: int = SUBSET, data_dir: str | None = None,
         download: bool = True) -> Dataset:
    """The fixed subset of ``size`` grid points (the points ``dsprites`` takes), split train/test (stratified by
    shape, the label) by ``seed``, factors kept; the whole grid stays drawable for the disentanglement metrics."""
    path = sources.obtain_file(NAME, FILE, MIRRORS, data_dir, download)
    check_factors(path)
    grid = PackedGrid(read_packed(path))
    factors = grid_subset(FACTOR_SIZES, size)
    train_i, test_i, _, _ = stratified_split(np.arange(len(factors)), factors[:, 0], holdout, seed, NAME)
    factors = np.concatenate([factors[train_i], factors[test_i]])  # rendered in split order: the splits are views
    images, n_train = grid(factors), len(train_i)
    name = NAME if size == SUBSET else f"{NAME}:{size}"
    return Dataset(name, images[:n_train], factors[:n_train, 0], images[n_train:], factors[n_train:, 0],
                   source=str(path), train_factors=factors[:n_train], test_factors=factors[n_train:],
                   factor_names=list(dsprites.FACTOR_NAMES), factor_grid=FactorGrid(FACTOR_SIZES, grid),
                   names=list(dsprites.SHAPES))
