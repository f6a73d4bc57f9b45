"""``dsprites``: a dSprites-like data set, rendered here, deterministically (not the original file).

The factor grid of dSprites (Matthey et al. 2017): 3 shapes (square, ellipse, heart) x 6
scales (0.5 to 1) x 40 orientations (0 to 2 pi, both ends included, as in dSprites) x 32 x
32 positions = 737,280 binary 64x64 images, each with its factors known. A shape at one
scale and orientation is rasterised once (a *sprite*, its pixel centres tested against the
shape's implicit equation); positions are whole-pixel shifts of it (centres from pixel 16 to
47), so every image of the grid is exact and cheap. The ``dsprites`` data set is a fixed
subset of 20,000 grid points (the same for every seed; ``dsprites:N`` for N of them), split
train/test by the run's seed, labelled by shape; :func:`Renderer.render` draws any factors.
"""

from __future__ import annotations

import numpy as np

from vaelab.data.dataset import Dataset, FactorGrid, grid_subset, made_here, stratified_split

NAME = "dsprites"
FACTOR_NAMES = ("shape", "scale", "orientation", "x", "y")
FACTOR_SIZES = (3, 6, 40, 32, 32)
SHAPES = ("square", "ellipse", "heart")
SCALES = np.linspace(0.5, 1.0, 6)
ORIENTATIONS = np.linspace(0.0, 2 * np.pi, 40)
SIZE = 64
HALF = 16  # a sprite's window reaches 16 pixels either side of its centre pixel
RADIUS = 10.0  # pixels from the centre to a unit shape's edge at scale 1
SUBSET = 20_000
SIZES = (100, 737_280)  # ``dsprites:N``: a subset of N images (the whole grid at most)
DESCRIPTION = f"{SUBSET:,} dSprites-like images, 64x64, factors known"
READS_FILES = False  # rendered here
where = made_here


def _inside(shape: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether the points (u, v) of the unit frame (y up) lie inside ``shape``."""
    if shape == 0:  # a square of side 2 / sqrt(2): its corners stay inside the unit disc when rotated
        return np.maximum(np.abs(u), np.abs(v)) <= 1 / np.sqrt(2)
    if shape == 1:  # an ellipse twice as long as it is wide
        return u ** 2 + (v / 0.5) ** 2 <= 1.0
    x, y = 1.25 * u, 1.25 * v + 0.15  # the heart curve (x^2 + y^2 - 1)^3 = x^2 y^3, centred on its bulk
    return (x ** 2 + y ** 2 - 1) ** 3 - x ** 2 * y ** 3 <= 0.0


def sprite(shape: int, scale: int, orientation: int) -> np.ndarray:
    """The (33, 33) binary window of one shape at one scale and orientation (indices into the grid)."""
    offsets = np.arange(-HALF, HALF + 1, dtype=np.float64)
    dx, dy = np.meshgrid(offsets, -offsets)  # columns right, rows down; y points up
    angle = ORIENTATIONS[orientation]
    cos, sin = np.cos(angle), np.sin(angle)
    size = RADIUS * SCALES[scale]
    # rotate the pixel back by the sprite's angle; rounded so that pixels exactly on an edge stay put when the
    # angle's sine is 1e-16 instead of 0 (2 pi draws what 0 draws, as in dSprites)
    u = np.round((cos * dx + sin * dy) / size, 9)
    v = np.round((-sin * dx + cos * dy) / size, 9)
    return _inside(shape, u, v).astype(np.uint8)


class Renderer:
    """Images of the factor grid; sprites are rasterised once and kept (720 of them, 0.8 MB)."""

    def __init__(self) -> None:
        self._sprites: dict[tuple[int, int, int], np.ndarray] = {}

    def canvas(self, shape: int, scale: int, orientation: int) -> np.ndarray:
        """The sprite in a (95, 95) zero frame: image (x, y) is the window ``[31 - y:95 - y, 31 - x:95 - x]``."""
        key = (shape, scale, orientation)
        if key not in self._sprites:
            frame = np.zeros((SIZE + 31, SIZE + 31), np.uint8)
            frame[31:31 + 2 * HALF + 1, 31:31 + 2 * HALF + 1] = sprite(*key)
            self._sprites[key] = frame
        return self._sprites[key]

    def render(self, factors: np.ndarray) -> np.ndarray:
        """uint8 images (N, 64, 64), 0 or 255, of factor indices (N, 5) (shape, scale, orientation, x, y)."""
        factors = np.asarray(factors, dtype=np.int64).reshape(-1, 5)
        if len(factors) and ((factors < 0).any() or (factors >= np.array(FACTOR_SIZES)).any()):
            raise ValueError(f"factor indices must lie within {FACTOR_SIZES}")
        images = np.empty((len(factors), SIZE, SIZE), np.uint8)
        for i, (shape, scale, orientation, x, y) in enumerate(factors):
            frame = self.canvas(int(shape), int(scale), int(orientation))
            images[i] = frame[31 - y:31 - y + SIZE, 31 - x:31 - x + SIZE]
        return images * np.uint8(255)

    def all_positions(self, shape: int, scale: int, orientation: int) -> np.ndarray:
        """The 1,024 images of one sprite at every position, (32, 32, 64, 64) indexed [y, x]: a strided view of
        one frame, copied once."""
        windows = np.lib.stride_tricks.sliding_window_view(self.canvas(shape, scale, orientation), (SIZE, SIZE))
        return np.ascontiguousarray(windows[::-1, ::-1]) * np.uint8(255)


def grid_factors() -> np.ndarray:
    """Every point of the factor grid, (737280, 5), in C order (shape slowest, y fastest)."""
    return np.stack(np.unravel_index(np.arange(int(np.prod(FACTOR_SIZES))), FACTOR_SIZES), axis=1)


def subset_factors(n: int = SUBSET, seed: int = 0) -> np.ndarray:
    """``n`` distinct grid points drawn with ``seed`` (sorted): the factors of a subset."""
    return grid_subset(FACTOR_SIZES, n, seed)


def load(seed: int, holdout: float = 0.2, size: int = SUBSET):
    """The ``dsprites`` data set: the fixed 20,000-image subset (``size`` images for ``dsprites:N``), split
    train/test (stratified by shape, the label) by ``seed``; factors are kept beside the images."""
    factors = subset_factors(size)
    images = Renderer().render(factors)
    index = np.arange(len(factors))
    train_i, test_i, _, _ = stratified_split(index, factors[:, 0], holdout, seed, NAME)
    name = NAME if size == SUBSET else f"{NAME}:{size}"
    return Dataset(name, images[train_i], factors[train_i, 0], images[test_i], factors[test_i, 0],
                   source="rendered by vaelab.data.dsprites (dSprites-like, not the original file)",
                   train_factors=factors[train_i], test_factors=factors[test_i], factor_names=list(FACTOR_NAMES),
                   factor_grid=FactorGrid(FACTOR_SIZES, Renderer().render), names=list(SHAPES))
