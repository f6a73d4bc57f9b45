"""CIFAR-10 (binary release) and SVHN (.mat) readers on small files written here in the real formats: good
files, damaged ones, the download path (a local file:// mirror, checksums, atomic cache writes), and a
colour run from the CLI."""

from __future__ import annotations

import hashlib
import io
import tarfile

import numpy as np
import pytest

from tests.conftest import run_cli
from vaelab.data import cifar10, svhn
from vaelab.data.registry import load_dataset
from vaelab.errors import DataError


def cifar_records(n: int, seed: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    """``n`` records of the binary release: a label byte, then the red, green and blue 32x32 planes."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    payload = b"".join(bytes([label]) + image.tobytes() for label, image in zip(labels, images))
    return payload, images, labels


def write_cifar_folder(root) -> tuple[np.ndarray, np.ndarray]:
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    for i, name in enumerate(cifar10.TRAIN):
        (folder / name).write_bytes(cifar_records(20, i)[0])
    payload, images, labels = cifar_records(20, 99)
    (folder / "test_batch.bin").write_bytes(payload)
    return images, labels


def cifar_archive(root) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(root / "cifar-10-batches-bin", arcname="cifar-10-batches-bin")
    return buffer.getvalue()


def test_cifar_records_are_read_plane_by_plane(tmp_path):
    images, labels = write_cifar_folder(tmp_path)
    data = load_dataset("cifar10", data_dir=str(tmp_path))
    assert data.train_images.shape == (100, 3, 32, 32) and data.test_images.shape == (20, 3, 32, 32)
    assert np.array_equal(data.test_images, images) and np.array_equal(data.test_labels, labels)
    assert data.image_shape == (3, 32, 32) and data.class_names[:2] == ["airplane", "automobile"]


def test_cifar_is_read_straight_from_the_archive(tmp_path):
    images, _ = write_cifar_folder(tmp_path / "made")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / cifar10.ARCHIVE.name).write_bytes(cifar_archive(tmp_path / "made"))
    data = load_dataset("cifar10", data_dir=str(tmp_path / "data"))
    assert np.array_equal(data.test_images, images)


@pytest.mark.parametrize("damage, words", [
    (lambda b: b[:-5], "is not a whole number of 3,073-byte records"),
    (lambda b: b"", "is not a whole number"),
    (lambda b: bytes([12]) + b[1:], "a label is 12"),
])
def test_damaged_cifar_batches_are_named_in_one_line(tmp_path, damage, words):
    write_cifar_folder(tmp_path)
    batch = tmp_path / "cifar-10-batches-bin" / "test_batch.bin"
    batch.write_bytes(damage(batch.read_bytes()))
    with pytest.raises(DataError, match=words) as error:
        load_dataset("cifar10", data_dir=str(tmp_path))
    assert "test_batch.bin" in str(error.value) and "\n" not in str(error.value)


def test_a_cifar_archive_that_is_not_one_is_refused(tmp_path):
    (tmp_path / cifar10.ARCHIVE.name).write_bytes(b"not a tarball")
    with pytest.raises(DataError, match="not a readable .tar.gz"):
        load_dataset("cifar10", data_dir=str(tmp_path))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("cifar-10-batches-bin/test_batch.bin")
        info.size = 3
        archive.addfile(info, io.BytesIO(b"abc"))
    (tmp_path / cifar10.ARCHIVE.name).write_bytes(buffer.getvalue())
    with pytest.raises(DataError, match="the archive lacks data_batch_1.bin"):
        load_dataset("cifar10", data_dir=str(tmp_path))


def test_cifar_downloads_into_the_cache_with_its_checksum(tmp_path, monkeypatch, isolated_cache):
    write_cifar_folder(tmp_path / "made")
    archive = cifar_archive(tmp_path / "made")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / cifar10.ARCHIVE.name).write_bytes(archive)
    monkeypatch.setattr(cifar10, "MIRRORS", (mirror.as_uri() + "/",))
    cached = isolated_cache / "vaelab" / "cifar10" / cifar10.ARCHIVE.name
    # a mirror serving other bytes: refused, and nothing is left in the cache
    with pytest.raises(DataError, match="checksum mismatch"):
        load_dataset("cifar10")
    assert not cached.exists() and not list(cached.parent.glob(".*.tmp"))
    monkeypatch.setattr(cifar10, "ARCHIVE", cifar10.ARCHIVE.__class__(cifar10.ARCHIVE.name,
                                                                      hashlib.sha256(archive).hexdigest()))
    data = load_dataset("cifar10")
    assert cached.read_bytes() == archive and len(data.train_images) == 100
    assert "yes" in run_cli("datasets").stdout.split("cifar10", 1)[1].splitlines()[0]  # found in the cache now


def test_cifar_offline_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setattr(cifar10, "MIRRORS", ((tmp_path / "nowhere").as_uri() + "/",))
    with pytest.raises(DataError, match=r"could not download cifar10 .*put cifar-10-binary.tar.gz"):
        load_dataset("cifar10")


def write_svhn(folder, n_train: int = 30, n_test: int = 12) -> np.ndarray:
    from scipy.io import savemat

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    test_images = None
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)  # the .mat layout: H, W, C, N
        labels = (np.arange(n) % 10 + 1).reshape(-1, 1)  # 1-10, 10 meaning the digit 0
        savemat(folder / svhn.FILES[split].name, {"X": images, "y": labels})
        test_images = images
    return test_images


def test_svhn_mat_files_are_read_with_0_for_10(tmp_path):
    raw = write_svhn(tmp_path)
    data = load_dataset("svhn", data_dir=str(tmp_path))
    assert data.train_images.shape == (30, 3, 32, 32) and data.test_images.shape == (12, 3, 32, 32)
    assert np.array_equal(data.test_images[4, 1], raw[:, :, 1, 4])  # image 4, green plane
    assert data.test_labels.tolist()[:11] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]


@pytest.mark.parametrize("content, words", [
    (b"junk", "not a readable MATLAB file"),
    ({"Z": np.zeros(3)}, "holds no X and y arrays"),
    ({"X": np.zeros((28, 28, 3, 2), np.uint8), "y": np.ones((2, 1))}, "expected uint8 (32, 32, 3, N)"),
    ({"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[0], [3]])}, "expected one label 1-10 per image"),
    ({"X": np.zeros((32, 32, 3, 0), np.uint8), "y": np.zeros((0, 1))}, "holds 0 images"),
])
def test_damaged_svhn_files_are_named_in_one_line(tmp_path, content, words):
    from scipy.io import savemat

    write_svhn(tmp_path)
    target = tmp_path / svhn.FILES["test"].name
    if isinstance(content, bytes):
        target.write_bytes(content)
    else:
        savemat(target, content)
    with pytest.raises(DataError, match=words.replace("(", r"\(").replace(")", r"\)")) as error:
        load_dataset("svhn", data_dir=str(tmp_path))
    assert "\n" not in str(error.value)


def test_an_svhn_folder_with_one_of_its_two_files_names_the_missing_one(tmp_path):
    write_svhn(tmp_path)
    (tmp_path / svhn.FILES["test"].name).unlink()
    with pytest.raises(DataError) as error:
        load_dataset("svhn", data_dir=str(tmp_path))
    assert str(error.value) == (f"{tmp_path} holds train_32x32.mat but not test_32x32.mat of svhn: put it there too, "
                                "or leave --data-dir out to use the cache")


def test_a_colour_run_from_the_cli(tmp_path):
    write_cifar_folder(tmp_path / "data")
    result = run_cli("train", "--model", "conv-vae", "--dataset", "cifar10", "--data-dir", str(tmp_path / "data"),
                     "--epochs", "1", "--latent", "4", "--quiet", "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    result = run_cli("evaluate", str(tmp_path / "run"), "--measures", "separation,health,generation",
                     "--iwae-k", "5")
    assert result.returncode == 0, result.stderr
    assert "prior_fd" in result.stdout and "silhouette" in result.stdout


@pytest.mark.slow  # a whole shrunk study end to end (15-25 s on 2 cores): CI runs it with -m slow
def test_the_thesis_study_runs_on_colour_images_without_mnist_s_table(tmp_path):
    import json

    from vaelab.analysis.compare import reference_applies

    write_cifar_folder(tmp_path / "data")
    out = tmp_path / "results"
    result = run_cli("reproduce", "--dataset", "cifar10", "--data-dir", str(tmp_path / "data"), "--seeds", "1",
                     "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    results = json.loads((out / "results.json").read_text())
    part = results["datasets"]["cifar10"]
    assert sorted(part["per_seed"]) == ["ae", "conv-vae", "convenc-vae", "vae"]
    assert all("prior_fd" in part["per_seed"][m]["0"] for m in part["per_seed"])  # the classifier read colour
    assert "reference" not in result.stdout.splitlines()[1]  # no Table 4.2 column beside CIFAR-10
    html = (out / "report.html").read_text()
    assert "Table 4.2: mean silhouette" not in html and "The thesis's experiments in this report" in html
    (table42,) = results["study"]["reference"]
    assert not reference_applies(table42, "cifar10")
    assert reference_applies(table42, "mnist-5k") and reference_applies(table42, "idx:/data/my-mnist")
    import matplotlib.image

    drawn = matplotlib.image.imread(out / "figures" / "cifar10" / "reconstructions.png")
    assert np.abs(drawn[..., 0] - drawn[..., 2]).max() > 0.2  # drawn in colour
