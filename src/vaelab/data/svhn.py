"""``svhn``: the Street View House Numbers' cropped digits (Netzer et al. 2011), 73,257 train / 26,032 test
colour images, 3x32x32.

Read from ``train_32x32.mat`` and ``test_32x32.mat`` (MATLAB files, read with ``scipy.io``;
the digit 0 is stored as label 10 and read as 0). Looked for in ``--data-dir`` (or
``$VAELAB_DATA_DIR``) and the cache; otherwise downloaded once, checked against SHA-256, into
the cache atomically.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vaelab.data import sources
from vaelab.data.dataset import Dataset
from vaelab.data.sources import candidate_folders
from vaelab.errors import DataError

NAME = "svhn"
DESCRIPTION = "73,257 train / 26,032 test colour digits, 3x32x32"
SIZES = None  # one size
READS_FILES = True  # the official .mat files, found or downloaded
MIRRORS = ("http://ufldl.stanford.edu/housenumbers/",)
# SHA-256 of the files served there (their MD5s are the ones torchvision checks: e26dedcc…, eb5a983b…)
FILES = {
    "train": sources.RemoteFile("train_32x32.mat", "435e94d69a87fde4fd4d7f3dd208dfc32cb6ae8af2240d066de1df7508d083b8"),
    "test": sources.RemoteFile("test_32x32.mat", "cdce80dfb2a2c4c6160906d0bd7c68ec5a99d7ca4831afa54f09182025b6a75b"),
}


def read_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) 0-9 of one SVHN ``.mat`` file."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        content = loadmat(path)
    except (MatReadError, ValueError, TypeError, OSError, KeyError, NotImplementedError) as error:
        raise DataError(f"{path}: not a readable MATLAB file ({str(error).splitlines()[0] if str(error) else 'damaged'}"
                        "): delete it and download it again") from None
    images, labels = content.get("X"), content.get("y")
    if images is None or labels is None:
        raise DataError(f"{path}: holds no X and y arrays: it is not an SVHN cropped-digits file")
    if images.ndim != 4 or images.shape[:3] != (32, 32, 3) or images.dtype != np.uint8:
        raise DataError(f"{path}: X is {images.dtype} {images.shape}, expected uint8 (32, 32, 3, N): not an SVHN "
                        "cropped-digits file")
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    if images.shape[3] == 0:
        raise DataError(f"{path}: holds 0 images: it is not a complete SVHN file; delete it and download it again")
    if len(labels) != images.shape[3] or labels.min() < 1 or labels.max() > 10:
        raise DataError(f"{path}: {len(labels)} labels in {labels.min()}-{labels.max()} for {images.shape[3]} "
                        "images, expected one label 1-10 per image: the file is damaged")
    return np.ascontiguousarray(images.transpose(3, 2, 0, 1)), labels % 10


def locate(data_dir: str | None) -> Path | None:
    """The first folder (``--data-dir``/``$VAELAB_DATA_DIR``, the cache) holding both files, if any."""
    for folder in candidate_folders(NAME, data_dir):
        if all((folder / remote.name).is_file() for remote in FILES.values()):
            return folder
    return None


def where(data_dir: str | None = None) -> str:
    """Where ``svhn`` would be read from (for ``vaelab datasets``)."""
    return sources.availability(NAME, locate(data_dir))


def load(seed: int, holdout: float = 0.2, *, data_dir: str | None = None, download: bool = True):
    """SVHN's own train and test splits (``seed`` and ``holdout`` are not needed: the split is given)."""
    sources.refuse_a_partial_folder(NAME, data_dir, tuple(remote.name for remote in FILES.values()))
    folder = locate(data_dir)
    if folder is None:
        folder = sources.cache_root() / NAME
        if not download:
            raise DataError(f"svhn is not available locally: put train_32x32.mat and test_32x32.mat in {folder}")
        sources.fetch_remote(sources.RemoteDataset(NAME, MIRRORS, tuple(FILES.values())), folder)
    train_x, train_y = read_mat(folder / FILES["train"].name)
    test_x, test_y = read_mat(folder / FILES["test"].name)
    return Dataset(NAME, train_x, train_y, test_x, test_y, source=str(folder))
