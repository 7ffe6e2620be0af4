"""Atomic writes: the target is the old file or the whole new one, and no temp file is left behind."""

from __future__ import annotations

import hashlib
import json
import os
import stat

import pytest

from forecaster.atomic import (
    atomic_open,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    sha256_bytes,
    sha256_file,
)


def test_write_creates_parents_and_leaves_no_temp(tmp_path) -> None:
    path = tmp_path / "a" / "b" / "out.txt"
    atomic_write_text(path, "hello")
    assert path.read_text() == "hello"
    assert os.listdir(path.parent) == ["out.txt"]


def test_replace_keeps_old_content_when_the_writer_fails(tmp_path) -> None:
    path = tmp_path / "out.json"
    atomic_write_json(path, {"v": 1})
    with pytest.raises(RuntimeError, match="halfway"):
        with atomic_open(path, "w", encoding="utf-8") as handle:
            handle.write('{"v": 2')
            raise RuntimeError("halfway")
    assert json.loads(path.read_text()) == {"v": 1}
    assert os.listdir(tmp_path) == ["out.json"]


def test_json_refuses_nan_instead_of_writing_invalid_json(tmp_path) -> None:
    path = tmp_path / "out.json"
    with pytest.raises(ValueError):
        atomic_write_json(path, {"x": float("nan")})
    assert not path.exists() and os.listdir(tmp_path) == []


def test_permissions_follow_the_umask_not_mkstemp(tmp_path) -> None:
    old = os.umask(0o022)
    try:
        path = atomic_write_bytes(tmp_path / "f.bin", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_bad_mode(tmp_path) -> None:
    with pytest.raises(ValueError, match="mode"):
        with atomic_open(tmp_path / "f", "a"):
            pass


def test_sha256(tmp_path) -> None:
    data = os.urandom(3 << 20)  # more than one read chunk
    path = atomic_write_bytes(tmp_path / "blob", data)
    assert sha256_file(path) == sha256_bytes(data) == hashlib.sha256(data).hexdigest()
