"""Atomic file writes: a reader never sees a half-written file.

Every file vaelab writes goes through :func:`atomic_write`: the bytes go to a
temporary file in the same folder, are flushed to disk, and the temporary file
is renamed over the target (rename is atomic within one file system).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

from vaelab.errors import RunError, VaelabError


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it over ``target`` on success.

    On an exception the temporary file is removed and ``target`` is untouched.
    """
    target = Path(target)
    if target.is_dir():
        raise VaelabError(f"{target} is a folder: give a file name to write to")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as error:
        if error.filename is None and error.errno is not None:  # a full disk in write(): name the file the user knows
            raise OSError(error.errno, error.strerror, str(target)) from None
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


LOCK_NAME = ".vaelab-lock"


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, create: bool = True) -> Iterator[None]:
    """Own ``folder`` while writing it: a second vaelab process gets a one-line error.

    An advisory ``flock`` on ``folder/.vaelab-lock``: the kernel releases it when
    its process ends, however it ends, so a killed run's successor takes the
    folder over without any clean-up. (Where ``fcntl`` is missing, as on
    Windows, there is no lock.) ``create=False``: a folder that does not exist
    is neither made nor locked (the caller's reader then names it).
    """
    folder = Path(folder)
    if not create and not folder.is_dir():
        yield
        return
    if folder.exists() and not folder.is_dir():
        raise RunError(f"{folder} is a file, not a folder: choose another --out")
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:
        yield
        return
    handle = open(folder / LOCK_NAME, "a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            advice = "wait for it to finish, or choose another --out" if create else "wait for it to finish"
            raise RunError(f"{folder} is being written by another vaelab process ({owner}): {advice}") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        yield
    finally:
        handle.close()  # releases the lock


TEMP_PATTERN = ".*.tmp"  # what atomic_path names its temporary files


def remove_stale_temporaries(folder: str | os.PathLike, recursive: bool = True) -> int:
    """Delete temporary files that a killed process left behind in ``folder``; return how many.

    Only names made by :func:`atomic_path` match. Call it when (re)starting
    work in a folder that no other process is writing to.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    found = folder.rglob(TEMP_PATTERN) if recursive else folder.glob(TEMP_PATTERN)
    removed = 0
    for path in found:
        if path.is_file():
            path.unlink()
            removed += 1
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(target: str | os.PathLike, data: bytes | str) -> None:
    """Write ``data`` (bytes or UTF-8 text) to ``target`` atomically."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(target) as tmp:
        tmp.write_bytes(payload)


def finite(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float replaced by None: JSON has no NaN (``null`` is "missing")."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {key: finite(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(value) for value in obj]
    return obj


def is_finite_number(value: Any) -> bool:
    """Whether ``value`` is an int or float that a float holds finitely (not a bool, NaN, infinity, nor an
    integer too large for a float: JSON's integers have no bound)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(value, int):
        return abs(value) <= sys.float_info.max
    return math.isfinite(value)


def json_text(obj: Any, **options) -> str:
    """Valid JSON text of ``obj`` (``json.dumps`` options): a NaN or infinite number is written as ``null``."""
    return json.dumps(finite(obj), allow_nan=False, **options)


def parse_json(text: str | bytes) -> Any:
    """Parse JSON text; the ``NaN``/``Infinity`` that Python's own writer allows are read as None (missing)."""
    return json.loads(text, parse_constant=lambda constant: None)


def write_json(target: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically; NaN and infinities become ``null``."""
    atomic_write(target, json_text(obj, indent=2, sort_keys=False) + "\n")


def write_npz(target: str | os.PathLike, **arrays) -> None:
    """Write NumPy arrays to an uncompressed NPZ, atomically (read back with ``allow_pickle=False``)."""
    import numpy as np

    with atomic_path(target) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)


def safetensors_bytes(tensors: dict, metadata: dict[str, str] | None = None) -> bytes:
    """A safetensors file's bytes with its header in sorted key order: identical tensors, identical bytes.

    The safetensors library writes the header's metadata in hash order, which varies
    from one process to the next; the header is re-serialised sorted (same length, so
    every data offset stays valid). Tensors are saved as contiguous CPU tensors.
    """
    from safetensors.torch import save

    raw = save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata=metadata)
    length = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + length])
    ordered = {key: header[key] for key in sorted(header, key=lambda k: (k != "__metadata__", k))}
    if "__metadata__" in ordered:
        ordered["__metadata__"] = dict(sorted(ordered["__metadata__"].items()))
    text = json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    padded = length if len(text) <= length else (len(text) + 7) // 8 * 8  # the library pads to 8 bytes
    return padded.to_bytes(8, "little") + text.ljust(padded, b" ") + raw[8 + length:]


def write_safetensors(target: str | os.PathLike, tensors: dict, metadata: dict[str, str] | None = None) -> None:
    """Write tensors as a safetensors file, atomically, with a sorted header and the usual file mode."""
    atomic_write(target, safetensors_bytes(tensors, metadata))


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file."""
    with open(path, encoding="utf-8") as handle:
        return parse_json(handle.read())
