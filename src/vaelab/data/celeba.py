"""``celeba``: CelebA's aligned and cropped faces (Liu et al. 2015), 202,599 images with 40 binary attributes,
the face set PyTorch-VAE, pythae and most VAE papers report on.

Read from the official files: ``img_align_celeba.zip`` (or its extracted ``img_align_celeba`` folder),
``list_attr_celeba.txt`` (a count line, a line of the 40 attribute names, then one row an image of
-1/1 values) and ``list_eval_partition.txt`` (0 train, 1 valid, 2 test). Each 178x218 JPEG is
decoded with Pillow, centre-cropped to 148x148 (offsets rounded as torchvision's ``CenterCrop``: left
15, top 35) and resized to 64x64 with Pillow's bilinear filter: PyTorch-VAE's ``CenterCrop(148)`` then
``Resize(64)`` on a PIL image, the convention of PyTorch-VAE, pythae and DCGAN.

The decoded faces are cached once, as one uint8 ``.npy`` array (N, 3, 64, 64) in the attribute file's
order (2.5 GB for all of CelebA), written atomically, so that later runs memory-map it and start in
seconds; a face that does not decode stops the build with its name and leaves no cache.

Splits: the official train partition is the training split and the official test partition the test
split (the 19,867 validation faces are not used). ``celeba:N`` takes a fixed subset of N faces (the
same for every seed) drawn from those two partitions, each face kept in its own. The class of every
class-based measure is one attribute: ``Male`` by default (the most visible attribute, 42% of faces),
``celeba:ATTRIBUTE`` for another (``celeba:Smiling``, ``celeba:Smiling:20000``); all 40 stay beside
the images for the attribute measures.

Looked for in ``--data-dir`` (or ``$VAELAB_DATA_DIR``) and the cache; otherwise downloaded from
Google Drive (the file ids torchvision uses), each checked against the MD5 torchvision publishes.
Drive's quotas often refuse: then one line names the files, their checksums and the folder to put
them in.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np

from vaelab.data import sources
from vaelab.data.dataset import Dataset
from vaelab.data.sources import candidate_folders
from vaelab.errors import DataError
from vaelab.io import atomic_path

NAME = "celeba"
ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips", "Big_Nose",
    "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses",
    "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache",
    "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks",
    "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick",
    "Wearing_Necklace", "Wearing_Necktie", "Young",
)
LABELS = ATTRIBUTES  # ``celeba:ATTRIBUTE``
DEFAULT_LABEL = "Male"
SIZES = (100, 202_599)  # ``celeba:N``
DESCRIPTION = "202,599 aligned faces, colour 64x64 (148x148 centre crop), 40 attributes; class: Male"
READS_FILES = True
IMAGES = sources.RemoteFile("img_align_celeba.zip", "", md5="00d2c5bc6d35e252742224ab0c1e8fcb")
ATTRIBUTE_FILE = sources.RemoteFile("list_attr_celeba.txt", "", md5="75e246fa4810816ffd6ee81facbd244c")
PARTITION_FILE = sources.RemoteFile("list_eval_partition.txt", "", md5="d32c9cbf5e040fd4025c592c306e6668")
FILES = (IMAGES, ATTRIBUTE_FILE, PARTITION_FILE)
DRIVE_IDS = {IMAGES.name: "0B7EVK8r0v71pZjFTYXZWM3FlRnM", ATTRIBUTE_FILE.name: "0B7EVK8r0v71pblRyaVFSWGxPY0U",
             PARTITION_FILE.name: "0B7EVK8r0v71pY0NSMzRuSXJEVkk"}
DRIVE_URL = "https://drive.usercontent.google.com/download?id={id}&export=download&confirm=t"
FOLDER = "img_align_celeba"
CROP, SIZE = 148, 64
TRAIN, VALID, TEST = 0, 1, 2


def read_attributes(path: Path) -> tuple[list[str], np.ndarray]:
    """Image names and their 40 attributes as 0/1 uint8 (N, 40) from ``list_attr_celeba.txt``: a count line, the
    names' line, then ``000001.jpg -1  1 …`` rows (any run of spaces between values)."""
    lines = _text_lines(path)
    if len(lines) < 2 or not lines[0].strip().isdigit():
        raise DataError(f"{path}: the first line should be the number of images: this is not list_attr_celeba.txt")
    names = lines[1].split()
    if tuple(names) != ATTRIBUTES:
        raise DataError(f"{path}: line 2 names {len(names)} attributes, not CelebA's 40 in their order: this is not "
                        "list_attr_celeba.txt")
    count, rows = int(lines[0]), [line for line in lines[2:] if line.strip()]
    if len(rows) != count:
        raise DataError(f"{path}: says {count:,} images but has {len(rows):,} rows: the file is truncated or edited; "
                        "download it again")
    try:  # numpy's C parser: a second for CelebA's 202,599 rows
        values = np.loadtxt(rows, dtype=np.int8, usecols=range(1, 1 + len(ATTRIBUTES)), ndmin=2)
        whole = values.shape == (count, len(ATTRIBUTES)) and bool(np.isin(values, (-1, 1)).all())
    except ValueError:
        whole = False
    if not whole:
        _refuse_first_bad_row(path, rows)
    return [row.split(maxsplit=1)[0] for row in rows], (values == 1).astype(np.uint8)


def _refuse_first_bad_row(path: Path, rows: list[str]) -> None:
    """Name the first row of the attribute file that is not an image name and 40 values of -1 or 1."""
    for i, row in enumerate(rows):
        values = row.split()[1:]
        if len(values) != len(ATTRIBUTES) or any(v not in ("1", "-1") for v in values):
            raise DataError(f"{path}: line {i + 3} has {len(values)} values where CelebA has 40 of -1 or 1: the "
                            "file is damaged; download it again")
    raise DataError(f"{path}: the attribute rows cannot be read: the file is damaged; download it again")


def read_partition(path: Path, names: list[str]) -> np.ndarray:
    """The official partition (0 train, 1 valid, 2 test) of each image of ``names``, from
    ``list_eval_partition.txt``, which must list the same images in the same order."""
    rows = [line.split() for line in _text_lines(path) if line.strip()]
    if len(rows) != len(names) or any(len(row) != 2 or row[1] not in ("0", "1", "2") for row in rows):
        raise DataError(f"{path}: expected {len(names):,} rows of an image name and 0, 1 or 2, found {len(rows):,}: "
                        "the file is damaged; download it again")
    if [row[0] for row in rows] != names:
        raise DataError(f"{path}: its images are not those of {ATTRIBUTE_FILE.name}, in the same order: use the "
                        "two files of one CelebA release")
    return np.array([int(row[1]) for row in rows], np.int64)


def _text_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not a readable CelebA text file ({error}): download it again") from None


def decode_face(payload: bytes, where: str) -> np.ndarray:
    """One JPEG's bytes -> uint8 (3, 64, 64): the centre 148x148 crop resized bilinearly, as PyTorch-VAE."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(payload)) as opened:
            image = opened.convert("RGB")
            width, height = image.size
            if width < CROP or height < CROP:
                raise DataError(f"{where}: is {width}x{height}, smaller than the 148x148 crop: not an aligned CelebA "
                                "face")
            left, top = int(round((width - CROP) / 2.0)), int(round((height - CROP) / 2.0))
            face = image.crop((left, top, left + CROP, top + CROP)).resize((SIZE, SIZE), Image.Resampling.BILINEAR)
            return np.asarray(face, dtype=np.uint8).transpose(2, 0, 1)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise DataError(f"{where}: does not decode as a JPEG ({str(error).splitlines()[0] or 'damaged'}): the images "
                        "are damaged; download them again") from None


def identity(images_path: Path) -> str:
    """What the cache is keyed by (with the image names): the archive's or folder's path, size and modification
    time, and the crop and size (a changed file, or another decoding, is a new cache)."""
    stat = images_path.stat()
    return json.dumps([str(images_path.resolve()), stat.st_size, stat.st_mtime_ns, CROP, SIZE])


class FaceSource:
    """The JPEGs, from the zip archive or the extracted folder: their bytes by image name."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.archive: zipfile.ZipFile | None = None
        self.members: dict[str, zipfile.ZipInfo] = {}
        if path.is_file():
            try:
                self.archive = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError) as error:
                raise DataError(f"{path}: not a readable zip archive ({error}): it is truncated or not CelebA's; "
                                "download it again") from None
            self.members = {Path(m.filename).name: m for m in self.archive.infolist() if not m.is_dir()}

    def read(self, name: str) -> bytes:
        where = f"{self.path}: {name}"
        try:
            if self.archive is None:
                return (self.path / name).read_bytes()
            if name not in self.members:
                raise DataError(f"{self.path}: lacks {name}, which {ATTRIBUTE_FILE.name} lists: the archive is "
                                "incomplete; download it again")
            return self.archive.read(self.members[name])
        except (zipfile.BadZipFile, OSError, EOFError) as error:
            raise DataError(f"{where}: cannot be read ({error}): the images are damaged; download them "
                            "again") from None

    def close(self) -> None:
        if self.archive is not None:
            self.archive.close()


def build_cache(source: FaceSource, names: list[str], target: Path) -> None:
    """Decode every face of ``names`` into the uint8 array file ``target`` (N, 3, 64, 64), atomically: an image that
    does not decode, or an interruption, leaves no cache."""
    with atomic_path(target) as tmp:
        faces = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(names), 3, SIZE, SIZE))
        for i, name in enumerate(names):
            faces[i] = decode_face(source.read(name), f"{source.path}: {name}")
        faces.flush()
        del faces


def locate(data_dir: str | None) -> tuple[Path, Path] | None:
    """(the folder holding the two text files, the image archive or folder), from ``--data-dir`` or the cache."""
    for folder in candidate_folders(NAME, data_dir):
        if all(_holds(folder, remote.name) for remote in FILES):
            archive = folder / IMAGES.name
            return folder, archive if archive.is_file() else folder / FOLDER
    return None


def where(data_dir: str | None = None) -> str:
    """Where ``celeba`` would be read from (for ``vaelab datasets``)."""
    found = locate(data_dir)
    return sources.availability(NAME, found[1] if found else None)


def _holds(folder: Path, file: str) -> bool:
    """Whether ``folder`` holds ``file`` (the images: the archive or the extracted folder)."""
    return (folder / file).is_file() or (file == IMAGES.name and (folder / FOLDER).is_dir())


def fetch(folder: Path) -> None:
    """Download the three files from Google Drive into ``folder``, each checked against its MD5."""
    for remote in FILES:
        target = folder / remote.name
        if target.is_file():
            continue
        try:
            sources.download_file(DRIVE_URL.format(id=DRIVE_IDS[remote.name]), target, remote.md5, algorithm="md5",
                                  refuse_html=True)
        except DataError as error:
            listed = ", ".join(f"{f.name} (md5 {f.md5})" for f in FILES)
            raise DataError(f"could not download celeba ({error}); Google Drive often refuses: put {listed} in "
                            f"{folder}, or give --data-dir a folder that holds them") from None


def load(seed: int, holdout: float = 0.2, *, size: int | None = None, label: str = DEFAULT_LABEL,
         data_dir: str | None = None, download: bool = True) -> Dataset:
    """CelebA's official train and test partitions at 64x64 (``size`` faces of them for ``celeba:N``), labelled by
    the attribute ``label``, all 40 attributes kept (``seed`` and ``holdout`` are not needed: the split is given)."""
    sources.refuse_a_partial_folder(NAME, data_dir, tuple(f.name for f in FILES), _holds)
    found = locate(data_dir)
    if found is None:
        folder = sources.cache_root() / NAME
        if not download:
            raise DataError(f"celeba is not available locally: put {', '.join(f.name for f in FILES)} in {folder}")
        fetch(folder)
        found = folder, folder / IMAGES.name
    folder, images_path = found
    names, attributes = read_attributes(folder / ATTRIBUTE_FILE.name)
    partition = read_partition(folder / PARTITION_FILE.name, names)
    faces = _cached_faces(images_path, names)
    rows = np.flatnonzero(partition != VALID)
    if size is not None:
        rows = np.sort(np.random.default_rng(0).choice(rows, size=min(size, len(rows)), replace=False))
    train, test = rows[partition[rows] == TRAIN], rows[partition[rows] == TEST]
    column = ATTRIBUTES.index(label)
    name = ":".join([NAME] + ([label] if label != DEFAULT_LABEL else []) + ([str(size)] if size else []))
    return Dataset(name, np.ascontiguousarray(faces[train]), attributes[train, column].astype(np.int64),
                   np.ascontiguousarray(faces[test]), attributes[test, column].astype(np.int64),
                   source=str(images_path), names=[f"not {label}", label],
                   train_attributes=attributes[train], test_attributes=attributes[test],
                   attribute_names=list(ATTRIBUTES))


def _cached_faces(images_path: Path, names: list[str]) -> np.ndarray:
    """The decoded faces of ``names``, memory-mapped from the cache, built first where it is not there."""
    key = hashlib.sha256((identity(images_path) + "\n".join(names)).encode()).hexdigest()[:16]
    cache = sources.cache_root() / NAME / f"faces-{SIZE}-{key}.npy"
    if not cache.is_file():
        source = FaceSource(images_path)
        try:
            build_cache(source, names, cache)
        finally:
            source.close()
    faces = np.load(cache, mmap_mode="r")
    if faces.shape != (len(names), 3, SIZE, SIZE) or faces.dtype != np.uint8:
        raise DataError(f"{cache}: holds {faces.dtype} {faces.shape}, not the {len(names):,} decoded faces: delete "
                        "it and it is built again")
    return faces
