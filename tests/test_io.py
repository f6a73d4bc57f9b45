"""Atomic writes and the clean-up of what a killed writer leaves."""

from __future__ import annotations

import pytest

import json
import math

from vaelab.io import atomic_path, atomic_write, json_text, parse_json, read_json, remove_stale_temporaries, write_json
from vaelab.version import __version__


def test_atomic_write_replaces_whole_files(tmp_path):
    target = tmp_path / "a.json"
    atomic_write(target, "first")
    atomic_write(target, "second")
    assert target.read_text() == "second"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "a.json"
    atomic_write(target, "kept")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "kept"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_stale_temporaries_are_swept_and_nothing_else(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / ".weights.safetensors.abc123.tmp").write_text("debris")
    (tmp_path / "sub" / ".measures.json.x1.tmp").write_text("debris")
    (tmp_path / "notes.tmp").write_text("a user's file")  # not a name atomic_path makes
    (tmp_path / "sub" / "measures.json").write_text("{}")
    assert remove_stale_temporaries(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["measures.json", "notes.tmp"]


def _strict(constant):
    raise ValueError(f"not JSON: {constant}")


def test_json_files_never_hold_nan_or_infinity(tmp_path):
    values = {"a": math.nan, "b": [1.0, math.inf, -math.inf], "c": {"d": 2.5, "e": (math.nan,)}, "f": "NaN"}
    write_json(tmp_path / "x.json", values)
    text = (tmp_path / "x.json").read_text()
    assert json.loads(text, parse_constant=_strict) == {"a": None, "b": [1.0, None, None], "c": {"d": 2.5, "e": [None]},
                                                       "f": "NaN"}
    assert json.loads(json_text({"x": math.nan}), parse_constant=_strict) == {"x": None}


def test_nan_written_by_other_tools_is_read_as_missing(tmp_path):
    (tmp_path / "old.json").write_text('{"m": NaN, "n": [Infinity, -Infinity, 1]}')
    assert read_json(tmp_path / "old.json") == {"m": None, "n": [None, None, 1]}
    assert parse_json("[NaN]") == [None]


def test_the_version_has_one_home():
    import importlib.metadata

    import vaelab

    assert vaelab.__version__ == __version__ == importlib.metadata.version("vaelab")
