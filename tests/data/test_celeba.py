"""CelebA's reader on small files written here in the official layouts (a zip of 178x218 JPEGs under
img_align_celeba/, list_attr_celeba.txt with its count and names lines, list_eval_partition.txt): the crop
and resize against Pillow by hand, the splits, the labels, the cache, damaged files (one line, exit 2,
no cache left behind), and the download path on a local file:// mirror."""

from __future__ import annotations

import hashlib
import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from tests.conftest import run_cli
from vaelab.data import celeba
from vaelab.data.registry import load_dataset, transductive
from vaelab.errors import DataError

N_FACES = 40
PARTITION = [0] * 28 + [1] * 4 + [2] * 8  # train, valid, test, as the official file orders them


def face(i: int) -> Image.Image:
    """A 178x218 colour image whose every pixel differs (so a crop off by one pixel is seen)."""
    y, x = np.mgrid[:218, :178]
    pixels = np.stack([(x + 3 * i) % 256, (y + 5 * i) % 256, (x * y + i) % 256], axis=-1).astype(np.uint8)
    return Image.fromarray(pixels)


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def attributes_table() -> np.ndarray:
    table = (np.random.default_rng(0).random((N_FACES, 40)) < 0.5).astype(int) * 2 - 1
    table[:, celeba.ATTRIBUTES.index("Male")] = np.tile([1, -1], N_FACES // 2)  # both classes in every split
    table[:, celeba.ATTRIBUTES.index("Smiling")] = np.tile([1, 1, -1, -1], N_FACES // 4)
    return table


def write_celeba(folder, *, attr_lines=None, partition_lines=None, member_bytes=None, zipped=True):
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"{i + 1:06d}.jpg" for i in range(N_FACES)]
    table = attributes_table()
    lines = [str(N_FACES), " ".join(celeba.ATTRIBUTES) + " "]  # the official names line ends with a space
    lines += [name + " " + " ".join(f"{v:2d}" for v in row) for name, row in zip(names, table)]
    (folder / celeba.ATTRIBUTE_FILE.name).write_text("\n".join(attr_lines or lines) + "\n")
    partition = [f"{name} {p}" for name, p in zip(names, PARTITION)]
    (folder / celeba.PARTITION_FILE.name).write_text("\n".join(partition_lines or partition) + "\n")
    payloads = {name: jpeg(face(i)) for i, name in enumerate(names)}
    payloads.update(member_bytes or {})
    if zipped:
        with zipfile.ZipFile(folder / celeba.IMAGES.name, "w") as archive:
            archive.writestr(f"{celeba.FOLDER}/", b"")
            for name, payload in payloads.items():
                archive.writestr(f"{celeba.FOLDER}/{name}", payload)
    else:
        (folder / celeba.FOLDER).mkdir()
        for name, payload in payloads.items():
            (folder / celeba.FOLDER / name).write_bytes(payload)
    return names, table


def expected_face(i: int) -> np.ndarray:
    """PyTorch-VAE's CenterCrop(148) then Resize(64), by hand: rows 35-182, columns 15-162, bilinear."""
    decoded = Image.open(io.BytesIO(jpeg(face(i)))).convert("RGB")
    return np.asarray(decoded.crop((15, 35, 163, 183)).resize((64, 64), Image.BILINEAR)).transpose(2, 0, 1)


@pytest.mark.parametrize("zipped", [True, False])
def test_celeba_is_read_cropped_labelled_and_split_as_published(tmp_path, isolated_cache, zipped):
    _, table = write_celeba(tmp_path / "data", zipped=zipped)
    data = load_dataset("celeba", data_dir=str(tmp_path / "data"))
    assert data.train_images.shape == (28, 3, 64, 64) and data.test_images.shape == (8, 3, 64, 64)  # no valid faces
    assert np.array_equal(data.train_images[0], expected_face(0)) and np.array_equal(data.test_images[-1],
                                                                                     expected_face(39))
    male = celeba.ATTRIBUTES.index("Male")
    assert data.train_labels.tolist() == ((table[:28, male] + 1) // 2).tolist()
    assert data.class_names == ["not Male", "Male"] and data.attribute_names == list(celeba.ATTRIBUTES)
    assert np.array_equal(data.test_attributes, (table[32:] + 1) // 2) and data.test_attributes.dtype == np.uint8
    smiling = load_dataset("celeba:Smiling", data_dir=str(tmp_path / "data"))
    assert smiling.name == "celeba:Smiling" and smiling.class_names[1] == "Smiling"
    assert smiling.fingerprint != data.fingerprint and len(list((isolated_cache / "vaelab" / "celeba").glob("*.npy"))) == 1
    both = transductive(data)
    assert len(both.train_attributes) == 36 and both.test_attributes is both.train_attributes


def test_a_subset_is_fixed_and_keeps_each_face_in_its_partition(tmp_path, isolated_cache, monkeypatch):
    write_celeba(tmp_path)
    monkeypatch.setattr(celeba, "SIZES", (10, 202_599))
    first = load_dataset("celeba:Smiling:20", data_dir=str(tmp_path), seed=0)
    again = load_dataset("celeba:20:Smiling", data_dir=str(tmp_path), seed=3)
    assert first.name == "celeba:Smiling:20" and first.fingerprint == again.fingerprint  # the same for every seed
    assert len(first.train_images) + len(first.test_images) == 20


def test_the_cache_is_built_once_and_reused(tmp_path, isolated_cache, monkeypatch):
    write_celeba(tmp_path)
    first = load_dataset("celeba", data_dir=str(tmp_path))
    monkeypatch.setattr(celeba, "decode_face", lambda *a: pytest.fail("decoded again"))
    assert load_dataset("celeba", data_dir=str(tmp_path)).fingerprint == first.fingerprint


@pytest.mark.parametrize("damage, words", [
    ({"member_bytes": {"000007.jpg": b"\xff\xd8 not a jpeg"}}, "000007.jpg: does not decode as a JPEG"),
    ({"attr_lines": ["40", " ".join(celeba.ATTRIBUTES)] + [f"{i + 1:06d}.jpg " + " 1" * 40 for i in range(39)]},
     "says 40 images but has 39 rows"),
    ({"attr_lines": ["40", " ".join(celeba.ATTRIBUTES)] + [f"{i + 1:06d}.jpg " + " 1" * (39 if i == 5 else 40)
                                                           for i in range(40)]},
     "line 8 has 39 values where CelebA has 40"),
    ({"attr_lines": ["40", " ".join(celeba.ATTRIBUTES[:-1])]}, "line 2 names 39 attributes"),
    ({"partition_lines": [f"{i + 1:06d}.jpg 0" for i in range(39)]}, "expected 40 rows"),
])
def test_damaged_celeba_files_are_named_in_one_line_and_leave_no_cache(tmp_path, isolated_cache, damage, words):
    write_celeba(tmp_path, **damage)
    with pytest.raises(DataError, match=words) as error:
        load_dataset("celeba", data_dir=str(tmp_path))
    assert str(tmp_path) in str(error.value) and "\n" not in str(error.value)
    assert not list(isolated_cache.rglob("*.npy")) and not list(isolated_cache.rglob("*.tmp"))


def test_a_truncated_archive_is_refused_from_the_cli(tmp_path):
    write_celeba(tmp_path / "data")
    archive = tmp_path / "data" / celeba.IMAGES.name
    archive.write_bytes(archive.read_bytes()[:-400])  # the central directory is at the end
    result = run_cli("train", "--dataset", "celeba", "--data-dir", str(tmp_path / "data"), "--model", "conv-vae",
                     "--epochs", "1", "--quiet", "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "not a readable zip archive" in result.stderr and not (tmp_path / "run").exists()


def test_names_that_are_no_attribute_or_size_are_refused():
    result = run_cli("train", "--dataset", "celeba:Smiles", "--quiet")
    assert result.returncode == 2 and "write celeba:ATTRIBUTE with one of 5_o_Clock_Shadow" in result.stderr
    assert "Smiling" in result.stderr
    result = run_cli("train", "--dataset", "celeba:Smiling:Male", "--quiet")
    assert result.returncode == 2 and "celeba:ATTRIBUTE" in result.stderr
    result = run_cli("train", "--dataset", "celeba:50", "--quiet")
    assert result.returncode == 2 and "write celeba:N with N from 100 to 202,599 images" in result.stderr


def test_celeba_downloads_each_file_checked_by_md5(tmp_path, monkeypatch, isolated_cache):
    write_celeba(tmp_path / "made")
    drive = tmp_path / "drive"
    drive.mkdir()
    for remote in celeba.FILES:
        (drive / celeba.DRIVE_IDS[remote.name]).write_bytes((tmp_path / "made" / remote.name).read_bytes())
    monkeypatch.setattr(celeba, "DRIVE_URL", drive.as_uri() + "/{id}")
    cache = isolated_cache / "vaelab" / "celeba"
    with pytest.raises(DataError) as error:  # the real MD5s are not these files'
        load_dataset("celeba")
    message = str(error.value)
    assert "checksum mismatch (md5" in message and "img_align_celeba.zip (md5 00d2c5bc6d35e252742224ab0c1e8fcb)" in message
    assert f"in {cache}" in message and "\n" not in message
    assert not list(cache.glob("*")) if cache.exists() else True
    checked = tuple(remote.__class__(remote.name, "", hashlib.md5((drive / celeba.DRIVE_IDS[remote.name])
                                                                  .read_bytes()).hexdigest())
                    for remote in celeba.FILES)
    monkeypatch.setattr(celeba, "FILES", checked)
    assert len(load_dataset("celeba").train_images) == 28
    assert sorted(p.name for p in cache.glob("*.*") if not p.name.endswith(".npy")) == sorted(f.name for f in checked)


def test_a_web_page_in_place_of_the_file_is_named(tmp_path, monkeypatch, isolated_cache):
    drive = tmp_path / "drive"
    drive.mkdir()
    for file_id in celeba.DRIVE_IDS.values():
        (drive / f"{file_id}.html").write_text("<html>Google Drive - Quota exceeded</html>")
    monkeypatch.setattr(celeba, "DRIVE_URL", drive.as_uri() + "/{id}.html")
    with pytest.raises(DataError, match="the server sent a web page, not the file"):
        load_dataset("celeba")


def test_a_folder_with_the_texts_but_no_images_names_what_is_missing(tmp_path):
    write_celeba(tmp_path)
    (tmp_path / celeba.IMAGES.name).unlink()
    with pytest.raises(DataError, match="but not img_align_celeba.zip of celeba"):
        load_dataset("celeba", data_dir=str(tmp_path))
