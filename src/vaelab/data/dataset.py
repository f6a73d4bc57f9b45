"""What a data set is: :class:`Dataset` (the arrays of its splits), :class:`FactorGrid` (the generative
process of a factor grid), the contract of a data-set module (:class:`DatasetModule`), and the helpers
those modules share. A leaf: it imports no other part of vaelab.data, so every data-set module can
import it at the top."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import Callable, Protocol, runtime_checkable

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from vaelab.errors import DataError
from vaelab.seeding import derive_seed


@runtime_checkable
class DatasetModule(Protocol):
    """The contract of a data-set module (``vaelab.data.digits``, ``dsprites``, ``cifar10``, ``svhn``):
    what :mod:`vaelab.data.registry` reads of it. Adding a data set is a module and a line in the registry."""

    NAME: str  # the data set's name, as ``--dataset`` spells it
    DESCRIPTION: str  # one line for ``vaelab datasets``
    SIZES: tuple[int, int] | None  # ``name:N`` takes N images, N between the two; None: one size only
    READS_FILES: bool  # whether it reads files (found in --data-dir or the cache, or downloaded)
    # Optional: LABELS, a tuple of the names a data set with several labelings accepts as ``name:LABEL`` (CelebA's
    # attributes); the registry passes the one named as ``label=``.

    def load(self, seed: int, holdout: float = 0.2, **options) -> "Dataset":
        """The data set; ``size=N`` where SIZES allows it, ``label=`` where LABELS does, ``data_dir`` and
        ``download`` where it reads files."""

    def where(self, data_dir: str | None = None) -> str:
        """Where it would be loaded from (``vaelab datasets``' last column)."""


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


def grid_subset(sizes: tuple[int, ...], n: int, seed: int = 0) -> np.ndarray:
    """Factor indices (n, K) of ``n`` distinct points of the grid ``sizes``, drawn with ``seed``, in C order: the
    fixed subset of a factor-grid data set (``dsprites:N``, ``dsprites-real:N``, ``3dshapes:N``)."""
    total = int(np.prod(sizes))
    chosen = np.sort(np.random.default_rng(seed).choice(total, size=n, replace=False))
    return np.stack(np.unravel_index(chosen, sizes), axis=1).astype(np.int64)


def check_grid_order(classes: np.ndarray, sizes: tuple[int, ...], where: str) -> None:
    """Refuse factor indices (one row an image) that are not every point of the grid ``sizes`` in C order, the
    order dSprites and 3dshapes store their images in (what lets an image be found from its factors)."""
    expected = FactorGrid(sizes, lambda f: f).points()
    if classes.shape != expected.shape or not np.array_equal(classes, expected):
        raise DataError(f"{where}: the factors are not the full {'x'.join(map(str, sizes))} grid in its stored order "
                        "(the last factor fastest): the file is damaged or another data set; delete it and download "
                        "it again")


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
    names: list[str] | None = None  # the classes' names, where the data set's own module gives them
    # binary attributes of each image (0/1 uint8, (N, A)), where the data set has several (CelebA's 40)
    train_attributes: np.ndarray | None = None
    test_attributes: np.ndarray | None = None
    attribute_names: list[str] | None = None

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
        if self.names is not None:
            return list(self.names)
        return [str(k) for k in range(int(max(self.train_labels.max(), self.test_labels.max())) + 1)]

    @functools.cached_property
    def fingerprint(self) -> str:
        """SHA-256 of the split's arrays (shapes, dtypes and bytes): what a run was trained on, exactly."""
        digest = hashlib.sha256()
        arrays = [self.train_images, self.train_labels, self.test_images, self.test_labels]
        arrays += [a for a in (self.train_factors, self.test_factors, self.train_attributes, self.test_attributes)
                   if a is not None]
        for array in arrays:
            array = np.ascontiguousarray(array)
            digest.update(f"{array.shape}{array.dtype.str}".encode())
            digest.update(array.tobytes())
        return digest.hexdigest()

    @property
    def splits_are_one(self) -> bool:
        """Whether the train and test splits are the same images (the transductive protocol: one array)."""
        return self.test_images is self.train_images

    @functools.cached_property
    def content_fingerprint(self) -> str:
        """SHA-256 of the set of (image, label) examples, whatever their split and order: the same for every seed
        and protocol of one data set, so that published numbers can name the data they are about (an ``idx:``
        folder holding MNIST's test split is MNIST-test, wherever it lies)."""
        examples: set[bytes] = set()
        splits = [(self.train_images, self.train_labels)]
        if not self.splits_are_one:
            splits.append((self.test_images, self.test_labels))
        for images, labels in splits:
            images = np.ascontiguousarray(images)
            labels = np.ascontiguousarray(labels, dtype=np.int64)
            examples.update(hashlib.sha256(image.tobytes() + label.tobytes()).digest()
                            for image, label in zip(images, labels))
        digest = hashlib.sha256(f"{self.image_shape}{self.train_images.dtype.str}".encode())
        for example in sorted(examples):
            digest.update(example)
        return digest.hexdigest()

    def summary(self) -> dict:
        """A JSON-able description, stored in every run directory."""
        return {
            "name": self.name,
            "fingerprint": self.fingerprint,
            "content": self.content_fingerprint,
            "source": self.source,
            "n_train": int(len(self.train_labels)),
            "n_test": int(len(self.test_labels)),
            "image_shape": list(self.image_shape),
            "n_classes": len(self.class_names),
            "protocol": self.protocol,
        }


def made_here(data_dir: str | None = None) -> str:
    """``where`` of a data set that reads no files (embedded or rendered): always here."""
    return "yes (made here)"


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W) or (N, C, H, W) -> float32 (N, C, H, W) in [0, 1] (C = 1 for grey images)."""
    tensor = torch.from_numpy(np.ascontiguousarray(images))
    return (tensor.unsqueeze(1) if tensor.ndim == 3 else tensor).to(torch.float32).div_(255.0)


def stratified_split(images: np.ndarray, labels: np.ndarray, test_fraction: float, seed: int, what: str):
    """A seeded split that keeps the class proportions in both parts."""
    if len(labels) == 0:
        raise DataError(f"{what}: holds 0 images, so there is nothing to split: give files that hold images")
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
