"""Data sets by name, lookup order, and downloads served from local files (no network)."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import idx_bytes
from vaelab.data import sources
from vaelab.data.registry import list_datasets, load_dataset, to_tensor
from vaelab.errors import DataError


def test_mnist_5k_is_a_stratified_4000_1000_split_of_real_digits():
    data = load_dataset("mnist-5k", seed=0)
    assert data.train_images.shape == (4000, 28, 28) and data.test_images.shape == (1000, 28, 28)
    assert np.bincount(data.test_labels).tolist() == [100] * 10
    assert np.bincount(data.train_labels).tolist() == [400] * 10
    assert data.train_images.dtype == np.uint8 and data.train_images.max() == 255
    again = load_dataset("mnist-5k", seed=0)
    np.testing.assert_array_equal(data.test_labels, again.test_labels)
    other = load_dataset("mnist-5k", seed=1)
    assert not np.array_equal(data.test_labels, other.test_labels)


def test_pixels_become_float32_in_unit_interval():
    tensor = to_tensor(np.array([[[0, 255], [51, 102]]], dtype=np.uint8))
    assert tensor.dtype.is_floating_point and tensor.shape == (1, 1, 2, 2)
    assert tensor.flatten().tolist() == pytest.approx([0.0, 1.0, 0.2, 0.4])


def test_idx_folder_with_both_splits(tiny_idx_folder):
    data = load_dataset(f"idx:{tiny_idx_folder}")
    assert len(data.train_labels) == 120 and len(data.test_labels) == 30


def test_idx_folder_with_only_the_test_split_makes_a_stratified_holdout(shared_mnist):
    data = load_dataset(f"idx:{shared_mnist}", holdout=0.2, seed=3)
    assert len(data.train_labels) == 8000 and len(data.test_labels) == 2000
    train_share = np.bincount(data.train_labels) / 8000
    test_share = np.bincount(data.test_labels) / 2000
    assert np.abs(train_share - test_share).max() < 0.002


def test_idx_folder_without_pairs_says_what_is_needed(tmp_path):
    with pytest.raises(DataError, match="no IDX pair found"):
        load_dataset(f"idx:{tmp_path}")


def test_unknown_name_lists_the_choices():
    with pytest.raises(DataError, match="choose one of mnist-5k, mnist, fashion-mnist, digits, dsprites, dsprites-real, "
                       "celeba, 3dshapes, cifar10, svhn, dsprites:N, dsprites-real:N, celeba:N, 3dshapes:N, "
                       "celeba:ATTRIBUTE, idx:PATH"):
        load_dataset("cifar")


def _fake_remote(tmp_path: Path) -> tuple[sources.RemoteDataset, Path]:
    """A four-file data set served from a local folder through file:// URLs."""
    served = tmp_path / "mirror"
    served.mkdir()
    rng = np.random.default_rng(0)
    files = []
    for split, n in (("train", 20), ("t10k", 10)):
        for kind, array in (("images-idx3", rng.integers(0, 256, (n, 28, 28))), ("labels-idx1", np.arange(n) % 2)):
            name = f"{split}-{kind}-ubyte.gz"
            payload = gzip.compress(idx_bytes(array.astype(np.uint8)))
            (served / name).write_bytes(payload)
            files.append(sources.RemoteFile(name, hashlib.sha256(payload).hexdigest()))
    return sources.RemoteDataset("fake", (served.as_uri() + "/",), tuple(files)), served


def test_download_verifies_and_fills_the_cache(tmp_path):
    remote, _ = _fake_remote(tmp_path)
    cache = tmp_path / "cache"
    sources.fetch_remote(remote, cache)
    assert sorted(p.name for p in cache.iterdir()) == sorted(f.name for f in remote.files)
    data = load_dataset(f"idx:{cache}")
    assert len(data.train_labels) == 20 and len(data.test_labels) == 10


def test_corrupt_download_leaves_the_cache_empty(tmp_path):
    remote, served = _fake_remote(tmp_path)
    (served / remote.files[0].name).write_bytes(b"corrupted in transit")
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="checksum mismatch"):
        sources.fetch_remote(remote, cache)
    assert list(cache.iterdir()) == []  # no partial or temporary file left behind


def test_unreachable_mirror_says_where_to_put_the_files(tmp_path):
    remote, _ = _fake_remote(tmp_path)
    with pytest.raises(DataError, match=r"offline, put its 4 files .* in .*cache, or give --data-dir") as error:
        sources.fetch_remote(remote, tmp_path / "cache", mirrors=((tmp_path / "nowhere").as_uri() + "/",))
    assert not any((tmp_path / "cache").glob("*"))
    # the download's own reason, not the temporary file's '[Errno None] None' (URLError is an OSError)
    assert "No such file or directory" in str(error.value) and "Errno None" not in str(error.value)


def test_a_data_dir_holding_one_split_of_a_full_data_set_is_named_not_passed_over(tiny_idx_folder, isolated_cache):
    for path in tiny_idx_folder.glob("train-*"):
        path.unlink()
    with pytest.raises(DataError) as error:
        load_dataset("mnist", data_dir=str(tiny_idx_folder))
    assert str(error.value) == (f"{tiny_idx_folder} holds t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte but not "
                                "train-images-idx3-ubyte, train-labels-idx1-ubyte of mnist: put them there too, or "
                                "leave --data-dir out to use the cache")
    assert not (isolated_cache / "vaelab" / "mnist").exists()  # nothing downloaded elsewhere
    rows = {row["name"]: row["available"] for row in list_datasets(str(tiny_idx_folder))}
    assert rows["mnist"].startswith("download on first use")  # the listing still lists


def test_a_second_mirror_is_tried_after_a_failing_one(tmp_path):
    remote, served = _fake_remote(tmp_path)
    sources.fetch_remote(remote, tmp_path / "cache",
                         mirrors=((tmp_path / "nowhere").as_uri() + "/", served.as_uri() + "/"))
    assert len(list((tmp_path / "cache").iterdir())) == 4


def test_lookup_order_prefers_data_dir_then_cache(tmp_path, tiny_idx_folder, isolated_cache, monkeypatch):
    import shutil

    cached = isolated_cache / "vaelab" / "mnist"
    shutil.copytree(tiny_idx_folder, cached)
    assert load_dataset("mnist", download=False).source == str(cached)
    data = load_dataset("mnist", data_dir=str(tiny_idx_folder))
    assert data.source == str(tiny_idx_folder)
    monkeypatch.setenv("VAELAB_DATA_DIR", str(tiny_idx_folder))
    assert load_dataset("mnist").source == str(tiny_idx_folder)
    rows = {row["name"]: row["available"] for row in list_datasets()}
    assert str(tiny_idx_folder) in rows["mnist"]


def test_missing_full_dataset_without_download_is_a_clear_error():
    with pytest.raises(DataError, match="not available locally"):
        load_dataset("mnist", download=False)


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(), reason="Debian's dataset-fashion-mnist not installed")
def test_fashion_mnist_comes_from_debian_when_installed():
    data = load_dataset("fashion-mnist")
    assert data.train_images.shape == (60000, 28, 28) and data.test_images.shape == (10000, 28, 28)
    assert data.class_names[0] == "T-shirt"
