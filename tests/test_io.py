"""Atomic writes and the clean-up of what a killed writer leaves."""

from __future__ import annotations

import pytest

from vaelab.io import atomic_path, atomic_write, remove_stale_temporaries


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
