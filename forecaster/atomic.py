"""Atomic file writes: a reader sees the old file or the whole new one, never a torn one.

The recipe is the one databases and package managers use on POSIX: write a temp file in the same
directory (so the rename stays on one file system), flush and fsync it, `os.replace` it over the
target (atomic for a rename within a file system), then fsync the directory so the rename itself
survives a power cut. On any error the temp file is removed and the target is left as it was.

`atomic_open` is the general form (for writers that want a file object: matplotlib's savefig,
DataFrame.to_parquet); the others are conveniences over it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "atomic_open",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "fsync_dir",
    "sha256_file",
    "sha256_bytes",
]

TEMP_SUFFIX = ".tmp"


def fsync_dir(path: str | Path) -> None:
    """Make a rename or create inside `path` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(str(path), os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # Windows cannot open a directory; its renames are durable enough for us
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems (tmpfs on old kernels) refuse fsync on directories
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb", *, encoding: str | None = None) -> Iterator[IO[Any]]:
    """Open a temp file beside `path`; on a clean exit it replaces `path`, on an error it vanishes.

    >>> with atomic_open("out.json", "w", encoding="utf-8") as f:   # doctest: +SKIP
    ...     f.write("{}")
    """
    if mode not in ("w", "wb", "wt"):
        raise ValueError(f"atomic_open mode must be 'w', 'wt' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A dot prefix keeps the temp file out of globs such as `*.json` that readers may run meanwhile.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=encoding if "b" not in mode else None) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp creates 0600; give the file the permissions a plain open() would have.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write `data` to `path` atomically; returns the path."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write `text` to `path` atomically; returns the path."""
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: str | Path, obj: Any, *, indent: int | None = 2, **dumps_kwargs: Any) -> Path:
    """Serialise `obj` as JSON (strict: NaN and infinity are refused) and write it atomically.

    JSON has no NaN; Python's json would write the non-standard token `NaN` that other readers
    (jq, browsers, Go) reject, so the caller must turn missing values into null first.
    """
    dumps_kwargs.setdefault("allow_nan", False)
    text = json.dumps(obj, indent=indent, **dumps_kwargs)
    return atomic_write_text(path, text + "\n")


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of `data`."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file's contents, read in chunks (artifacts can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()
