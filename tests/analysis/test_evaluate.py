"""What the disentanglement metrics draw from: the whole factor grid, rendered and encoded."""

from __future__ import annotations

import numpy as np
import pytest

from vaelab.analysis import evaluate as ev
from vaelab.analysis.encode import encode_split
from vaelab.config import EvalSettings, ModelConfig
from vaelab.data import dsprites
from vaelab.data.registry import Dataset, FactorGrid, load_dataset
from vaelab.models import build_model

SIZES = (2, 3, 4)


def render(factors: np.ndarray) -> np.ndarray:
    """8x8 images that depend on every factor: a bar of length f0 + 1 in row f1, brightness by f2."""
    images = np.zeros((len(factors), 8, 8), np.uint8)
    for i, (a, b, c) in enumerate(factors):
        images[i, 2 * b, :a + 2] = 60 * (c + 1)
    return images


def tiny_grid_data(grid: FactorGrid | None) -> Dataset:
    factors = grid.points() if grid is not None else FactorGrid(SIZES, render).points()
    images = render(factors)
    return Dataset("tiny-grid", images[:16], factors[:16, 0], images[16:], factors[16:, 0], "test",
                   train_factors=factors[:16], test_factors=factors[16:], factor_names=["a", "b", "c"],
                   factor_grid=grid)


@pytest.fixture(scope="module")
def model():
    return build_model(ModelConfig(hidden=16, latent=3), seed=0, image_shape=(1, 8, 8))


def test_grid_points_are_the_grid_in_c_order():
    grid = FactorGrid(dsprites.FACTOR_SIZES, dsprites.Renderer().render)
    assert len(grid) == 737_280
    assert np.array_equal(grid.points(), dsprites.grid_factors())
    assert grid.points(np.array([0, 1, 1024])).tolist() == [[0, 0, 0, 0, 0], [0, 0, 0, 0, 1], [0, 0, 1, 0, 0]]


def test_the_metrics_draw_from_every_grid_point_encoded(model, monkeypatch):
    grid = FactorGrid(SIZES, render)
    data = tiny_grid_data(grid)
    test = encode_split(model, data.test_images, data.test_labels, data.test_factors)
    monkeypatch.setattr(ev, "GRID_CHUNK", 5)  # several chunks: the same codes as one pass
    codes, factors = ev.factor_codes(model, data, test, EvalSettings(), seed=0)
    assert np.array_equal(factors, grid.points()) and len(factors) == 24
    expected = encode_split(model, render(grid.points()), grid.points()[:, 0]).mean
    assert np.allclose(codes, expected, atol=1e-6)


def test_a_subset_of_the_grid_is_seeded_and_distinct(model):
    data = tiny_grid_data(FactorGrid(SIZES, render))
    test = encode_split(model, data.test_images, data.test_labels, data.test_factors)
    settings = EvalSettings(factor_points=10)
    _, first = ev.factor_codes(model, data, test, settings, seed=3)
    _, again = ev.factor_codes(model, data, test, settings, seed=3)
    _, other = ev.factor_codes(model, data, test, settings, seed=4)
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert len(np.unique(np.ravel_multi_index(first.T, SIZES))) == 10


def test_without_a_grid_the_metrics_use_the_test_codes(model):
    data = tiny_grid_data(None)
    test = encode_split(model, data.test_images, data.test_labels, data.test_factors)
    codes, factors = ev.factor_codes(model, data, test, EvalSettings(), seed=0)
    assert np.array_equal(factors, data.test_factors) and np.array_equal(codes, test.mean.astype(np.float64))


def test_evaluate_on_dsprites_measures_every_metric_from_the_grid():
    data = load_dataset("dsprites:200", seed=0)
    assert data.factor_grid is not None and len(data.factor_grid) == 737_280
    model = build_model(ModelConfig(hidden=16, latent=4), seed=0, image_shape=data.image_shape)
    settings = EvalSettings(factor_points=2000, dci_estimator="forest")
    measures = ev.evaluate(model, data, 0, ("disentanglement",), settings).measures
    assert measures["disentanglement_points"] == 2000
    for name in ("beta_vae_score", "factor_vae_score", "mig", "dci_disentanglement", "dci_informativeness", "sap"):
        assert 0.0 <= measures[name] <= 1.0, name
