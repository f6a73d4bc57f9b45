"""``3dshapes``: DeepMind's 3D Shapes (Burgess and Kim 2018), 480,000 colour 64x64 images of every point of a
grid of six factors: floor hue (10), wall hue (10), object hue (10), scale (8), shape (4), orientation (15).

Read from ``3dshapes.h5`` (HDF5: ``images`` uint8 (480000, 64, 64, 3), ``labels`` float64 (480000, 6), the
factors' values) with h5py, the optional extra ``vaelab[h5]``. The values are turned into indices per
factor (their rank among the factor's values, as TensorFlow Datasets does), and checked to be the whole
grid in C order, so that an image is found from its factors. All of it is 5.9 GB as uint8, so images are
read in chunks and only those asked for are kept: the data set is a fixed subset of 20,000 grid points
(the same for every seed; ``3dshapes:N`` for N of them, all 480,000 at most), split train/test by the
run's seed and labelled by shape; the disentanglement metrics read any other point of the grid from
the file as they need it.

Looked for in ``--data-dir`` (or ``$VAELAB_DATA_DIR``) and the cache; otherwise downloaded once from
DeepMind's bucket, checked against its SHA-256 (the one TensorFlow Datasets records), into the cache
atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vaelab.data import sources
from vaelab.data.dataset import Dataset, FactorGrid, check_grid_order, grid_subset, stratified_split
from vaelab.errors import DataError

NAME = "3dshapes"
FACTOR_NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
FACTOR_SIZES = (10, 10, 10, 8, 4, 15)
LABEL_FACTOR = 4  # shape: the class of the class-based measures
SIZE = 64
SUBSET = 20_000
SIZES = (100, 480_000)  # ``3dshapes:N``
DESCRIPTION = f"{SUBSET:,} images of DeepMind's 3D Shapes, colour 64x64, factors known; needs h5py"
READS_FILES = True
FILE = sources.RemoteFile("3dshapes.h5", "0a0f6ed98baff276a50f3a081a7434d788da63cb135a98189b2a5b5769be1785")
MIRRORS = ("https://storage.googleapis.com/3d-shapes/",)
CHUNK = 8_192  # images read at a time (96 MB)


def _h5py() -> Any:
    try:
        import h5py
    except ImportError:
        raise DataError("3dshapes is an HDF5 file and needs h5py: pip install 'vaelab[h5]'") from None
    return h5py


def _reason(error: BaseException) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


class ShapesFile:
    """The open file's two data sets, checked: ``images`` and the factor indices of every image."""

    def __init__(self, path: Path) -> None:
        h5py = _h5py()
        self.path = path
        try:
            self.handle = h5py.File(path, "r")
        except (OSError, ValueError) as error:
            raise DataError(f"{path}: not a readable HDF5 file ({_reason(error)}): delete it and download it "
                            "again") from None
        try:
            self.images, self.factors = self._checked()
        except BaseException:
            self.handle.close()
            raise

    def _checked(self) -> tuple[Any, np.ndarray]:
        total = int(np.prod(FACTOR_SIZES))
        missing = [name for name in ("images", "labels") if not isinstance(self.handle.get(name), _h5py().Dataset)]
        if missing:
            raise DataError(f"{self.path}: holds no {' or '.join(missing)} data set: this is not DeepMind's "
                            "3dshapes.h5")
        images, labels = self.handle["images"], self.handle["labels"]
        if images.shape != (total, SIZE, SIZE, 3) or images.dtype != np.uint8:
            raise DataError(f"{self.path}: images is {images.dtype} {images.shape}, expected uint8 "
                            f"{(total, SIZE, SIZE, 3)}: this is not DeepMind's 3dshapes.h5")
        if labels.shape != (total, len(FACTOR_SIZES)) or labels.dtype.kind != "f":
            raise DataError(f"{self.path}: labels is {labels.dtype} {labels.shape}, expected floats "
                            f"{(total, len(FACTOR_SIZES))}: this is not DeepMind's 3dshapes.h5")
        try:
            values = np.asarray(labels[()])
        except (OSError, ValueError) as error:
            raise DataError(f"{self.path}: labels cannot be read ({_reason(error)}): the file is damaged; delete it "
                            "and download it again") from None
        factors = np.empty(values.shape, np.int64)
        for k, (name, size) in enumerate(zip(FACTOR_NAMES, FACTOR_SIZES)):
            levels, factors[:, k] = np.unique(values[:, k], return_inverse=True)
            if len(levels) != size:
                raise DataError(f"{self.path}: {name} takes {len(levels)} values, 3D Shapes' takes {size}: the file "
                                "is damaged or another data set")
        check_grid_order(factors, FACTOR_SIZES, str(self.path))
        return images, factors

    def rows(self, index: np.ndarray) -> np.ndarray:
        """The images of rows ``index`` (any order, repeats allowed) as uint8 (N, 3, 64, 64), read in chunks of
        ascending rows and written straight to their places (one array in memory, however many are asked for)."""
        index = np.asarray(index, dtype=np.int64)
        wanted, first, inverse = np.unique(index, return_index=True, return_inverse=True)
        if len(wanted) < len(index):  # repeats: read each row once
            return self.rows(wanted)[inverse]
        out = np.empty((len(index), 3, SIZE, SIZE), np.uint8)
        try:
            for start in range(0, len(wanted), CHUNK):
                part = wanted[start:start + CHUNK]
                low, high = int(part[0]), int(part[-1]) + 1
                # a dense run is one slice (HDF5 decompresses each chunk once); a sparse one is a point selection
                block = self.images[low:high][part - low] if high - low <= 4 * len(part) else self.images[part]
                out[first[start:start + len(part)]] = block.transpose(0, 3, 1, 2)
        except (OSError, ValueError) as error:
            raise DataError(f"{self.path}: images cannot be read ({_reason(error)}): the file is damaged; delete it "
                            "and download it again") from None
        return out

    def close(self) -> None:
        self.handle.close()


class FileGrid:
    """Renders points of the grid by reading their images from the file (opened for each call)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, factors: np.ndarray) -> np.ndarray:
        index = np.asarray(np.ravel_multi_index(np.asarray(factors, dtype=np.int64).T, FACTOR_SIZES))
        shapes = ShapesFile(self.path)
        try:
            return shapes.rows(index)
        finally:
            shapes.close()


def where(data_dir: str | None = None) -> str:
    """Where ``3dshapes`` would be read from (for ``vaelab datasets``)."""
    return sources.availability(NAME, sources.find_file(NAME, FILE.name, data_dir))


def load(seed: int, holdout: float = 0.2, *, size: int = SUBSET, data_dir: str | None = None,
         download: bool = True) -> Dataset:
    """The fixed subset of ``size`` grid points, split train/test (stratified by shape, the label) by ``seed``,
    factors kept; the whole grid stays drawable (from the file) for the disentanglement metrics."""
    _h5py()  # say what is missing before reading, or a 268 MB download
    path = sources.obtain_file(NAME, FILE, MIRRORS, data_dir, download)
    factors = grid_subset(FACTOR_SIZES, size)
    train_i, test_i, _, _ = stratified_split(np.arange(len(factors)), factors[:, LABEL_FACTOR], holdout, seed, NAME)
    factors = np.concatenate([factors[train_i], factors[test_i]])  # read in split order: the splits are views
    shapes = ShapesFile(path)
    try:
        images = shapes.rows(np.asarray(np.ravel_multi_index(factors.T, FACTOR_SIZES)))
    finally:
        shapes.close()
    labels, n_train = factors[:, LABEL_FACTOR], len(train_i)
    name = NAME if size == SUBSET else f"{NAME}:{size}"
    return Dataset(name, images[:n_train], labels[:n_train], images[n_train:], labels[n_train:], source=str(path),
                   train_factors=factors[:n_train], test_factors=factors[n_train:], factor_names=list(FACTOR_NAMES),
                   factor_grid=FactorGrid(FACTOR_SIZES, FileGrid(path), label_factor=LABEL_FACTOR),
                   names=[f"shape {k}" for k in range(FACTOR_SIZES[LABEL_FACTOR])])
