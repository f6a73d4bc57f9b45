"""DeepMind's dSprites (.npz) and 3D Shapes (.h5) readers, on small files written here in the real formats: the
real keys, dtypes and layouts, over a shrunk factor grid (the modules' FACTOR_SIZES, patched); good files,
damaged ones (one line each, exit 2 from the CLI), the pickle that must never be loaded, the download path
(a local file:// mirror, checksums, atomic cache writes) and the disentanglement metrics drawing from the file."""

from __future__ import annotations

import hashlib
import io
import zipfile

import numpy as np
import pytest

from tests.conftest import run_cli
from vaelab.analysis import evaluate as ev
from vaelab.config import EvalSettings, ModelConfig
from vaelab.data import dsprites_real, shapes3d
from vaelab.data.dataset import grid_subset
from vaelab.data.registry import load_dataset
from vaelab.errors import DataError
from vaelab.models import build_model

SPRITE_GRID = (3, 2, 2, 4, 4)  # shape, scale, orientation, x, y: 192 images
SHAPES_GRID = (2, 2, 2, 2, 4, 3)  # floor, wall, object hue, scale, shape, orientation: 192 images


def _explode():
    raise AssertionError("the pickled metadata was loaded")


class Trap:
    """Pickled into the metadata entry: unpickling it fails the test, as loading a hostile pickle would run it."""

    def __reduce__(self):
        return _explode, ()


def sprite_arrays(sizes=SPRITE_GRID) -> dict[str, np.ndarray]:
    total = int(np.prod(sizes))
    classes = np.stack(np.unravel_index(np.arange(total), sizes), axis=1)
    rng = np.random.default_rng(0)
    return {
        "imgs": rng.integers(0, 2, size=(total, 64, 64), dtype=np.uint8),  # dSprites' pixels are 0 or 1
        "latents_classes": np.concatenate([np.zeros((total, 1), np.int64), classes], axis=1),
        "latents_values": rng.random((total, 6)),
        "metadata": np.array([Trap()], dtype=object),  # the file's pickled dictionary
    }


def write_npz(folder, arrays: dict[str, np.ndarray]):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / dsprites_real.FILE.name
    with open(path, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    return path


@pytest.fixture
def small_sprites(monkeypatch):
    monkeypatch.setattr(dsprites_real, "FACTOR_SIZES", SPRITE_GRID)
    monkeypatch.setattr(dsprites_real, "CHUNK", 50)  # several chunks
    return SPRITE_GRID


def test_dsprites_file_is_read_without_its_pickle(tmp_path, small_sprites):
    arrays = sprite_arrays()
    write_npz(tmp_path, arrays)
    data = load_dataset("dsprites-real:100", data_dir=str(tmp_path), seed=1)
    factors = grid_subset(SPRITE_GRID, 100)
    rows = np.ravel_multi_index(factors.T, SPRITE_GRID)
    assert len(data.train_images) + len(data.test_images) == 100 and data.image_shape == (1, 64, 64)
    both = np.concatenate([data.train_factors, data.test_factors])
    images = np.concatenate([data.train_images, data.test_images])
    order = np.argsort(np.ravel_multi_index(both.T, SPRITE_GRID))
    assert np.array_equal(both[order], factors)
    assert np.array_equal(images[order], arrays["imgs"][rows] * 255)  # 0/1 pixels read as 0/255
    assert np.array_equal(data.train_labels, data.train_factors[:, 0]) and data.class_names == ["square", "ellipse",
                                                                                                "heart"]
    points = np.array([[2, 1, 0, 3, 1], [0, 0, 1, 0, 0]])  # any point of the grid, as the metrics draw them
    drawn = data.factor_grid.render(points)
    assert np.array_equal(drawn, arrays["imgs"][np.ravel_multi_index(points.T, SPRITE_GRID)] * 255)


@pytest.mark.parametrize("damage, words", [
    (lambda a: {**a, "imgs": np.array([Trap()] * 3, dtype=object)}, "imgs holds pickled Python objects"),
    (lambda a: {k: v for k, v in a.items() if k != "latents_classes"}, "holds no latents_classes array"),
    (lambda a: {**a, "latents_classes": np.array([Trap()], dtype=object)}, "not a readable dSprites .npz"),
    (lambda a: {**a, "imgs": a["imgs"][:, :32]}, "expected uint8 (192, 64, 64)"),
    (lambda a: {**a, "latents_classes": a["latents_classes"][::-1]}, "are not the full 3x2x2x4x4 grid"),
    (lambda a: {k: v for k, v in a.items() if k != "imgs"}, "not a readable dSprites .npz"),
])
def test_damaged_dsprites_files_are_named_in_one_line(tmp_path, small_sprites, damage, words):
    path = write_npz(tmp_path, damage(sprite_arrays()))
    with pytest.raises(DataError, match=words.replace("(", r"\(").replace(")", r"\)")) as error:
        load_dataset("dsprites-real:100", data_dir=str(tmp_path))
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_a_truncated_dsprites_file_is_refused_from_the_cli(tmp_path):
    path = write_npz(tmp_path / "data", sprite_arrays())
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    result = run_cli("train", "--dataset", "dsprites-real:100", "--data-dir", str(tmp_path / "data"), "--epochs", "1",
                     "--quiet", "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "not a readable dSprites .npz" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()


def test_dsprites_downloads_into_the_cache_checked_by_md5(tmp_path, monkeypatch, isolated_cache, small_sprites):
    served = write_npz(tmp_path / "mirror", sprite_arrays()).read_bytes()
    monkeypatch.setattr(dsprites_real, "MIRRORS", ((tmp_path / "mirror").as_uri() + "/",))
    cached = isolated_cache / "vaelab" / "dsprites-real" / dsprites_real.FILE.name
    with pytest.raises(DataError, match="checksum mismatch \\(md5"):  # the real MD5 is not these bytes'
        load_dataset("dsprites-real:100")
    assert not cached.exists() and not list(cached.parent.glob(".*.tmp"))
    monkeypatch.setattr(dsprites_real, "FILE", dsprites_real.FILE.__class__(dsprites_real.FILE.name, "",
                                                                            hashlib.md5(served).hexdigest()))
    data = load_dataset("dsprites-real:100")
    assert cached.read_bytes() == served and len(data.train_images) == 80


def test_dsprites_offline_names_the_file_and_the_folder(tmp_path, monkeypatch, isolated_cache):
    monkeypatch.setattr(dsprites_real, "MIRRORS", ((tmp_path / "nowhere").as_uri() + "/",))
    with pytest.raises(DataError, match=r"could not download dsprites-real .*dsprites_ndarray_co1sh3sc6or40x32y32_64x64"
                                        r"\.npz\) in .*dsprites-real"):
        load_dataset("dsprites-real")


def shape_arrays(sizes=SHAPES_GRID) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 64, 64, 3) and the factors' float values (N, 6), in 3D Shapes' order and value ranges."""
    total = int(np.prod(sizes))
    classes = np.stack(np.unravel_index(np.arange(total), sizes), axis=1)
    scales = [np.linspace(0, 0.9, sizes[0]), np.linspace(0, 0.9, sizes[1]), np.linspace(0, 0.9, sizes[2]),
              np.linspace(0.75, 1.25, sizes[3]), np.arange(sizes[4], dtype=float), np.linspace(-30, 30, sizes[5])]
    values = np.stack([scales[k][classes[:, k]] for k in range(6)], axis=1)
    images = np.random.default_rng(1).integers(0, 256, size=(total, 64, 64, 3), dtype=np.uint8)
    return images, values


def write_h5(folder, images, labels, **extra):
    import h5py

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / shapes3d.FILE.name
    with h5py.File(path, "w") as handle:
        handle.create_dataset("images", data=images, chunks=(10, *images.shape[1:]), compression="gzip")
        handle.create_dataset("labels", data=labels)
        for name, array in extra.items():
            handle.create_dataset(name, data=array)
    return path


@pytest.fixture
def small_shapes(monkeypatch):
    pytest.importorskip("h5py")
    monkeypatch.setattr(shapes3d, "FACTOR_SIZES", SHAPES_GRID)
    monkeypatch.setattr(shapes3d, "CHUNK", 30)
    return SHAPES_GRID


def test_3dshapes_file_is_read_in_chunks_channels_first(tmp_path, small_shapes):
    images, values = shape_arrays()
    write_h5(tmp_path, images, values)
    data = load_dataset("3dshapes:100", data_dir=str(tmp_path), seed=2)
    assert data.image_shape == (3, 64, 64) and len(data.train_images) + len(data.test_images) == 100
    rows = np.ravel_multi_index(data.test_factors.T, SHAPES_GRID)
    assert np.array_equal(data.test_images, images[rows].transpose(0, 3, 1, 2))
    assert np.array_equal(data.test_labels, data.test_factors[:, 4]) and data.class_names[0] == "shape 0"
    points = np.array([[1, 0, 1, 1, 3, 2], [0, 0, 0, 0, 0, 0], [1, 0, 1, 1, 3, 2]])  # repeats, out of order
    drawn = data.factor_grid.render(points)
    assert np.array_equal(drawn, images[np.ravel_multi_index(points.T, SHAPES_GRID)].transpose(0, 3, 1, 2))
    assert data.factor_grid.label_factor == 4
    every = data.factor_grid.render(data.factor_grid.points())  # dense: read slice by slice
    assert np.array_equal(every, images.transpose(0, 3, 1, 2))


@pytest.mark.parametrize("damage, words", [
    (lambda i, v: (i[:, :32], v), "expected uint8 (192, 64, 64, 3)"),
    (lambda i, v: (i.astype(np.float32), v), "expected uint8"),
    (lambda i, v: (i, v[:, :5]), "expected floats (192, 6)"),
    (lambda i, v: (i, np.concatenate([np.zeros((len(v), 1)), v[:, 1:]], axis=1)),
     "floor_hue takes 1 values, 3D Shapes' takes 2"),
    (lambda i, v: (i, v[::-1].copy()), "are not the full 2x2x2x2x4x3 grid"),
])
def test_damaged_3dshapes_files_are_named_in_one_line(tmp_path, small_shapes, damage, words):
    path = write_h5(tmp_path, *damage(*shape_arrays()))
    with pytest.raises(DataError, match=words.replace("(", r"\(").replace(")", r"\)")) as error:
        load_dataset("3dshapes:100", data_dir=str(tmp_path))
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_a_3dshapes_file_that_is_not_hdf5_or_lacks_a_data_set(tmp_path, small_shapes):
    import h5py

    path = write_h5(tmp_path, *shape_arrays())
    with h5py.File(path, "a") as handle:
        del handle["labels"]
    with pytest.raises(DataError, match="holds no labels data set"):
        load_dataset("3dshapes:100", data_dir=str(tmp_path))
    payload = write_h5(tmp_path, *shape_arrays()).read_bytes()
    path.write_bytes(payload[: len(payload) // 3])
    result = run_cli("train", "--dataset", "3dshapes:100", "--data-dir", str(tmp_path), "--epochs", "1", "--quiet",
                     "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "not a readable HDF5 file" in result.stderr and not (tmp_path / "run").exists()


def test_3dshapes_without_h5py_says_how_to_install_it(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_h5py(name, *args, **kwargs):
        if name == "h5py":
            raise ImportError("No module named 'h5py'")
        return real_import(name, *args, **kwargs)

    (tmp_path / shapes3d.FILE.name).write_bytes(b"\x89HDF\r\n")
    monkeypatch.setattr(builtins, "__import__", no_h5py)
    with pytest.raises(DataError, match=r"needs h5py: pip install 'vaelab\[h5\]'"):
        load_dataset("3dshapes", data_dir=str(tmp_path))


def test_3dshapes_downloads_into_the_cache_with_its_checksum(tmp_path, monkeypatch, isolated_cache, small_shapes):
    served = write_h5(tmp_path / "mirror", *shape_arrays()).read_bytes()
    monkeypatch.setattr(shapes3d, "MIRRORS", ((tmp_path / "mirror").as_uri() + "/",))
    with pytest.raises(DataError, match="checksum mismatch"):
        load_dataset("3dshapes:100")
    monkeypatch.setattr(shapes3d, "FILE", shapes3d.FILE.__class__(shapes3d.FILE.name,
                                                                  hashlib.sha256(served).hexdigest()))
    assert load_dataset("3dshapes:100").image_shape == (3, 64, 64)


@pytest.mark.parametrize("name", ["dsprites-real", "3dshapes"])
def test_the_metrics_draw_from_the_file_s_whole_grid(tmp_path, small_sprites, small_shapes, name):
    if name == "dsprites-real":
        write_npz(tmp_path, sprite_arrays())
        sizes = SPRITE_GRID
    else:
        write_h5(tmp_path, *shape_arrays())
        sizes = SHAPES_GRID
    data = load_dataset(f"{name}:120", data_dir=str(tmp_path))
    model = build_model(ModelConfig(hidden=16, latent=4), seed=0, image_shape=data.image_shape)
    evaluation = ev.evaluate(model, data, 0, ("disentanglement",), EvalSettings(dci_estimator="forest"))
    assert evaluation.measures["disentanglement_points"] == float(np.prod(sizes))  # every point, not the subset
    assert 0.0 <= evaluation.measures["mig"] <= 1.0 and "dci_disentanglement" in evaluation.measures


def test_both_are_listed_with_their_sizes():
    listed = run_cli("datasets").stdout
    assert "dsprites-real" in listed and "3dshapes" in listed
    result = run_cli("train", "--dataset", "3dshapes:5", "--quiet")
    assert result.returncode == 2 and "write 3dshapes:N with N from 100 to 480,000 images" in result.stderr


def test_npz_member_reader_needs_no_temporary_copy(tmp_path, small_sprites):
    """The images are streamed out of the archive: the member is never extracted to disk."""
    path = write_npz(tmp_path, sprite_arrays())
    before = sorted(p.name for p in tmp_path.iterdir())
    packed = dsprites_real.read_packed(path)
    assert packed.shape == (192, 64, 8) and sorted(p.name for p in tmp_path.iterdir()) == before
    with zipfile.ZipFile(path) as archive:
        raw = np.load(io.BytesIO(archive.read("imgs.npy")))
    assert np.array_equal(np.unpackbits(packed, axis=-1), raw)
