"""``cifar10``: CIFAR-10 (Krizhevsky 2009), 50,000 train / 10,000 test colour images, 3x32x32.

Read from the *binary* release, ``cifar-10-binary.tar.gz`` (records of one label byte and
3,072 pixel bytes, red, green then blue planes; no pickles), straight out of the archive or
from its extracted ``cifar-10-batches-bin`` folder. Looked for in ``--data-dir`` (or
``$VAELAB_DATA_DIR``) and the cache; otherwise downloaded once, checked against its SHA-256,
into the cache atomically.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np

from vaelab.data import sources
from vaelab.data.dataset import Dataset
from vaelab.data.sources import candidate_folders
from vaelab.errors import DataError

NAME = "cifar10"
DESCRIPTION = "50,000 train / 10,000 test colour images, 3x32x32"
SIZES = None  # one size
READS_FILES = True  # the official archive, found or downloaded
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
ARCHIVE = sources.RemoteFile("cifar-10-binary.tar.gz",
                             "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd")
MIRRORS = ("https://www.cs.toronto.edu/~kriz/",)
TRAIN = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST = ("test_batch.bin",)
RECORD = 1 + 3 * 32 * 32


def parse_batch(payload: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) of one binary batch file's bytes."""
    if not payload or len(payload) % RECORD:
        raise DataError(f"{where}: {len(payload):,} bytes is not a whole number of {RECORD:,}-byte records: the file "
                        "is truncated or not CIFAR-10's binary version; delete it and download it again")
    records = np.frombuffer(payload, dtype=np.uint8).reshape(-1, RECORD)
    labels = records[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise DataError(f"{where}: a label is {labels.max()}, but CIFAR-10's are 0-9: the file is damaged; delete it "
                        "and download it again")
    return records[:, 1:].reshape(-1, 3, 32, 32).copy(), labels


def _read(members: dict[str, bytes], names: tuple[str, ...], where: str) -> tuple[np.ndarray, np.ndarray]:
    parts = [parse_batch(members[name], f"{where}: {name}") for name in names]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _read_member(archive: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    """A regular file's bytes from an open archive."""
    handle = archive.extractfile(member)
    if handle is None:  # not a regular file (the callers keep only those)
        raise tarfile.TarError(f"{member.name} is not a regular file")
    return handle.read()


def _members_of(source: Path) -> dict[str, bytes]:
    """The batch files' bytes from the archive or the extracted folder."""
    wanted = TRAIN + TEST
    if source.is_dir():
        missing = [name for name in wanted if not (source / name).is_file()]
        if missing:
            raise DataError(f"{source}: {', '.join(missing)} missing: put the whole extracted "
                            "cifar-10-batches-bin folder there (or the archive)")
        return {name: (source / name).read_bytes() for name in wanted}
    try:
        with tarfile.open(source, "r:gz") as archive:
            members = {Path(m.name).name: m for m in archive.getmembers() if m.isfile()}
            missing = [name for name in wanted if name not in members]
            if missing:
                raise DataError(f"{source}: the archive lacks {', '.join(missing)}: it is not CIFAR-10's binary "
                                "release; delete it and download it again")
            return {name: _read_member(archive, members[name]) for name in wanted}
    except (tarfile.TarError, OSError, EOFError) as error:
        raise DataError(f"{source}: not a readable .tar.gz ({error}): delete it and download it again") from None


def locate(data_dir: str | None) -> Path | None:
    """The archive or extracted folder in ``--data-dir``/``$VAELAB_DATA_DIR`` or the cache, if any."""
    for folder in candidate_folders(NAME, data_dir):
        for candidate in (folder / "cifar-10-batches-bin", folder / ARCHIVE.name):
            if candidate.exists():
                return candidate
        if (folder / TEST[0]).is_file():
            return folder
    return None


def where(data_dir: str | None = None) -> str:
    """Where ``cifar10`` would be read from (for ``vaelab datasets``)."""
    return sources.availability(NAME, locate(data_dir))


def load(seed: int, holdout: float = 0.2, *, data_dir: str | None = None, download: bool = True):
    """CIFAR-10's own train and test splits (``seed`` and ``holdout`` are not needed: the split is given)."""
    source = locate(data_dir)
    if source is None:
        if not download:
            raise DataError(f"cifar10 is not available locally: put {ARCHIVE.name} in {sources.cache_root() / NAME}")
        target = sources.cache_root() / NAME / ARCHIVE.name
        failures = []
        for mirror in MIRRORS:
            try:
                sources.download_file(mirror + ARCHIVE.name, target, ARCHIVE.sha256)
                break
            except DataError as error:
                failures.append(str(error))
        else:
            raise DataError(f"could not download cifar10 ({failures[-1]}); offline, put {ARCHIVE.name} (or its "
                            f"extracted cifar-10-batches-bin folder) in {target.parent} or pass --data-dir")
        source = target
    members = _members_of(source)
    train_x, train_y = _read(members, TRAIN, str(source))
    test_x, test_y = _read(members, TEST, str(source))
    return Dataset(NAME, train_x, train_y, test_x, test_y, source=str(source), names=list(CLASS_NAMES))
