"""``digits``: scikit-learn's 1,797 handwritten digits, 8x8, embedded (no download).

The UCI optical-recognition digits (Alpaydin & Kaynak 1998) as scikit-learn ships them:
grey levels 0-16, scaled here to 0-255; split train/test 80/20 by a seeded stratified split.
"""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits

from vaelab.data.dataset import Dataset, made_here, stratified_split

NAME = "digits"
DESCRIPTION = "1,797 digits, 8x8 (scikit-learn's)"
SIZES = None  # one size
READS_FILES = False  # embedded in scikit-learn
where = made_here


def load(seed: int, holdout: float = 0.2):
    """The digits, split by ``seed`` (stratified), as uint8 (N, 8, 8)."""
    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    labels = bunch.target.astype(np.int64)
    train_x, test_x, train_y, test_y = stratified_split(images, labels, holdout, seed, NAME)
    return Dataset(NAME, train_x, train_y, test_x, test_y, source="sklearn.datasets.load_digits (embedded)")
